//! Per-node clocks. A node's local time is the simulation's time scaled by a drift
//! (parts per million) plus an offset that clock-step faults move in either
//! direction. What a node is given is clamped so that it never goes backwards
//! (DESIGN.md section 2): after a backward step its time stands still until the
//! stepped clock catches up.

use mq_core::{Duration, Instant};

/// One node's clock.
#[derive(Clone, Debug)]
pub struct Clock {
    drift_ppm: i64,
    offset_ns: i64,
    last: Instant,
}

impl Clock {
    /// A clock with `drift_ppm` and no offset.
    pub fn new(drift_ppm: i64) -> Self {
        Clock { drift_ppm, offset_ns: 0, last: Instant::ZERO }
    }

    fn raw(&self, global: Instant) -> i128 {
        let g = i128::from(global.as_nanos());
        g + g * i128::from(self.drift_ppm) / 1_000_000 + i128::from(self.offset_ns)
    }

    /// The node's time at simulation time `global`, never below what it saw before.
    pub fn local(&mut self, global: Instant) -> Instant {
        let raw = self.raw(global).clamp(0, i128::from(u64::MAX)) as u64;
        self.last = self.last.max(Instant::from_nanos(raw));
        self.last
    }

    /// Moves the clock by `step_ns` (negative: backwards).
    pub fn step(&mut self, step_ns: i64) {
        self.offset_ns = self.offset_ns.saturating_add(step_ns);
    }

    /// The simulation time at which this clock reads at least `local`, from `now`.
    /// An estimate: the driver checks again when it fires.
    pub fn global_for(&self, now: Instant, local: Instant) -> Instant {
        let ahead = i128::from(local.as_nanos()) - self.raw(now);
        if ahead <= 0 {
            return now;
        }
        let scaled = ahead * 1_000_000 / (1_000_000 + i128::from(self.drift_ppm));
        now + Duration::from_nanos(scaled.max(1) as u64 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backward_step_never_moves_local_time_back() {
        let mut c = Clock::new(500);
        let a = c.local(Instant::from_millis(1_000));
        c.step(-400_000_000);
        let b = c.local(Instant::from_millis(1_001));
        assert!(b >= a);
        assert_eq!(b, a, "stands still until the stepped clock catches up");
    }

    #[test]
    fn timers_convert_to_a_global_time_at_or_after_the_deadline() {
        let mut c = Clock::new(-300);
        let now = Instant::from_millis(10);
        let deadline = c.local(now) + Duration::from_millis(5);
        let g = c.global_for(now, deadline);
        assert!(c.local(g) >= deadline);
    }
}
