//! Tests of the Raft module: one scenario per rule, then randomized runs with
//! crashes, drops and partitions that check election safety and that committed
//! entries never change (Raft §5.2, §5.4).

use super::metadata::MetadataRecord;
use super::raft::*;
use crate::coverage::Mark;
use crate::ids::{NodeId, ProducerId, Term};
use crate::rng::{Rng, Seed};
use crate::time::{Duration, Instant};
use rand::Rng as _;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

struct PendingPersist {
    at: Instant,
    writes: Vec<RaftWrite>,
    sends: Vec<(NodeId, RaftMessage)>,
    marker: DurabilityMarker,
}

struct TestNode {
    raft: Option<Raft>,
    disk: RaftDurable,
    persists: VecDeque<PendingPersist>,
}

struct Cluster {
    now: Instant,
    seed: u64,
    voters: Vec<NodeId>,
    nodes: BTreeMap<NodeId, TestNode>,
    net: Vec<(Instant, u64, NodeId, NodeId, RaftMessage)>,
    seq: u64,
    cut: BTreeSet<(NodeId, NodeId)>,
    faults: Rng,
    drop_probability: f64,
    leaders: BTreeMap<Term, NodeId>,
    committed: Vec<Entry>,
    restarts: u64,
}

fn config(id: NodeId, voters: &[NodeId]) -> RaftConfig {
    RaftConfig::new(id, voters.to_vec())
}

impl Cluster {
    fn new(n: u32, seed: u64) -> Self {
        let voters: Vec<NodeId> = (1..=n).map(NodeId).collect();
        let mut nodes = BTreeMap::new();
        for &v in &voters {
            let rng = Seed(seed).indexed_stream("raft", u64::from(v.0));
            let raft = Raft::new(config(v, &voters), rng, RaftDurable::default(), Instant::ZERO);
            nodes.insert(v, TestNode { raft: Some(raft), disk: RaftDurable::default(), persists: VecDeque::new() });
        }
        Cluster {
            now: Instant::ZERO,
            seed,
            voters,
            nodes,
            net: Vec::new(),
            seq: 0,
            cut: BTreeSet::new(),
            faults: Seed(seed).stream("faults"),
            drop_probability: 0.0,
            leaders: BTreeMap::new(),
            committed: Vec::new(),
            restarts: 0,
        }
    }

    fn raft(&self, id: u32) -> &Raft {
        self.nodes[&NodeId(id)].raft.as_ref().expect("node is down")
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes.iter().find_map(|(id, n)| n.raft.as_ref().filter(|r| r.role() == RaftRole::Leader).map(|_| *id))
    }

    /// Drains `id`'s outputs into the network and its persist queue.
    fn drain(&mut self, id: NodeId) {
        let now = self.now;
        let node = self.nodes.get_mut(&id).unwrap();
        let Some(raft) = node.raft.as_mut() else { return };
        let outs: Vec<RaftOutput> = raft.drain_outputs().collect();
        let marker = raft.durability_marker();
        let mut writes = Vec::new();
        let mut after = Vec::new();
        for o in outs {
            match o {
                RaftOutput::Write(w) => writes.push(w),
                RaftOutput::Send { to, msg, after_persist: false } => {
                    self.seq += 1;
                    self.net.push((now + Duration::from_millis(5), self.seq, id, to, msg));
                }
                RaftOutput::Send { to, msg, after_persist: true } => after.push((to, msg)),
            }
        }
        if writes.is_empty() && after.is_empty() {
            return;
        }
        if writes.is_empty() && node.persists.is_empty() {
            for (to, msg) in after {
                self.seq += 1;
                self.net.push((now + Duration::from_millis(5), self.seq, id, to, msg));
            }
            return;
        }
        node.persists.push_back(PendingPersist { at: now + Duration::from_millis(2), writes, sends: after, marker });
    }

