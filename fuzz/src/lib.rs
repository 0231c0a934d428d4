//! Drivers for mq's state-machine fuzz targets (`fuzz_targets/`). Each target is a
//! thin `fuzz_target!` around one `run(data)` here, so the drivers can also be
//! replayed from tests without libFuzzer.
//!
//! Every driver turns the fuzz bytes into a sequence of inputs delivered through
//! the public sans-IO contract (DESIGN.md section 2), calls the machine's
//! `check_invariants` after each one and checks what the contract promises of the
//! outputs. A driver is deterministic: the same bytes give the same run.

pub mod arb;
mod collect;
pub mod consumer;
pub mod controller;
pub mod node;
pub mod producer;

use arbitrary::Unstructured;
use mq_core::controller::{Raft, RaftMessage, RaftRole};

/// Counts the steps of one run.
pub struct Steps {
    left: usize,
}

impl Steps {
    /// At most `max` steps.
    pub fn new(max: usize) -> Self {
        Steps { left: max }
    }

    /// Whether to run another step: bytes remain and the budget is not spent.
    pub fn next(&mut self, u: &Unstructured<'_>) -> bool {
        if self.left == 0 || u.is_empty() {
            return false;
        }
        self.left -= 1;
        true
    }
}

/// Whether a Raft message could come from a correct peer, as far as `raft` can
/// tell. mq's Raft trusts the voters of its quorum (they authenticate with the
/// cluster secret, docs/security.md) and fail-stops, like etcd's raft, on two
/// messages that prove the quorum's safety already broke: an `Append` from another
/// leader of the term this replica leads, and an `Append` whose entries contradict
/// an entry this replica knows committed. A Byzantine peer could send both; the
/// drivers do not, and everything else a peer can say is fair game.
pub fn raft_peer_is_honest(raft: &Raft, msg: &RaftMessage) -> bool {
    let RaftMessage::Append { term, entries, .. } = msg else { return true };
    if *term == raft.term() && raft.role() == RaftRole::Leader {
        return false;
    }
    let log = raft.log_entries();
    !entries.iter().any(|e| {
        e.index >= 1
            && e.index <= raft.commit_index()
            && log.get(e.index as usize - 1).is_some_and(|mine| mine.term != e.term)
    })
}
