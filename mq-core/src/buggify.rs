//! BUGGIFY (FoundationDB's name; docs/simulator.md "BUGGIFY"): named points where
//! a machine, under the simulator only, takes a legal but rare path so that the
//! code after it runs far more often than real traffic would make it run.
//!
//! Every point is a choice the protocol already allows: a Raft leader may send
//! fewer entries than its limit, an election timeout may be drawn at the low end
//! of its range, a leader may answer a follower's fetch with less than it asked
//! for, an `acks=all` produce may time out (its outcome is then unknown to the
//! client, as after any timeout). None of them may break an invariant; if one
//! does, the bug is in the code after the point.
//!
//! Off unless the node's configuration carries a seed (`NodeConfig::buggify`,
//! which only mq-sim sets; `None` by default, so production never buggifies).
//! With a seed, each machine that owns points draws from its own seeded ChaCha
//! stream (sans-IO and deterministic as everything else): first, once, which of
//! its points are enabled for the run (each with probability one half, as
//! FoundationDB enables a point per run), then, at each pass through an enabled
//! point, whether it fires (one time in four). Each firing counts the point's
//! coverage mark (`buggify.*`), so a campaign's coverage report shows how often
//! each point fired. The streams are separate from every other stream of the
//! machine, so a run with BUGGIFY off draws exactly what it drew before.

use crate::coverage::{Coverage, Mark};
use crate::rng::{Rng, Seed};
use rand::Rng as _;

/// A BUGGIFY point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// A Raft leader sends fewer entries in an `Append` than it could.
    RaftShortAppend,
    /// A Raft election timeout drawn at the low end of `[t, 2t)`.
    RaftEarlyElection,
    /// A partition leader answers a follower's fetch with at most one batch.
    ReplicaSmallFetch,
    /// An `acks=all` produce waits for the high watermark only briefly before it
    /// is answered `Timeout` (it may still commit).
    ProduceShortCommitWait,
    /// The controller proposes a new topic's `CreateTopic` record without the
    /// first elections of its partitions, as a controller change between those
    /// separate Raft entries leaves it; the next broker heartbeat elects them.
    ControllerSplitCreateTopic,
}

impl Point {
    /// Every point, in the order their enablement is drawn.
    pub const ALL: [Point; 5] = [
        Point::RaftShortAppend,
        Point::RaftEarlyElection,
        Point::ReplicaSmallFetch,
        Point::ProduceShortCommitWait,
        Point::ControllerSplitCreateTopic,
    ];

    /// The coverage mark counted when the point fires.
    pub fn mark(self) -> Mark {
        match self {
            Point::RaftShortAppend => Mark::BuggifyRaftShortAppend,
            Point::RaftEarlyElection => Mark::BuggifyRaftEarlyElection,
            Point::ReplicaSmallFetch => Mark::BuggifyReplicaSmallFetch,
            Point::ProduceShortCommitWait => Mark::BuggifyProduceShortCommitWait,
            Point::ControllerSplitCreateTopic => Mark::BuggifyControllerSplitCreateTopic,
        }
    }
}

/// How often an enabled point fires.
const FIRE_PROB: f64 = 0.25;

/// One machine's BUGGIFY state: off, or a stream and the points enabled.
#[derive(Clone, Debug, Default)]
pub struct Buggify {
    on: Option<(Rng, [bool; Point::ALL.len()])>,
}

impl Buggify {
    /// Off: no point ever fires.
    pub fn off() -> Self {
        Buggify { on: None }
    }

    /// The state of machine `name` (index `index`) under `seed`; off when `seed`
    /// is `None`.
    pub fn new(seed: Option<u64>, name: &str, index: u64) -> Self {
        let Some(seed) = seed else { return Buggify::off() };
        let mut rng = Seed(seed).indexed_stream(name, index);
        let mut enabled = [false; Point::ALL.len()];
        for e in &mut enabled {
            *e = rng.random_bool(0.5);
        }
        Buggify { on: Some((rng, enabled)) }
    }

    /// Whether `point` fires now; counts its mark in `coverage` when it does.
    pub fn fire(&mut self, point: Point, coverage: &mut Coverage) -> bool {
        let Some((rng, enabled)) = &mut self.on else { return false };
        let i = Point::ALL.iter().position(|p| *p == point).expect("every point is in Point::ALL");
        if !enabled[i] || !rng.random_bool(FIRE_PROB) {
            return false;
        }
        coverage.hit(point.mark());
        true
    }

    /// A number in `range` from the BUGGIFY stream (how short an append is, say);
    /// the range's start when off.
    pub fn pick(&mut self, range: std::ops::Range<u64>) -> u64 {
        match &mut self.on {
            Some((rng, _)) if !range.is_empty() => rng.random_range(range),
            _ => range.start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_fires_and_counts_nothing() {
        let mut b = Buggify::new(None, "x", 0);
        let mut c = Coverage::default();
        for _ in 0..1_000 {
            for p in Point::ALL {
                assert!(!b.fire(p, &mut c));
            }
        }
        assert!(c.is_empty());
    }

    #[test]
    fn on_fires_enabled_points_sometimes_and_counts_each_firing() {
        // Over many seeds, every point is enabled in some and fires about a
        // quarter of the time there; each firing is one mark.
        let mut fired = [0u64; Point::ALL.len()];
        let mut passes = [0u64; Point::ALL.len()];
        for seed in 0..64 {
            let mut b = Buggify::new(Some(seed), "x", 0);
            let mut c = Coverage::default();
            for (i, p) in Point::ALL.iter().enumerate() {
                let mut n = 0;
                for _ in 0..100 {
                    n += u64::from(b.fire(*p, &mut c));
                }
                assert_eq!(c.get(p.mark()), n);
                fired[i] += n;
                passes[i] += 100;
            }
        }
        for i in 0..Point::ALL.len() {
            let rate = fired[i] as f64 / passes[i] as f64;
            assert!((0.05..0.25).contains(&rate), "point {:?} fired at rate {rate}", Point::ALL[i]);
        }
    }

    #[test]
    fn the_same_seed_fires_the_same_way() {
        let run = |seed| {
            let mut b = Buggify::new(Some(seed), "x", 3);
            let mut c = Coverage::default();
            (0..200).map(|_| b.fire(Point::ReplicaSmallFetch, &mut c)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
    }
}
