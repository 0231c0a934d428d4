//! The broker's clock: mq-core takes `now` as an argument, and this is where it comes
//! from. A monotonic `std::time::Instant` anchored at the Unix time read once at
//! start, so `now` never goes backwards (even if the wall clock is stepped) while
//! record append times stay real Unix milliseconds.

use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

/// Maps the monotonic clock onto mq-core's [`mq_core::Instant`] (nanoseconds since
/// the Unix epoch, as of the anchor).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: StdInstant,
    start_unix_nanos: u64,
}

impl Clock {
    /// Anchors a clock at the current Unix time.
    pub fn start() -> Self {
        let start_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            // A wall clock before 1970 is a misconfigured host; times start at zero.
            .unwrap_or(0);
        Clock { start: StdInstant::now(), start_unix_nanos }
    }

    /// Now, as mq-core counts time. Monotonic: built from `std::time::Instant`.
    pub fn now(&self) -> mq_core::Instant {
        self.to_core(StdInstant::now())
    }

    /// Converts a monotonic instant into mq-core time.
    pub fn to_core(&self, t: StdInstant) -> mq_core::Instant {
        let elapsed = u64::try_from(t.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        mq_core::Instant::from_nanos(self.start_unix_nanos.saturating_add(elapsed))
    }

    /// Converts an mq-core deadline into a tokio deadline. Deadlines beyond a day are
    /// capped (a timer that fires early is harmless: extra timeouts are allowed).
    pub fn to_tokio(&self, deadline: mq_core::Instant) -> tokio::time::Instant {
        const CAP: std::time::Duration = std::time::Duration::from_secs(86_400);
        let since_start = deadline.as_nanos().saturating_sub(self.start_unix_nanos);
        let now = StdInstant::now();
        let target = self.start.checked_add(std::time::Duration::from_nanos(since_start)).unwrap_or(now + CAP);
        let target = target.min(now + CAP);
        crate::rt::tokio_instant(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_unix_time_and_never_goes_backwards() {
        let clock = Clock::start();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        // After 2020-01-01 in milliseconds: append times are real Unix times.
        assert!(a.as_millis() > 1_577_836_800_000);
    }

    #[test]
    fn deadlines_round_trip_through_tokio_time() {
        let clock = Clock::start();
        let d = clock.now() + mq_core::Duration::from_millis(50);
        let t = clock.to_tokio(d).into_std();
        let back = clock.to_core(t);
        assert!(back.as_nanos().abs_diff(d.as_nanos()) < 1_000_000);
    }
}
