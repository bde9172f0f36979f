//! Single flight: concurrent loads of one key share one execution.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Coalesces concurrent loads of the same key: the first caller runs the load,
/// the others wait for its result. If the first caller is cancelled, a waiter
/// takes over, so a load is never lost.
pub struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self { flights: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> SingleFlight<K, V> {
    /// Runs `load` for `key` unless a load of `key` is already running, in which
    /// case it waits for that one's result. The second value is true for the
    /// caller whose `load` ran.
    pub async fn run<F, Fut>(&self, key: K, load: F) -> (V, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let mut ran = false;
        let value = cell
            .get_or_init(|| {
                ran = true;
                load()
            })
            .await
            .clone();
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(&key).is_some_and(|current| Arc::ptr_eq(current, &cell)) {
            flights.remove(&key);
        }
        (value, ran)
    }

    /// Loads in flight right now.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.flights.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_loads_of_one_key_run_once() {
        let flights = Arc::new(SingleFlight::<String, usize>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, runs, mut gate) = (flights.clone(), runs.clone(), gate_rx.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k".to_owned(), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        42
                    })
                    .await
            }));
        }
        // Every task is waiting on the one load before it may finish.
        while flights.in_flight() == 0 || runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate_tx.send(true).expect("open");
        let mut ran = 0;
        for task in tasks {
            let (value, did_run) = task.await.expect("task");
            assert_eq!(value, 42);
            ran += usize::from(did_run);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(ran, 1);
        assert_eq!(flights.in_flight(), 0, "finished flights are forgotten");
    }

    #[tokio::test]
    async fn later_loads_run_again() {
        let flights = SingleFlight::<&str, u32>::default();
        assert_eq!(flights.run("k", || async { 1 }).await, (1, true));
        assert_eq!(flights.run("k", || async { 2 }).await, (2, true));
    }
}