    fn step(&mut self) -> bool {
        // Earliest of: a message, a persist completion, a timer.
        let mut best: Option<(Instant, u8, NodeId, usize)> = None;
        let mut consider = |at: Instant, kind: u8, id: NodeId, i: usize| {
            if best.is_none_or(|b| (at, kind, id) < (b.0, b.1, b.2)) {
                best = Some((at, kind, id, i));
            }
        };
        for (i, m) in self.net.iter().enumerate() {
            consider(m.0, 0, m.3, i);
        }
        for (id, n) in &self.nodes {
            if let Some(r) = &n.raft {
                if let Some(p) = n.persists.front() {
                    consider(p.at, 1, *id, 0);
                }
                consider(r.poll_timeout(), 2, *id, 0);
            }
        }
        let Some((at, kind, id, i)) = best else { return false };
        if at == Instant::MAX {
            return false;
        }
        self.now = self.now.max(at);
        let now = self.now;
        match kind {
            0 => {
                let (_, _, from, to, msg) = self.net.swap_remove(i);
                let dropped = self.cut.contains(&(from, to)) || self.faults.random_bool(self.drop_probability);
                if let (false, Some(r)) = (dropped, self.nodes.get_mut(&to).unwrap().raft.as_mut()) {
                    r.handle_message(now, from, msg);
                }
                self.drain(to);
            }
            1 => {
                let node = self.nodes.get_mut(&id).unwrap();
                let p = node.persists.pop_front().unwrap();
                for w in &p.writes {
                    node.disk.apply(w);
                }
                node.raft.as_mut().unwrap().on_persisted(now, p.marker);
                for (to, msg) in p.sends {
                    self.seq += 1;
                    self.net.push((now + Duration::from_millis(5), self.seq, id, to, msg));
                }
                self.drain(id);
            }
            _ => {
                self.nodes.get_mut(&id).unwrap().raft.as_mut().unwrap().handle_timeout(now);
                self.drain(id);
            }
        }
        self.check();
        true
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        while self.now < until && self.step() {}
    }

    fn propose(&mut self, value: u64) -> Option<LogIndex> {
        let leader = self.leader()?;
        let now = self.now;
        let r = self.nodes.get_mut(&leader).unwrap().raft.as_mut().unwrap();
        let index = r.propose(now, MetadataRecord::AllocateProducerIds { first: ProducerId(value), count: 1 }).ok();
        self.drain(leader);
        index
    }

    fn crash(&mut self, id: NodeId) {
        let n = self.nodes.get_mut(&id).unwrap();
        n.raft = None;
        n.persists.clear();
        self.net.retain(|m| m.3 != id);
    }

    fn restart(&mut self, id: NodeId) {
        self.restarts += 1;
        let rng = Seed(self.seed).indexed_stream("raft-restart", self.restarts);
        let n = self.nodes.get_mut(&id).unwrap();
        n.raft = Some(Raft::new(config(id, &self.voters), rng, n.disk.clone(), self.now));
    }

    fn isolate(&mut self, id: NodeId) {
        for &v in &self.voters {
            if v != id {
                self.cut.insert((id, v));
                self.cut.insert((v, id));
            }
        }
    }

    /// Election safety and committed-prefix safety, after every step.
    fn check(&mut self) {
        for (id, n) in &self.nodes {
            let Some(r) = &n.raft else { continue };
            r.check_invariants();
            if r.role() == RaftRole::Leader {
                let prev = *self.leaders.entry(r.term()).or_insert(*id);
                assert_eq!(prev, *id, "two leaders in term {}", r.term());
            }
            let mine = r.committed_after(0);
            let common = mine.len().min(self.committed.len());
            assert_eq!(&mine[..common], &self.committed[..common], "node {id} disagrees on a committed entry");
            if mine.len() > self.committed.len() {
                self.committed = mine.to_vec();
            }
        }
    }
}

#[test]
fn elects_one_leader_and_commits_its_leader_change_entry() {
    let mut c = Cluster::new(3, 1);
    c.run_for(Duration::from_secs(5));
    let leader = c.leader().expect("a leader after 5 s");
    let r = c.raft(leader.0);
    assert_eq!(r.commit_index(), 1);
    assert_eq!(r.committed_after(0)[0].record, MetadataRecord::LeaderChange { leader });
    for id in 1..=3 {
        assert_eq!(c.raft(id).leader(), Some(leader));
        assert_eq!(c.raft(id).commit_index(), 1, "followers learn the commit index");
    }
}

