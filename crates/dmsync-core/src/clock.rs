//! The one source of time. Everything that depends on time (tokens, the sync cooldown, job
//! leases, import delays, schedules) reads this Clock, so that `POST /_dmsync/clock/advance`
//! moves all of it at once and tests never sleep through a ten-minute cooldown.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

pub type SharedClock = Arc<OffsetClock>;

/// System time plus an offset that only ever grows. The offset is persisted by the server, so
/// an advanced clock stays advanced across restarts and stored timestamps never lie in the future.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_nanos: AtomicI64,
}

impl OffsetClock {
    pub fn new(offset: Duration) -> Self {
        OffsetClock { offset_nanos: AtomicI64::new(offset.whole_nanoseconds() as i64) }
    }

    pub fn offset(&self) -> Duration {
        Duration::nanoseconds(self.offset_nanos.load(Ordering::SeqCst))
    }

    /// Moves time forward. Returns the new total offset.
    pub fn advance(&self, by: Duration) -> Duration {
        let by = by.whole_nanoseconds().max(0) as i64;
        let new = self.offset_nanos.fetch_add(by, Ordering::SeqCst) + by;
        Duration::nanoseconds(new)
    }

    /// Adopts an offset read from the database, if it is ahead of ours (another replica, or a
    /// previous run, advanced time).
    pub fn catch_up(&self, offset: Duration) {
        self.offset_nanos.fetch_max(offset.whole_nanoseconds() as i64, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> OffsetDateTime {
        // The offset is added to the system time as nanoseconds and the sum turned into a date
        // once, rather than making a date and then moving it: the server reads the Clock a few
        // times for every request.
        let since_epoch = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => after.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        };
        let offset = i128::from(self.offset_nanos.load(Ordering::SeqCst));
        OffsetDateTime::from_unix_timestamp_nanos(since_epoch + offset)
            .unwrap_or_else(|_| OffsetDateTime::now_utc() + self.offset())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_now_forward_and_never_back() {
        let clock = OffsetClock::default();
        let before = clock.now();
        clock.advance(Duration::minutes(11));
        assert!(clock.now() - before >= Duration::minutes(11));
        clock.advance(Duration::seconds(-30));
        assert!(clock.offset() >= Duration::minutes(11));
        clock.catch_up(Duration::minutes(1));
        assert!(clock.offset() >= Duration::minutes(11));
        clock.catch_up(Duration::minutes(20));
        assert_eq!(clock.offset(), Duration::minutes(20));
    }
}
