//! Recorded schedules (issue 9, docs/simulator.md "Shrinking"): a run's options
//! and every fault it injected, as concrete decisions (which node, for how long),
//! so a run can be replayed without drawing its faults, and pruned.
//!
//! A seed's run records each fault it applies ([`crate::Report::faults`]). A
//! [`Schedule`] replays the seed with the options and faults it lists instead of
//! drawing them: the network, disks, clocks and workload still draw from the seed's
//! streams, so removing a fault changes only what that fault changed (and whatever
//! followed from it). `mq-sim shrink` prunes a failing seed's schedule;
//! `mq-sim replay --schedule FILE` replays one.

use crate::aimed::AimedKind;
use crate::options::Options;
use crate::Mutation;
use mq_core::Peer;
use serde::{Deserialize, Serialize};

/// One injected fault, with every decision it took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// Node `node` (0-based slot) crashes; clients see their connections reset at
    /// once when `disconnect`; it restarts `down_ns` later.
    Crash {
        /// The node slot.
        node: usize,
        /// Whether clients are told at once.
        disconnect: bool,
        /// Time down.
        down_ns: u64,
    },
    /// Whichever node leads the metadata quorum at that moment crashes.
    CrashController {
        /// Whether clients are told at once.
        disconnect: bool,
        /// Time down.
        down_ns: u64,
    },
    /// Node `node` stops handling anything for `for_ns`.
    Pause {
        /// The node slot.
        node: usize,
        /// How long.
        for_ns: u64,
    },
    /// A network partition between `side` and the rest (only `side -> rest` when
    /// `one_way`), healed after `for_ns`.
    Partition {
        /// One side.
        side: Vec<Peer>,
        /// Asymmetric.
        one_way: bool,
        /// How long.
        for_ns: u64,
    },
    /// The link from node `node` to `other` (and back when `both`) holds its
    /// messages for `for_ns`.
    Clog {
        /// The node slot.
        node: usize,
        /// The other end.
        other: Peer,
        /// Both directions.
        both: bool,
        /// How long.
        for_ns: u64,
    },
    /// Node `node`'s clock jumps by `step_ns`.
    ClockStep {
        /// The node slot.
        node: usize,
        /// The jump (either way).
        step_ns: i64,
    },
    /// Node `node` begins a controlled shutdown (it stops once the shutdown
    /// completes, or like a crash past its bound, and restarts later).
    Shutdown {
        /// The node slot.
        node: usize,
    },
    /// Group member client `client` (0-based slot) crashes (a fresh client takes
    /// its place) or, when not `crash`, leaves gracefully.
    Member {
        /// The client slot.
        client: usize,
        /// Crash rather than leave.
        crash: bool,
    },
    /// Node `node`'s disk stops completing fsyncs for `for_ns`: every Persist
    /// pending or submitted meanwhile completes only then (a stalled device; a
    /// crash meanwhile drops them). Absent from schedules written before it.
    DiskStall {
        /// The node slot.
        node: usize,
        /// How long.
        for_ns: u64,
    },
    /// An aimed fault (docs/simulator.md "Aimed faults"): `fault`, injected at a
    /// protocol moment of kind `kind`. Replayed at its instant like any other.
    Aimed {
        /// The moment it was aimed at.
        kind: AimedKind,
        /// What was injected (a crash, pause or clog).
        fault: Box<Fault>,
    },
}

impl Fault {
    /// How long the fault lasts, for those that heal.
    pub fn duration_ns(&self) -> Option<u64> {
        match self {
            Fault::Crash { down_ns, .. } | Fault::CrashController { down_ns, .. } => Some(*down_ns),
            Fault::Pause { for_ns, .. }
            | Fault::Partition { for_ns, .. }
            | Fault::Clog { for_ns, .. }
            | Fault::DiskStall { for_ns, .. } => Some(*for_ns),
            Fault::ClockStep { .. } | Fault::Member { .. } | Fault::Shutdown { .. } => None,
            Fault::Aimed { fault, .. } => fault.duration_ns(),
        }
    }

    /// The same fault lasting `ns` instead.
    pub fn with_duration(&self, ns: u64) -> Fault {
        let mut f = self.clone();
        match &mut f {
            Fault::Crash { down_ns, .. } | Fault::CrashController { down_ns, .. } => *down_ns = ns,
            Fault::Pause { for_ns, .. }
            | Fault::Partition { for_ns, .. }
            | Fault::Clog { for_ns, .. }
            | Fault::DiskStall { for_ns, .. } => *for_ns = ns,
            Fault::ClockStep { .. } | Fault::Member { .. } | Fault::Shutdown { .. } => {}
            Fault::Aimed { fault, .. } => **fault = fault.with_duration(ns),
        }
        f
    }

    /// Whether it names only nodes below `nodes` and clients below `clients`.
    pub fn fits(&self, nodes: usize, clients: usize) -> bool {
        let peer_ok = |p: &Peer| match p {
            Peer::Node(id) => (id.0 as usize) <= nodes,
            Peer::Client(id) => (id.0 as usize) <= clients,
        };
        match self {
            Fault::Crash { node, .. }
            | Fault::Pause { node, .. }
            | Fault::ClockStep { node, .. }
            | Fault::DiskStall { node, .. }
            | Fault::Shutdown { node } => *node < nodes,
            Fault::Clog { node, other, .. } => *node < nodes && peer_ok(other),
            Fault::Partition { side, .. } => side.iter().all(peer_ok),
            Fault::CrashController { .. } => true,
            Fault::Member { client, .. } => *client < clients,
            Fault::Aimed { fault, .. } => fault.fits(nodes, clients),
        }
    }
}

/// A fault at a moment of the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timed {
    /// Simulated time (nanoseconds since the start).
    pub at_ns: u64,
    /// The fault.
    pub fault: Fault,
}

/// A replayable run: a seed with its options and faults fixed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// The code version that wrote it (informational: another version may replay
    /// it differently).
    pub version: String,
    /// The seed (its streams drive everything but the options and faults).
    pub seed: u64,
    /// The deliberate bug it ran with (`none` for the real system).
    pub mutation: String,
    /// The invariant the run broke when it was written, if any.
    pub invariant: Option<String>,
    /// The options (not drawn from the seed).
    pub options: Options,
    /// When true, faults are drawn from the seed as in a normal run and `faults`
    /// is ignored.
    pub random_faults: bool,
    /// The faults, in time order.
    pub faults: Vec<Timed>,
    /// Producers stop after this many produce operations in all.
    pub max_ops: Option<u64>,
}

impl Schedule {
    /// Reads a schedule written by [`Schedule::to_json`], checking its options.
    pub fn from_json(text: &str) -> Result<Schedule, String> {
        let s: Schedule = serde_json::from_str(text).map_err(|e| format!("not a schedule: {e}"))?;
        s.options.validate()?;
        s.mutation.parse::<Mutation>()?;
        if let Some(f) = s.faults.iter().find(|t| !t.fault.fits(s.options.cluster_size as usize, usize::MAX)) {
            return Err(format!("fault {f:?} names a node outside the cluster of {}", s.options.cluster_size));
        }
        Ok(s)
    }

    /// The schedule as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a schedule always serializes")
    }

    /// The deliberate bug, parsed.
    pub fn mutation(&self) -> Mutation {
        self.mutation.parse().unwrap_or_default()
    }
}