#[test]
fn a_lone_voter_leads_only_after_its_vote_is_durable() {
    let mut c = Cluster::new(1, 2);
    // Fire the election timer by hand and look before any persist completes.
    let deadline = c.raft(1).poll_timeout();
    c.now = deadline;
    let r = c.nodes.get_mut(&NodeId(1)).unwrap().raft.as_mut().unwrap();
    r.handle_timeout(deadline);
    assert_eq!(r.role(), RaftRole::Candidate);
    c.drain(NodeId(1));
    c.run_for(Duration::from_millis(10));
    assert_eq!(c.raft(1).role(), RaftRole::Leader);
    assert_eq!(c.nodes[&NodeId(1)].disk.vote, Some(NodeId(1)));
    assert_eq!(c.raft(1).commit_index(), 1);
}

#[test]
fn proposals_commit_on_a_majority_and_survive_a_minority_crash() {
    let mut c = Cluster::new(5, 3);
    c.run_for(Duration::from_secs(5));
    let leader = c.leader().unwrap();
    let others: Vec<NodeId> = c.voters.iter().copied().filter(|v| *v != leader).collect();
    c.crash(others[0]);
    c.crash(others[1]);
    for v in 0..10 {
        c.propose(v).unwrap();
    }
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.raft(leader.0).commit_index(), 11);
    c.crash(others[2]);
    c.propose(99).unwrap();
    c.run_for(Duration::from_secs(1));
    assert_eq!(c.raft(leader.0).commit_index(), 11, "no majority: nothing more commits");
}

#[test]
fn votes_are_refused_to_candidates_with_a_less_up_to_date_log() {
    let voters = [NodeId(1), NodeId(2)];
    let entry =
        |term, index| Entry { term: Term(term), index, record: MetadataRecord::LeaderChange { leader: NodeId(1) } };
    let durable = RaftDurable { term: Term(3), vote: None, entries: vec![entry(1, 1), entry(3, 2)] };
    let mut r = Raft::new(config(NodeId(1), &voters), Seed(0).stream("r"), durable, Instant::ZERO);
    let now = Instant::from_millis(10_000);
    assert_eq!(r.coverage().get(Mark::VoteRefusedStaleLog), 0);
    // Higher term but an older last entry term: refused (§5.4.1).
    r.handle_message(now, NodeId(2), RaftMessage::Vote { term: Term(4), last_term: Term(2), last_index: 9 });
    // Same last term but shorter: refused.
    r.handle_message(now, NodeId(2), RaftMessage::Vote { term: Term(5), last_term: Term(3), last_index: 1 });
    // As up to date: granted, and the grant waits for the vote to be durable.
    r.handle_message(now, NodeId(2), RaftMessage::Vote { term: Term(6), last_term: Term(3), last_index: 2 });
    let outs: Vec<RaftOutput> = r.drain_outputs().collect();
    let replies: Vec<(bool, bool)> = outs
        .iter()
        .filter_map(|o| match o {
            RaftOutput::Send { msg: RaftMessage::VoteReply { granted, .. }, after_persist, .. } => {
                Some((*granted, *after_persist))
            }
            _ => None,
        })
        .collect();
    assert_eq!(replies, vec![(false, true), (false, true), (true, true)]);
    assert_eq!(r.coverage().get(Mark::VoteRefusedStaleLog), 2, "each refusal counts once, the grant not");
    let last_hard_state = outs.iter().rev().find_map(|o| match o {
        RaftOutput::Write(RaftWrite::HardState { term, vote }) => Some((*term, *vote)),
        _ => None,
    });
    assert_eq!(last_hard_state, Some((Term(6), Some(NodeId(2)))));
}

#[test]
fn one_vote_per_term_even_across_a_restart() {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let mut disk = RaftDurable::default();
    let mut r = Raft::new(config(NodeId(1), &voters), Seed(0).stream("r"), disk.clone(), Instant::ZERO);
    let now = Instant::from_millis(10_000);
    r.handle_message(now, NodeId(2), RaftMessage::Vote { term: Term(1), last_term: Term(0), last_index: 0 });
    for o in r.drain_outputs() {
        if let RaftOutput::Write(w) = o {
            disk.apply(&w);
        }
    }
    let mut r = Raft::new(config(NodeId(1), &voters), Seed(1).stream("r"), disk, now);
    r.handle_message(now, NodeId(3), RaftMessage::Vote { term: Term(1), last_term: Term(0), last_index: 0 });
    let granted = r
        .drain_outputs()
        .any(|o| matches!(o, RaftOutput::Send { msg: RaftMessage::VoteReply { granted: true, .. }, .. }));
    assert!(!granted, "voted twice in term 1");
}

