//! Aimed faults at protocol moments (issue 18; docs/simulator.md "Aimed faults"):
//! the kinds, their per-seed probabilities, and how a seed draws them. The
//! simulator watches what the nodes and members do and, at the moments where
//! bugs live, injects a crash, pause or clog (`sim/aimed.rs`); each injected
//! fault is recorded as [`crate::schedule::Fault::Aimed`], so a schedule replays
//! it at the same instant without watching for the moment again.

use mq_core::Rng;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A protocol moment an aimed fault is injected at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AimedKind {
    /// A controller voter just sent a granted vote (so the vote is durable): it
    /// crashes and restarts inside the term; a rival candidate of that term has
    /// its link to the voter held until the voter is back.
    Vote,
    /// A partition leader just applied a committed ISR expansion: it crashes
    /// within one fetch round trip. Or it just asked the controller for an
    /// expansion: the answer is held past its request timeout, the added
    /// followers' links with it are clogged, and then it crashes past the broker
    /// session (`sim/aimed.rs`).
    IsrCommit,
    /// A follower just appended fetched records and issued their persist: it
    /// crashes before the fsync completes; half the time its leader crashes with
    /// it and both stay down past the broker session (`sim/aimed.rs`).
    FollowerFsync,
    /// A broker just became a partition leader: during its first fetch round it
    /// crashes, pauses, or its link with a follower is clogged.
    FirstFetch,
    /// A group member just completed a rebalance: the member crashes, or its
    /// coordinator does.
    Rebalance,
    /// A partition leader just dealt group records: its links with every other
    /// broker are clogged past the broker session, its members' links are not.
    /// The controller fences it and elects another leader, which confirms acks,
    /// while the old one still reaches members and does not know it is deposed
    /// (the delivery lease's window; docs/consumers.md, "Failover").
    Deposed,
    /// The active controller just sent the Raft append of a topic creation:
    /// its Raft messages with the other voters are held past an admin retry and
    /// two election timeouts, so the creation may never commit while the admin
    /// asks again (`sim/aimed.rs`).
    AdminCommit,
    /// A new partition leader just moved its HW for the first time in its
    /// tenure: it and its ISR crash, the member durable to the least offset
    /// last and back first (`sim/aimed.rs`).
    FirstCommit,
}

impl AimedKind {
    /// Every kind, in the order of their per-kind streams and options.
    pub const ALL: [AimedKind; 8] = [
        AimedKind::Vote,
        AimedKind::IsrCommit,
        AimedKind::FollowerFsync,
        AimedKind::FirstFetch,
        AimedKind::Rebalance,
        AimedKind::Deposed,
        AimedKind::AdminCommit,
        AimedKind::FirstCommit,
    ];

    /// Its name in traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            AimedKind::Vote => "vote",
            AimedKind::IsrCommit => "isr_commit",
            AimedKind::FollowerFsync => "follower_fsync",
            AimedKind::FirstFetch => "first_fetch",
            AimedKind::Rebalance => "rebalance",
            AimedKind::Deposed => "deposed",
            AimedKind::AdminCommit => "admin_commit",
            AimedKind::FirstCommit => "first_commit",
        }
    }

    /// Its index in [`AimedKind::ALL`].
    pub fn index(self) -> usize {
        AimedKind::ALL.iter().position(|k| *k == self).expect("every kind is in ALL")
    }
}

/// Per-seed probabilities of the aimed faults: at each moment of a kind (outside
/// its cool-down), the fault fires with this probability. Zero switches a kind
/// off; all zero (the default, and what schedules written before these faults
/// existed read as) is the simulator as it was.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AimedOptions {
    /// [`AimedKind::Vote`].
    pub vote: f64,
    /// [`AimedKind::IsrCommit`].
    pub isr_commit: f64,
    /// [`AimedKind::FollowerFsync`] (a follower appends often: small values).
    pub follower_fsync: f64,
    /// [`AimedKind::FirstFetch`].
    pub first_fetch: f64,
    /// [`AimedKind::Rebalance`].
    pub rebalance: f64,
    /// [`AimedKind::Deposed`] (drawn from a stream of its own, after the
    /// others, so that adding it moved no earlier draw; absent in older
    /// schedules: off).
    #[serde(default)]
    pub deposed: f64,
    /// [`AimedKind::AdminCommit`] (drawn from a stream of its own, after
    /// `deposed`; absent in older schedules: off).
    #[serde(default)]
    pub admin_commit: f64,
    /// [`AimedKind::FirstCommit`] (drawn from a stream of its own, after
    /// `admin_commit`; absent in older schedules: off).
    #[serde(default)]
    pub first_commit: f64,
    /// After an aimed fault of a kind, the next of that kind waits this long
    /// (milliseconds), so the cluster can get back to the moment.
    pub cooldown_ms: u64,
}

