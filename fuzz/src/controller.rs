//! The `controller` target: the metadata quorum's Raft ([`Raft`], the replica
//! every voter runs inside its node) driven two ways, chosen by the first byte:
//!
//! - **one replica, arbitrary peers**: a replica among 1 to 3 voters receives
//!   arbitrary Raft messages (any term, index, commit, entries) from the other
//!   voters, timeouts at arbitrary times, proposals, completions of its writes
//!   and crashes;
//! - **a cluster of 1 to 3 replicas**: real replicas talk through a network the
//!   fuzzer controls (deliver any message in flight, drop, duplicate), with
//!   timeouts, completions, crashes and proposals on any of them.
//!
//! The driver plays the node's part of the contract as `node/quorum_host.rs`
//! does: writes become durable only when the fuzzer completes them, and sends
//! marked `after_persist` leave only once every write emitted before them is
//! durable; a crash loses the rest.
//!
//! Checks: `check_invariants` after every input; a granted vote leaves only once
//! the voter's term and vote are durable, and a voter never grants two candidates
//! in one term (across crashes too); a request for votes leaves only once the
//! candidate's own vote is durable; a successful append reply leaves only once the
//! entries it acknowledges are durable; a replica's term never goes down while it
//! runs. In cluster mode also: at most one leader per term, and every index ever
//! reported committed holds the same entry on every replica, forever.

use crate::arb::{self, Hints};
use crate::{raft_peer_is_honest, Steps};
use arbitrary::Unstructured;
use mq_core::controller::raft::{DurabilityMarker, Entry, LogIndex};
use mq_core::controller::{
    MetadataRecord, Raft, RaftConfig, RaftDurable, RaftMessage, RaftOutput, RaftRole, RaftWrite,
};
use mq_core::{Duration, Instant, NodeId, Seed, Term};
use std::collections::{BTreeMap, VecDeque};

const MAX_STEPS: usize = 300;

/// Writes of one drain and what waits for them.
#[derive(Default)]
struct Batch {
    writes: Vec<RaftWrite>,
    marker: Option<DurabilityMarker>,
    /// `after_persist` sends released once this batch is durable.
    held: Vec<(NodeId, RaftMessage)>,
}

struct Replica {
    id: NodeId,
    config: RaftConfig,
    raft: Raft,
    durable: RaftDurable,
    batches: VecDeque<Batch>,
    incarnation: u64,
    seed: u64,
    /// The term last seen while running (reset by a crash).
    term: Term,
}

/// Facts every replica's outputs must agree with.
#[derive(Default)]
struct World {
    /// The candidate each voter granted per term.
    votes: BTreeMap<(NodeId, Term), NodeId>,
    /// The leader of each term.
    leaders: BTreeMap<Term, NodeId>,
    /// Entries ever reported committed.
    committed: BTreeMap<LogIndex, Entry>,
    /// Messages released and not yet delivered: (from, to, message).
    network: Vec<(NodeId, NodeId, RaftMessage)>,
    hints: Hints,
}

impl Replica {
    fn new(id: NodeId, voters: &[NodeId], seed: u64) -> Self {
        let config = RaftConfig {
            election_timeout: Duration::from_millis(100),
            heartbeat_interval: Duration::from_millis(20),
            max_entries_per_append: 4,
            ..RaftConfig::new(id, voters.to_vec())
        };
        let durable = RaftDurable::default();
        let raft = Raft::new(
            config.clone(),
            Seed(seed).indexed_stream("raft", u64::from(id.0)),
            durable.clone(),
            Instant::ZERO,
        );
        Replica { id, config, raft, durable, batches: VecDeque::new(), incarnation: 0, seed, term: Term(0) }
    }

    fn crash(&mut self, now: Instant) {
        self.batches.clear();
        self.incarnation += 1;
        let rng = Seed(self.seed).child("incarnation", self.incarnation).indexed_stream("raft", u64::from(self.id.0));
        self.raft = Raft::new(self.config.clone(), rng, self.durable.clone(), now);
        self.term = self.raft.term();
        self.raft.check_invariants();
    }

    /// Takes the replica's outputs: writes wait for the fuzzer, `after_persist`
    /// sends wait for the writes before them, other sends go out now.
    fn drain(&mut self, world: &mut World) {
        self.raft.check_invariants();
        assert!(self.raft.term() >= self.term, "{}: the term went down while running", self.id);
        self.term = self.raft.term();
        if self.raft.role() == RaftRole::Leader {
            let leader = *world.leaders.entry(self.raft.term()).or_insert(self.id);
            assert_eq!(leader, self.id, "two leaders in term {}", self.raft.term());
        }
        let mut batch = Batch::default();
        let outs: Vec<RaftOutput> = self.raft.drain_outputs().collect();
        for out in outs {
            match out {
                RaftOutput::Write(w) => batch.writes.push(w),
                RaftOutput::Send { to, msg, after_persist } => {
                    world.hints.collect(&msg);
                    let waits = after_persist && (!batch.writes.is_empty() || !self.batches.is_empty());
                    if waits {
                        batch.held.push((to, msg));
                    } else {
                        self.release(to, msg, world);
                    }
                }
            }
        }
        if !batch.writes.is_empty() {
            batch.marker = Some(self.raft.durability_marker());
        }
        if !batch.writes.is_empty() || !batch.held.is_empty() {
            self.batches.push_back(batch);
        }
        for e in self.raft.committed_after(0) {
            let first = world.committed.entry(e.index).or_insert_with(|| e.clone());
            assert_eq!(first, e, "index {} committed with two different entries", e.index);
        }
    }