#[test]
fn a_leader_does_not_commit_a_previous_term_entry_by_counting_replicas() {
    // Raft figure 8: the leader of term 4 holds an entry of term 2 that a majority
    // has; it must not commit it until an entry of term 4 is replicated.
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let entry =
        |term, index| Entry { term: Term(term), index, record: MetadataRecord::LeaderChange { leader: NodeId(1) } };
    let durable = RaftDurable { term: Term(3), vote: None, entries: vec![entry(1, 1), entry(2, 2)] };
    let mut r = Raft::new(config(NodeId(1), &voters), Seed(0).stream("r"), durable, Instant::ZERO);
    let t = r.poll_timeout();
    r.handle_timeout(t); // pre-vote
    r.handle_message(t, NodeId(2), RaftMessage::PreVoteReply { term: Term(4), granted: true });
    r.handle_message(t, NodeId(2), RaftMessage::VoteReply { term: Term(4), granted: true });
    let m = r.durability_marker();
    r.on_persisted(t, m);
    assert_eq!(r.role(), RaftRole::Leader);
    assert_eq!(r.term(), Term(4));
    // The leader's own LeaderChange entry (index 3) is durable; node 2 reports it
    // holds index 2 (term 2) but not yet 3: a majority holds index 2.
    let m = r.durability_marker();
    r.on_persisted(t, m);
    r.handle_message(t, NodeId(2), RaftMessage::AppendReply { term: Term(4), success: true, last_index: 2, round: 0 });
    assert_eq!(r.commit_index(), 0, "index 2 is from term 2: not committed by counting");
    r.handle_message(t, NodeId(2), RaftMessage::AppendReply { term: Term(4), success: true, last_index: 3, round: 0 });
    assert_eq!(r.commit_index(), 3, "the term-4 entry commits, and index 2 with it");
}

/// Heartbeat answers that grant a broker its delivery lease wait for a
/// confirmation round begun after the heartbeat arrived (the ReadIndex check):
/// answers to older rounds, a minority's, or replies of another term confirm
/// nothing, whatever the log's commit index.
#[test]
fn a_confirmation_round_needs_a_majority_answering_a_round_begun_after_the_request() {
    let mut c = Cluster::new(3, 4);
    c.run_for(Duration::from_secs(5));
    let leader = c.leader().unwrap();
    let others: Vec<NodeId> = c.voters.iter().copied().filter(|v| *v != leader).collect();
    let r = c.nodes.get_mut(&leader).unwrap().raft.as_mut().unwrap();
    let now = c.now;
    let before = r.round();
    let need = r.request_confirmation(now);
    assert!(need > before, "the round asked for begins after the request");
    assert!(r.confirmed_round() < need);
    let term = r.term();
    // Old rounds and replies of another term prove nothing.
    r.handle_message(now, others[0], RaftMessage::AppendReply { term, success: true, last_index: 0, round: before });
    r.handle_message(now, others[1], RaftMessage::AppendReply { term, success: true, last_index: 0, round: before });
    assert!(r.confirmed_round() < need, "rounds from before the request confirmed it");
    let forged = RaftMessage::AppendReply { term, success: true, last_index: 0, round: need + 5 };
    r.handle_message(now, others[0], forged);
    // One follower with the leader is a majority of three: a refusal of the same
    // term counts too (it proves that voter had not moved to a later term).
    let refusal = RaftMessage::AppendReply { term, success: false, last_index: 0, round: need };
    r.handle_message(now, others[1], refusal);
    assert!(r.confirmed_round() >= need, "a majority answered the round");
    // A second request while nothing is unanswered starts another round.
    let again = r.request_confirmation(now);
    assert!(again > need && r.confirmed_round() < again);
}

#[test]
fn a_leader_counts_only_its_durable_entries() {
    let voters = [NodeId(1), NodeId(2), NodeId(3)];
    let mut c = Cluster::new(3, 4);
    c.run_for(Duration::from_secs(5));
    let leader = c.leader().unwrap();
    let _ = voters;
    let r = c.nodes.get_mut(&leader).unwrap().raft.as_mut().unwrap();
    let now = c.now;
    let idx = r.propose(now, MetadataRecord::DeleteTopic { topic: "x".into() }).unwrap();
    // One follower acknowledges; with the leader's own copy not yet durable there
    // is still a majority (2 of 3) — but both followers are needed if the leader's
    // write is pending. Here one follower alone must not suffice.
    let follower = c.voters.iter().copied().find(|v| *v != leader).unwrap();
    r.handle_message(
        now,
        follower,
        RaftMessage::AppendReply { term: r.term(), success: true, last_index: idx, round: 0 },
    );
    assert!(r.commit_index() < idx, "committed with the leader's own copy not durable");
    let m = r.durability_marker();
    r.on_persisted(now, m);
    assert_eq!(r.commit_index(), idx);
}