impl AimedOptions {
    /// The probability of `kind`.
    pub fn prob(&self, kind: AimedKind) -> f64 {
        match kind {
            AimedKind::Vote => self.vote,
            AimedKind::IsrCommit => self.isr_commit,
            AimedKind::FollowerFsync => self.follower_fsync,
            AimedKind::FirstFetch => self.first_fetch,
            AimedKind::FirstCommit => self.first_commit,
            AimedKind::Rebalance => self.rebalance,
            AimedKind::Deposed => self.deposed,
            AimedKind::AdminCommit => self.admin_commit,
        }
    }

    /// Whether any kind is on.
    pub fn any(&self) -> bool {
        AimedKind::ALL.iter().any(|k| self.prob(*k) > 0.0)
    }

    /// Every kind off.
    pub fn off() -> AimedOptions {
        AimedOptions::default()
    }

    /// Draws them from the `options` stream. Every number is drawn whatever the
    /// cluster, so the draw takes the same place in the stream in every seed; a
    /// kind that cannot happen in the seed (no replication, no groups, one voter,
    /// or the figure-8 script, which owns the controller's fate) is then zeroed.
    pub fn draw(r: &mut Rng, voters: usize, replication_factor: u16, groups: usize, figure8: bool) -> AimedOptions {
        let on = |lo: f64, hi: f64, r: &mut Rng| if r.random_bool(0.4) { r.random_range(lo..=hi) } else { 0.0 };
        let mut a = AimedOptions {
            vote: on(0.3, 0.9, r),
            isr_commit: on(0.2, 0.8, r),
            follower_fsync: on(0.02, 0.2, r),
            first_fetch: on(0.1, 0.5, r),
            rebalance: on(0.1, 0.5, r),
            deposed: 0.0,
            admin_commit: 0.0,
            first_commit: 0.0,
            cooldown_ms: r.random_range(50..=1_000),
        };
        if voters < 2 || figure8 {
            a.vote = 0.0;
        }
        if replication_factor < 2 {
            a.isr_commit = 0.0;
            a.follower_fsync = 0.0;
            a.first_fetch = 0.0;
        }
        if groups == 0 {
            a.rebalance = 0.0;
        }
        a
    }

    /// Draws [`AimedOptions::deposed`] from its own stream `r`: leaders deal
    /// group records often, so small probabilities. Off without groups or
    /// without a second broker to lead instead.
    pub fn draw_deposed(&mut self, r: &mut Rng, cluster_size: u32, groups: usize) {
        let p = if r.random_bool(0.4) { r.random_range(0.005..=0.05) } else { 0.0 };
        self.deposed = if groups == 0 || cluster_size < 2 { 0.0 } else { p };
    }

    /// Draws [`AimedOptions::admin_commit`] from its own stream `r`. Off with
    /// fewer than three voters (the others must elect a leader without the
    /// held one) and under the figure-8 script, which owns the controller's
    /// fate.
    pub fn draw_admin_commit(&mut self, r: &mut Rng, voters: usize, figure8: bool) {
        let p = if r.random_bool(0.5) { r.random_range(0.3..=0.9) } else { 0.0 };
        self.admin_commit = if voters < 3 || figure8 { 0.0 } else { p };
    }

    /// Draws [`AimedOptions::first_commit`] from its own stream `r`: half the
    /// seeds, 0.2 to 0.8 per moment. Off without replication.
    pub fn draw_first_commit(&mut self, r: &mut Rng, replication_factor: u16) {
        let p = if r.random_bool(0.5) { r.random_range(0.2..=0.8) } else { 0.0 };
        self.first_commit = if replication_factor < 2 { 0.0 } else { p };
    }
}

impl fmt::Display for AimedOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "aimed: vote={:.3} isr_commit={:.3} follower_fsync={:.4} first_fetch={:.3} rebalance={:.3} deposed={:.4} admin_commit={:.3} first_commit={:.3} cooldown_ms={}",
            self.vote,
            self.isr_commit,
            self.follower_fsync,
            self.first_fetch,
            self.rebalance,
            self.deposed,
            self.admin_commit,
            self.first_commit,
            self.cooldown_ms
        )
    }
}
