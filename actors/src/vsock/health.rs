//! Deciding when a guest agent counts as unresponsive.

/// Failed pings in a row before the agent counts as unresponsive.
pub const UNRESPONSIVE_AFTER: u32 = 3;

/// What a ping result means for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthVerdict {
    /// Nothing to report.
    Unchanged,
    /// The agent just crossed the threshold; report it once.
    BecameUnresponsive {
        /// Consecutive failures.
        failed_pings: u32,
        /// The last failure.
        last_error: String,
    },
}

/// Counts consecutive ping failures.
#[derive(Debug, Default)]
pub struct HealthTracker {
    consecutive_failures: u32,
}

impl HealthTracker {
    /// A ping succeeded.
    pub fn record_success(&mut self) -> HealthVerdict {
        self.consecutive_failures = 0;
        HealthVerdict::Unchanged
    }

    /// A ping failed with `error`.
    pub fn record_failure(&mut self, error: String) -> HealthVerdict {
        self.consecutive_failures += 1;
        if self.consecutive_failures == UNRESPONSIVE_AFTER {
            HealthVerdict::BecameUnresponsive {
                failed_pings: self.consecutive_failures,
                last_error: error,
            }
        } else {
            HealthVerdict::Unchanged
        }
    }

    /// Consecutive failures so far.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_at_the_threshold_and_resets_on_success() {
        let mut tracker = HealthTracker::default();
        assert_eq!(tracker.record_failure("a".into()), HealthVerdict::Unchanged);
        assert_eq!(tracker.record_failure("b".into()), HealthVerdict::Unchanged);
        assert_eq!(
            tracker.record_failure("c".into()),
            HealthVerdict::BecameUnresponsive {
                failed_pings: 3,
                last_error: "c".into()
            }
        );
        assert_eq!(tracker.record_failure("d".into()), HealthVerdict::Unchanged);
        assert_eq!(tracker.record_success(), HealthVerdict::Unchanged);
        assert_eq!(tracker.consecutive_failures(), 0);
        tracker.record_failure("e".into());
        tracker.record_failure("f".into());
        assert!(matches!(
            tracker.record_failure("g".into()),
            HealthVerdict::BecameUnresponsive { .. }
        ));
    }
}