#[test]
fn a_follower_truncates_a_conflicting_uncommitted_tail() {
    let voters = [NodeId(1), NodeId(2)];
    let entry =
        |term, index| Entry { term: Term(term), index, record: MetadataRecord::LeaderChange { leader: NodeId(1) } };
    let durable = RaftDurable { term: Term(2), vote: None, entries: vec![entry(1, 1), entry(2, 2), entry(2, 3)] };
    let mut r = Raft::new(config(NodeId(1), &voters), Seed(0).stream("r"), durable, Instant::ZERO);
    let now = Instant::from_millis(1);
    r.handle_message(
        now,
        NodeId(2),
        RaftMessage::Append {
            term: Term(3),
            prev_index: 1,
            prev_term: Term(1),
            entries: vec![entry(3, 2)],
            commit: 1,
            round: 0,
        },
    );
    let outs: Vec<RaftOutput> = r.drain_outputs().collect();
    assert!(outs.contains(&RaftOutput::Write(RaftWrite::Truncate(2))));
    assert!(outs.contains(&RaftOutput::Write(RaftWrite::Append(vec![entry(3, 2)]))));
    assert!(outs.iter().any(|o| matches!(
        o,
        RaftOutput::Send {
            msg: RaftMessage::AppendReply { success: true, last_index: 2, .. },
            after_persist: true,
            ..
        }
    )));
    assert_eq!(r.last_index(), 2);
    assert_eq!(r.commit_index(), 1);
    assert_eq!(r.coverage().get(Mark::LogTruncatedByConflict), 1);
    assert_eq!(r.coverage().get(Mark::AppendPrevMismatch), 0);
}

/// Found by the `controller` fuzz target: a peer's term of `u64::MAX` was
/// adopted, and the next election overflowed `Term::next` (a panic in debug
/// builds, a wrap to term 0 in release).
#[test]
fn a_term_without_successor_is_dropped() {
    let voters = [NodeId(1), NodeId(2)];
    let mut r = Raft::new(config(NodeId(1), &voters), Seed(0).stream("r"), RaftDurable::default(), Instant::ZERO);
    let now = Instant::from_millis(10_000);
    let max = Term(u64::MAX);
    r.handle_message(now, NodeId(2), RaftMessage::Vote { term: max, last_term: max, last_index: 9 });
    r.handle_message(now, NodeId(2), RaftMessage::AppendReply { term: max, success: false, last_index: 0, round: 0 });
    assert_eq!(r.term(), Term(0));
    assert_eq!(r.drain_outputs().count(), 0, "nothing is written or answered");
    r.handle_timeout(now);
    r.check_invariants();
}

/// Found by the `controller` fuzz target (a 120 s run): a refusal whose
/// `last_index` is u64::MAX overflowed the leader's next index (a panic in debug
/// builds).
#[test]
fn a_refusal_with_an_absurd_last_index_does_not_overflow() {
    let mut c = Cluster::new(3, 5);
    c.run_for(Duration::from_secs(5));
    let leader = c.leader().expect("a leader");
    let term = c.raft(leader.0).term();
    let other = c.voters.iter().copied().find(|v| *v != leader).unwrap();
    let now = c.now;
    let reply = RaftMessage::AppendReply { term, success: false, last_index: u64::MAX, round: 0 };
    let node = c.nodes.get_mut(&leader).and_then(|n| n.raft.as_mut()).expect("the leader runs");
    node.handle_message(now, other, reply);
    node.check_invariants();
    c.drain(leader);
    c.run_for(Duration::from_secs(5));
    assert!(c.propose(7).is_some(), "the cluster still commits");
    c.check();
}

