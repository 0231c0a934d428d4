//! The scripted figure-8 profile (Raft §5.4.2, figure 8; docs/simulator.md
//! "Scripted figure 8"), on three voters `a`, `v` and `w`. The paper's five
//! panels, with three servers instead of five:
//!
//! - (a) the first controller leader `a` is cut off one way as it wins: its
//!   `LeaderChange` entry (index `k`, term T1) stays on it alone;
//! - (b) the next winner `v` is cut off the same way (its `LeaderChange` at `k`,
//!   of a later term T2, stays on it alone) and `a` is let back in, its disk
//!   stalled;
//! - (c) `a` wins again (only it can: `w`'s log is shorter and `v` cannot answer)
//!   and sends entry `k` with its new `LeaderChange` (`k + 1`, term T3); `w` holds
//!   both before `a`'s own stalled write of `k + 1` is durable. Entry `k` is on a
//!   majority and not committed;
//!
//! then one of the two endings, drawn from the `aimed` stream:
//!
//! - (d) as soon as `a` hears `w` acknowledge `k + 1` (a leader that counts
//!   replicas commits `k` then), `a` crashes before its own write of `k + 1`
//!   lands (and loses it whole: no torn write keeps it), `w` is cut off and `a`
//!   comes back at once: `v` wins with `a`'s vote (its last term T2 beats `a`'s
//!   T1) and overwrites entry `k` everywhere, which is legal because `k` never
//!   committed;
//! - (e) `a`'s write lands and `a` commits `k + 1` (and `k` with it); then `a`
//!   crashes and comes back at once and `v` is let back in: `v` cannot win, both
//!   others hold term T3, so `k` stays.
//!
//! A leader that commits `k` in (c) by counting replicas commits an entry that
//! (d) then overwrites; `metadata_commit_protected` flags the commit itself at
//! once, and committed entries that change fail the checker's metadata rules.

use super::{Sim, Stop};
use crate::network::Cut;
use crate::trace::Actor;
use mq_core::controller::raft::{LogIndex, RaftMessage};
use mq_core::wire::{Message, PeerMessage};
use mq_core::{Duration, Input, Instant, NodeId, Peer, Term};
use rand::Rng as _;

/// The sender and acknowledged index of a successful Raft append reply.
pub(super) fn append_ack(input: &Input) -> Option<(NodeId, LogIndex)> {
    match input {
        Input::Message {
            from: Peer::Node(from),
            msg: Message::Peer(PeerMessage::Raft(RaftMessage::AppendReply { success: true, last_index, .. })),
        } => Some((*from, *last_index)),
        _ => None,
    }
}

/// Where the scripted figure-8 profile is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Figure8 {
    Off,
    /// Waiting for a first controller leader `a`.
    First,
    /// `a` won and was cut off at once (its `LeaderChange` exists on it alone);
    /// waiting for another voter to win.
    Second {
        a: usize,
    },
    /// `v` won and was cut off at once; `a` is back, with a stalled disk.
    Third {
        a: usize,
        v: usize,
    },
    /// (c): `a` leads `term` again with its new entry at `entry`; waiting for
    /// `a` to hear `w` acknowledge it (ending (d), `overwrite`) or for `a` to
    /// commit it (ending (e)).
    Fourth {
        a: usize,
        v: usize,
        w: usize,
        term: Term,
        entry: LogIndex,
        overwrite: bool,
    },
    /// (d): `a` crashed and `w` is cut off; waiting for `v` to win.
    Overwrite {
        v: usize,
    },
    Done,
}

impl Sim {
    /// Moves the script on when node `n` has just won a Raft election.
    pub(super) fn figure8_step(&mut self, n: usize) {
        if self.liveness_start.is_some() {
            return;
        }
        let now = self.now;
        if !matches!(self.figure8, Figure8::Off | Figure8::Done) {
            self.disturbed_at = now;
        }
        match self.figure8 {
            Figure8::First => {
                self.figure8_cut(n, true, "figure 8 (a)");
                self.figure8 = Figure8::Second { a: n };
            }
            Figure8::Second { a } if a != n => {
                self.figure8_cut(n, true, "figure 8 (b)");
                let disk = &mut self.nodes[a].disk;
                disk.stall_until = Instant::MAX;
                disk.stall = Duration::from_millis(self.rng_aimed.random_range(20..=200));
                self.figure8 = Figure8::Third { a, v: n };
            }
            Figure8::Third { a, v } if a == n => {
                // This step's writes (the new `LeaderChange`) are still stalled.
                self.nodes[a].disk.stall_until = now + Duration::from_nanos(1);
                self.counters.figure8_scripts += 1;
                let w = (0..self.nodes.len())
                    .find(|i| *i != a && *i != v && self.opts.voters.contains(&self.nodes[*i].id.0))
                    .expect("three voters");
                let raft = self.nodes[a].node.as_ref().map(|node| node.raft());
                let (term, entry) = raft.map_or((Term(0), 0), |r| (r.term(), r.last_index()));
                let overwrite = self.rng_aimed.random_bool(0.5);
                self.figure8 = Figure8::Fourth { a, v, w, term, entry, overwrite };
            }
            Figure8::Overwrite { v } => {
                if n == v {
                    self.counters.figure8_overwrites += 1;
                }
                self.figure8_heal();
                self.figure8 = Figure8::Done;
            }
            _ => {}
        }
    }

