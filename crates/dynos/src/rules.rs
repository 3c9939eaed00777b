//! Health rules as pure functions of their inputs (no clock reads, no I/O), so each
//! can be tested on its own; the manager applies them.

use std::time::Duration;

/// Heroku's crash policy: the first crash restarts at once; after that the dyno cools
/// off for 10 s, doubling with each further crash up to 20 minutes, until a new
/// release or a restart resets the count. `count` is the crash being handled (1-based).
pub fn crash_backoff(count: u32) -> Duration {
    if count <= 1 {
        return Duration::ZERO;
    }
    Duration::from_secs(10u64.saturating_mul(1 << (count - 2).min(10)))
        .min(Duration::from_secs(20 * 60))
}

/// The R12 line, naming the grace period actually configured and the signal sent.
pub fn r12_message(grace: Duration, signal: &str) -> String {
    format!(
        "Error R12 (Exit timeout) -> At least one process failed to exit within {} seconds of {signal}",
        grace.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_backoff_follows_herokus_schedule() {
        let secs: Vec<u64> = (1..=10).map(|n| crash_backoff(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 320, 640, 1200, 1200]);
        assert_eq!(crash_backoff(0), Duration::ZERO);
        assert_eq!(crash_backoff(u32::MAX), Duration::from_secs(1200));
    }

    #[test]
    fn r12_names_the_configured_grace_and_signal() {
        assert_eq!(
            r12_message(Duration::from_secs(5), "SIGTERM"),
            "Error R12 (Exit timeout) -> At least one process failed to exit within 5 seconds of SIGTERM"
        );
        assert!(r12_message(Duration::from_secs(30), "SIGHUP").ends_with("30 seconds of SIGHUP"));
    }
}