/// Seen while writing the `controller` fuzz target (reading `handle_append`, before
/// the target ran): entries whose indexes do not follow `prev_index` (index 0
/// underflowed; a gap left the log non-contiguous).
#[test]
fn an_append_whose_entries_do_not_follow_prev_index_is_dropped() {
    let voters = [NodeId(1), NodeId(2)];
    let entry =
        |term, index| Entry { term: Term(term), index, record: MetadataRecord::LeaderChange { leader: NodeId(2) } };
    let mut r = Raft::new(config(NodeId(1), &voters), Seed(0).stream("r"), RaftDurable::default(), Instant::ZERO);
    let now = Instant::from_millis(1);
    let append = |prev_index, entries| RaftMessage::Append {
        term: Term(2),
        prev_index,
        prev_term: Term(0),
        entries,
        commit: 0,
        round: 0,
    };
    for bad in [
        append(0, vec![entry(1, 0)]),              // index 0
        append(0, vec![entry(1, 1), entry(1, 3)]), // a gap
        append(0, vec![entry(2, 1), entry(1, 2)]), // terms going down
        append(0, vec![entry(3, 1)]),              // a term above the leader's
    ] {
        r.handle_message(now, NodeId(2), bad);
        r.check_invariants();
    }
    assert_eq!(r.last_index(), 0);
    assert_eq!(r.term(), Term(0), "a malformed append changes nothing, not even the term");
    r.handle_message(now, NodeId(2), append(0, vec![entry(1, 1), entry(2, 2)]));
    r.check_invariants();
    assert_eq!(r.last_index(), 2, "a well-formed append is still taken");
}

#[test]
fn a_rejoining_node_does_not_disrupt_a_stable_leader() {
    let mut c = Cluster::new(3, 5);
    c.run_for(Duration::from_secs(5));
    let leader = c.leader().unwrap();
    let term = c.raft(leader.0).term();
    let other = c.voters.iter().copied().find(|v| *v != leader).unwrap();
    c.isolate(other);
    c.run_for(Duration::from_secs(20));
    assert_eq!(c.raft(other.0).term(), term, "PreVote keeps an isolated node's term");
    c.cut.clear();
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.leader(), Some(leader));
    assert_eq!(c.raft(leader.0).term(), term);
}

#[test]
fn an_isolated_leader_steps_down_and_the_majority_elects_another() {
    let mut c = Cluster::new(3, 6);
    c.run_for(Duration::from_secs(5));
    let old = c.leader().unwrap();
    c.isolate(old);
    c.run_for(Duration::from_secs(10));
    assert_ne!(c.raft(old.0).role(), RaftRole::Leader, "check-quorum");
    assert_eq!(c.raft(old.0).coverage().get(Mark::CheckQuorumStepDown), 1);
    let new = c.leader().expect("the majority elected a leader");
    assert_ne!(new, old);
    c.cut.clear();
    c.propose(7).unwrap();
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.raft(old.0).commit_index(), c.raft(new.0).commit_index());
}

/// Randomized: crashes, restarts, partitions and drops; after every step, one
/// leader per term and committed entries never change; after healing, progress.
#[test]
fn random_faults_keep_election_safety_and_committed_entries() {
    let seeds = std::env::var("MQ_RAFT_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40u64);
    for seed in 0..seeds {
        let mut f = Seed(seed).stream("schedule");
        let n = f.random_range(1..=5u32);
        let mut c = Cluster::new(n, seed);
        c.drop_probability = f.random_range(0.0..0.2);
        let mut value = 0;
        for _round in 0..30 {
            match f.random_range(0..10) {
                0 => {
                    let id = NodeId(f.random_range(1..=n));
                    if c.nodes[&id].raft.is_some() {
                        c.crash(id);
                    } else {
                        c.restart(id);
                    }
                }
                1 => c.isolate(NodeId(f.random_range(1..=n))),
                2 => c.cut.clear(),
                _ => {
                    value += 1;
                    c.propose(value);
                }
            }
            c.run_for(Duration::from_millis(f.random_range(50..2000)));
        }
        // Heal everything and require progress.
        c.cut.clear();
        c.drop_probability = 0.0;
        for id in c.voters.clone() {
            if c.nodes[&id].raft.is_none() {
                c.restart(id);
            }
        }
        c.run_for(Duration::from_secs(10));
        let before = c.committed.len();
        let proposed = c.propose(1_000_000);
        assert!(proposed.is_some(), "seed {seed}: no leader after healing");
        c.run_for(Duration::from_secs(5));
        assert!(c.committed.len() > before, "seed {seed}: nothing committed after healing");
    }
}
