//! Value parsers that refuse a setting outside fixed bounds, naming the bounds.

use std::time::Duration;

/// A rate of tokens per second from one per 1000 s to a million per second, so
/// the refill period `1 / rate` is a representable duration of at least 1 µs
/// (a tiny rate made `Duration::from_secs_f64` panic).
pub fn parse_positive_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(rate) if (0.001..=1_000_000.0).contains(&rate) => Ok(rate),
        _ => Err("must be a number from 0.001 to 1000000".to_owned()),
    }
}

/// A value parser for a duration from `min` to `max` inclusive: every duration
/// ends up added to an `Instant` or handed to a cache, where an absurd one
/// (`2000years`) panics or overflows, and a zero timeout fails everything.
pub fn duration_in(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |raw| {
        let duration = humantime::parse_duration(raw.trim()).map_err(|e| e.to_string())?;
        if (min..=max).contains(&duration) {
            Ok(duration)
        } else {
            Err(format!("must be from {} to {}", bound(min), bound(max)))
        }
    }
}

/// A bound as an operator would write it: whole days as days (humantime shows
/// 365 days as `11months 30days 3h 50m 24s`, its months being 30.44 days).
fn bound(duration: Duration) -> String {
    const DAY: u64 = 86_400;
    let secs = duration.as_secs();
    if duration.subsec_nanos() == 0 && secs >= DAY && secs.is_multiple_of(DAY) {
        format!("{}d", secs / DAY)
    } else {
        humantime::format_duration(duration).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_bounded_so_their_period_is_a_duration() {
        assert_eq!(parse_positive_rate("0.5"), Ok(0.5));
        assert_eq!(parse_positive_rate("0.001"), Ok(0.001));
        for bad in ["0", "-1", "1e-300", "1e300", "inf", "NaN", "fast"] {
            assert_eq!(parse_positive_rate(bad), Err("must be a number from 0.001 to 1000000".to_owned()), "{bad}");
        }
        // Every accepted rate has a refill period `Duration::from_secs_f64` takes.
        for rate in [0.001, 1_000_000.0] {
            assert!(Duration::try_from_secs_f64(1.0 / rate).is_ok());
        }
    }

    #[test]
    fn durations_are_bounded_with_a_message_naming_the_bounds() {
        let parse = duration_in(Duration::from_millis(1), Duration::from_secs(600));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse(" 10m "), Ok(Duration::from_secs(600)));
        assert_eq!(parse("0s"), Err("must be from 1ms to 10m".to_owned()));
        assert_eq!(parse("11m"), Err("must be from 1ms to 10m".to_owned()));
        assert_eq!(parse("2000years"), Err("must be from 1ms to 10m".to_owned()));
        assert_eq!(parse("soon"), Err("expected number at 0".to_owned()));
        let days = duration_in(Duration::from_secs(1), Duration::from_secs(365 * 86_400));
        assert_eq!(days("366d"), Err("must be from 1s to 365d".to_owned()));
        assert_eq!(days("365d"), Ok(Duration::from_secs(365 * 86_400)));
    }
}