    /// A message leaves: check that what it promises is durable.
    fn release(&mut self, to: NodeId, msg: RaftMessage, world: &mut World) {
        match &msg {
            RaftMessage::VoteReply { term, granted: true } => {
                assert_eq!(
                    (self.durable.term, self.durable.vote),
                    (*term, Some(to)),
                    "{} granted {to} a vote in term {term} before it was durable",
                    self.id
                );
                let first = *world.votes.entry((self.id, *term)).or_insert(to);
                assert_eq!(first, to, "{} voted for {first} and {to} in term {term}", self.id);
            }
            RaftMessage::Vote { term, .. } => {
                assert_eq!(
                    (self.durable.term, self.durable.vote),
                    (*term, Some(self.id)),
                    "{} asked for votes in term {term} before its own vote was durable",
                    self.id
                );
            }
            RaftMessage::AppendReply { success: true, last_index, .. } => {
                assert!(
                    self.durable.entries.len() as u64 >= *last_index,
                    "{} acknowledged entries up to {last_index} with {} durable",
                    self.id,
                    self.durable.entries.len()
                );
            }
            _ => {}
        }
        world.network.push((self.id, to, msg));
    }

    /// The oldest batch is durable.
    fn persist_one(&mut self, now: Instant, world: &mut World) {
        let Some(batch) = self.batches.pop_front() else { return };
        for w in &batch.writes {
            self.durable.apply(w);
        }
        if let Some(marker) = batch.marker {
            self.raft.on_persisted(now, marker);
        }
        for (to, msg) in batch.held {
            self.release(to, msg, world);
        }
        self.drain(world);
    }
}

/// Runs one input sequence.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let setup: u8 = u.arbitrary().unwrap_or(0);
    let voters: Vec<NodeId> = (1..=1 + u32::from(setup % 3)).map(NodeId).collect();
    let cluster = setup & 0x80 != 0;
    let seed = u64::from(setup);
    let mut world = World::default();
    // One replica (node 1, or node 4 outside the quorum) or every voter.
    let mut replicas: Vec<Replica> = if cluster {
        voters.iter().map(|&id| Replica::new(id, &voters, seed)).collect()
    } else {
        let me = if setup & 0x40 != 0 { NodeId(4) } else { NodeId(1) };
        vec![Replica::new(me, &voters, seed)]
    };
    let mut now = Instant::ZERO;
    let mut steps = Steps::new(MAX_STEPS);
    while steps.next(&u) {
        let k = u.choose_index(replicas.len()).unwrap_or(0);
        let choice: u8 = u.arbitrary().unwrap_or(0);
        match choice % 12 {
            0..=3 if cluster => {
                if world.network.is_empty() {
                    continue;
                }
                let i = u.choose_index(world.network.len()).unwrap_or(0);
                let (from, to, msg) = if u.arbitrary::<u8>().unwrap_or(0) % 8 == 0 {
                    world.network[i].clone() // delivered and kept: a duplicate
                } else {
                    world.network.swap_remove(i)
                };
                if let Some(r) = replicas.iter_mut().find(|r| r.id == to) {
                    r.raft.handle_message(now, from, msg);
                    r.drain(&mut world);
                }
            }
            0..=3 => {
                let r = &mut replicas[0];
                let others: Vec<NodeId> = voters.iter().copied().filter(|v| *v != r.id).collect();
                if others.is_empty() {
                    continue;
                }
                let from = others[u.choose_index(others.len()).unwrap_or(0)];
                let Ok(msg) = arb::value::<RaftMessage>(&mut u, &world.hints) else { continue };
                if !raft_peer_is_honest(&r.raft, &msg) {
                    continue;
                }
                r.raft.handle_message(now, from, msg);
                r.drain(&mut world);
                // What the replica sent is not delivered anywhere.
                world.network.clear();
            }
            4 if cluster => {
                if !world.network.is_empty() {
                    let i = u.choose_index(world.network.len()).unwrap_or(0);
                    world.network.swap_remove(i);
                }
            }
            4..=5 => {
                let r = &mut replicas[k];
                now = now.max(r.raft.poll_timeout().min(now + Duration::from_secs(10)));
                r.raft.handle_timeout(now);
                r.drain(&mut world);
            }
            6 => {
                let ms = arb::number(&mut u, &world.hints, 5_000);
                now = now + Duration::from_millis(ms);
                let r = &mut replicas[k];
                r.raft.handle_timeout(now);
                r.drain(&mut world);
            }
            7..=9 => replicas[k].persist_one(now, &mut world),
            10 => {
                let record = match arb::value::<MetadataRecord>(&mut u, &world.hints) {
                    Ok(record) => record,
                    Err(_) => continue,
                };
                let r = &mut replicas[k];
                let _ = r.raft.propose(now, record);
                r.drain(&mut world);
            }
            _ => {
                replicas[k].crash(now);
                if !cluster {
                    // A lone replica among forged peers: its commit index is not
                    // durable, so after a restart a forged leader may rewrite what
                    // it had committed; Raft's guarantee needs honest peers (cluster
                    // mode checks it).
                    world.committed.clear();
                }
            }
        }
        if !cluster {
            world.network.clear();
        }
    }
}
