//! The run clock: wall-clock instants (for the journal, `now()` and durable timers)
//! derived from tokio's monotonic clock, so tests with a paused tokio clock see a
//! consistent wall clock too.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_wall_nanos: i128,
    base: tokio::time::Instant,
}

impl Clock {
    /// A clock reading the system time now and advancing with tokio's clock.
    pub fn system() -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        Clock {
            base_wall_nanos: wall,
            base: tokio::time::Instant::now(),
        }
    }

    /// Unix nanoseconds now.
    pub fn now_nanos(&self) -> i128 {
        self.base_wall_nanos + self.base.elapsed().as_nanos() as i128
    }

    /// Unix milliseconds now.
    pub fn now_millis(&self) -> i64 {
        i64::try_from(self.now_nanos() / 1_000_000).unwrap_or(i64::MAX)
    }

    /// How long until the Unix-millisecond instant `at` (zero when it has passed).
    pub fn until_millis(&self, at: i64) -> Duration {
        let now = self.now_millis();
        if at <= now {
            Duration::ZERO
        } else {
            Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
        }
    }
}
