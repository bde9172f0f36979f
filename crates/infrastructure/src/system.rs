//! The real clock and randomness behind the `Clock` and `RandomSource` ports.

use chrono::{DateTime, Utc};
use offndat_application::ports::{Clock, RandomSource};
use rand::Rng;

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Seeds from the thread-local, OS-seeded generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn seed(&self) -> u64 {
        rand::rng().random()
    }
}