    /// After node `n` handled an input (`ack`: a successful Raft append reply it
    /// carried), while the script is at (c): runs ending (d) once `a` heard `w`
    /// acknowledge its new entry while its own write of it is not durable, or
    /// ending (e) once `a` committed it.
    pub(super) fn figure8_watch(&mut self, n: usize, ack: Option<(NodeId, LogIndex)>) {
        let Figure8::Fourth { a, v, w, term, entry, overwrite } = self.figure8 else { return };
        let raft_term = self.nodes[a].node.as_ref().map(|node| node.raft().term());
        if self.liveness_start.is_some() || raft_term != Some(term) {
            // `a` crashed or lost its term to something else: the script ends at (c).
            self.figure8 = Figure8::Done;
            return;
        }
        let durable = self.nodes[a].disk.durable.raft.entries.last().is_some_and(|e| e.term == term);
        if overwrite && !durable {
            let w_id = self.nodes[w].id;
            if n == a && ack.is_some_and(|(from, index)| from == w_id && index >= entry) {
                self.disturbed_at = self.now;
                // `a`'s new entry must be lost: a torn write could keep it.
                let lost = self.nodes[a].disk.lose_pending();
                self.counters.lost_persists += lost as u64;
                self.figure8_bounce(a, lost, "figure 8 (d)");
                // A new cut replaces `v`'s: `v` can campaign, `w` cannot.
                self.figure8_cut(w, false, "figure 8 (d)");
                self.figure8 = Figure8::Overwrite { v };
            }
            return;
        }
        // Ending (e), or (d) whose moment passed: `a`'s write landed first.
        if self.nodes[a].node.as_ref().is_some_and(|node| node.raft().current_term_committed()) {
            self.disturbed_at = self.now;
            self.counters.figure8_commits += 1;
            self.figure8_bounce(a, 0, "figure 8 (e)");
            self.figure8_heal();
            self.figure8 = Figure8::Done;
        }
    }

    /// Cuts node `n` off (`one_way`: only what it sends), until long after the
    /// script needs it.
    fn figure8_cut(&mut self, n: usize, one_way: bool, why: &'static str) {
        let now = self.now;
        let node = Peer::Node(self.nodes[n].id);
        self.cut_id += 1;
        self.counters.new_controller_isolations += 1;
        self.trace.event(now, Actor::Sim, "isolate-new-controller", self.cut_id, 2, || format!("{node} ({why})"));
        self.net.cut = Some(Cut { side: [node].into_iter().collect(), one_way });
        let heal = now + Duration::from_millis(self.opts.election_timeout_ms * 6);
        self.push(heal, super::Ev::HealCut { id: self.cut_id });
    }

    fn figure8_heal(&mut self) {
        if self.net.cut.take().is_some() {
            self.trace.event(self.now, Actor::Sim, "heal-cut", self.cut_id, 0, String::new);
        }
    }

    /// Crashes node `n` (what it had not persisted is lost; the script already
    /// dropped `lost` persists of it) and restarts it within half an election
    /// timeout.
    fn figure8_bounce(&mut self, n: usize, lost: usize, why: &'static str) {
        let now = self.now;
        let id = self.nodes[n].id;
        self.trace.event(now, Actor::Sim, "figure8-bounce", u64::from(id.0), lost as u64, || {
            format!("{id} ({why}; {lost} unsynced persists lost whole)")
        });
        let down_ns = self.rng_aimed.random_range(1_000_000..=self.opts.election_timeout_ms * 500_000);
        self.stop(n, Stop::Crash { disconnect: false, down_ns });
    }
}
