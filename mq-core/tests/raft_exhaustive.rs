//! Exhaustive small-scope checking of the controller's Raft (issue 9): every
//! interleaving of message deliveries, duplicate deliveries, timer firings, disk
//! completions, crashes and proposals among 2 or 3 voters, up to bounds on how many
//! messages the network carries, how many timers fire and how many crashes happen.
//! It drives the real [`Raft`] of `mq-core` (not a model of it), cloning replicas
//! to branch, and checks in every reachable state:
//!
//! - election safety: at most one leader per term;
//! - committed entries never change: every replica's committed prefix agrees with
//!   the longest committed prefix seen so far, on every path;
//! - leader completeness: a replica that becomes leader holds every entry committed
//!   so far;
//! - the replica's own `check_invariants`, and no panic in any handler.
//!
//! States are deduplicated by a hash of their full debug rendering (clock, replicas
//! with their random streams, disks, unpersisted writes, the network multiset and the
//! remaining budgets), so interleavings that commute are explored once. Time moves
//! only when a timer fires: the clock jumps to that replica's next deadline, which is
//! the earliest moment the real driver would fire it; other replicas' timers may fire
//! later than their deadlines, as on a loaded machine.
//!
//! The scopes run by `cargo test` are small enough to finish in seconds; larger ones
//! are set through `MQ_RAFT_SCOPE` (see [`scope`]) and best run in release:
//! `MQ_RAFT_SCOPE="deliveries=14 timeouts=3" cargo test --release -p mq-core --test raft_exhaustive -- --nocapture`.
//! docs/simulator.md reports the state counts and which known-bug mutants of the
//! Raft module these scopes catch.

use mq_core::controller::metadata::MetadataRecord;
use mq_core::controller::raft::{DurabilityMarker, Entry};
use mq_core::controller::{Raft, RaftConfig, RaftDurable, RaftMessage, RaftOutput, RaftRole, RaftWrite};
use mq_core::ids::{NodeId, ProducerId, Term};
use mq_core::{Instant, Seed};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Bounds of one search.
#[derive(Clone, Copy, Debug)]
struct Scope {
    voters: u32,
    /// Message deliveries in all (sends are free; undelivered messages stay in
    /// flight, which is how a lost message looks within the bound).
    deliveries: u32,
    /// Timer firings in all.
    timeouts: u32,
    crashes: u32,
    /// Deliveries that leave the message in flight (a duplicate).
    duplicates: u32,
    proposals: u32,
    /// Give up (and fail) beyond this many distinct states: the scope is too big.
    max_states: usize,
}

/// One replica and what its driver holds for it.
#[derive(Clone, Debug)]
struct Replica {
    raft: Raft,
    disk: RaftDurable,
    /// Writes emitted and not yet durable.
    pending: Vec<RaftWrite>,
    /// Sends that wait for `pending` to be durable.
    held: Vec<(NodeId, RaftMessage)>,
    incarnation: u64,
}

#[derive(Clone, Debug)]
struct World {
    now: Instant,
    replicas: Vec<Replica>,
    /// In flight: (from, to, message).
    net: Vec<(NodeId, NodeId, RaftMessage)>,
    deliveries_left: u32,
    timeouts_left: u32,
    crashes_left: u32,
    duplicates_left: u32,
    proposals_left: u32,
    /// Observations along the path (part of the state: the checks depend on them).
    leaders: BTreeMap<Term, NodeId>,
    committed: Vec<Entry>,
    /// For each committed entry, the term in which it was first seen committed
    /// (the term of the replica that showed it: the committing leader's, or a later
    /// one).
    committed_in: Vec<Term>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Deliver(usize),
    Duplicate(usize),
    Timeout(usize),
    Persist(usize),
    Crash(usize),
    Propose(usize),
}

fn voters(n: u32) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

fn new_raft(id: NodeId, all: &[NodeId], incarnation: u64, disk: RaftDurable, now: Instant) -> Raft {
    let rng = Seed(7).indexed_stream("raft-exhaustive", u64::from(id.0) << 8 | incarnation);
    Raft::new(RaftConfig::new(id, all.to_vec()), rng, disk, now)
}

impl World {
    fn new(scope: &Scope) -> World {
        let all = voters(scope.voters);
        let replicas = all
            .iter()
            .map(|&id| Replica {
                raft: new_raft(id, &all, 0, RaftDurable::default(), Instant::ZERO),
                disk: RaftDurable::default(),
                pending: Vec::new(),
                held: Vec::new(),
                incarnation: 0,
            })
            .collect();
        World {
            now: Instant::ZERO,
            replicas,
            net: Vec::new(),
            deliveries_left: scope.deliveries,
            timeouts_left: scope.timeouts,
            crashes_left: scope.crashes,
            duplicates_left: scope.duplicates,
            proposals_left: scope.proposals,
            leaders: BTreeMap::new(),
            committed: Vec::new(),
            committed_in: Vec::new(),
        }
    }

    fn id(&self, i: usize) -> NodeId {
        NodeId(i as u32 + 1)
    }

    fn actions(&self) -> Vec<Action> {
        let mut out = Vec::new();
        // Deliveries of identical messages lead to identical states: offer one.
        let mut seen = HashSet::new();
        for (k, m) in self.net.iter().enumerate().filter(|_| self.deliveries_left > 0) {
            if seen.insert(format!("{m:?}")) {
                out.push(Action::Deliver(k));
                if self.duplicates_left > 0 {
                    out.push(Action::Duplicate(k));
                }
            }
        }
        for (i, r) in self.replicas.iter().enumerate() {
            if !r.pending.is_empty() && self.crashes_left > 0 {
                out.push(Action::Persist(i));
            }
            if self.timeouts_left > 0 && r.raft.poll_timeout() < Instant::MAX {
                out.push(Action::Timeout(i));
            }
            if self.crashes_left > 0 {
                out.push(Action::Crash(i));
            }
            if self.proposals_left > 0 && r.raft.role() == RaftRole::Leader {
                out.push(Action::Propose(i));
            }
        }
        out
    }

    fn apply(&mut self, a: Action) {
        match a {
            Action::Deliver(k) | Action::Duplicate(k) => {
                let (from, to, msg) =
                    if a == Action::Deliver(k) { self.net.swap_remove(k) } else { self.net[k].clone() };
                self.deliveries_left -= 1;
                if matches!(a, Action::Duplicate(_)) {
                    self.duplicates_left -= 1;
                }
                let i = to.0 as usize - 1;
                let now = self.now;
                self.replicas[i].raft.handle_message(now, from, msg);
                self.drain(i);
            }
            Action::Timeout(i) => {
                self.timeouts_left -= 1;
                self.now = self.now.max(self.replicas[i].raft.poll_timeout());
                let now = self.now;
                self.replicas[i].raft.handle_timeout(now);
                self.drain(i);
            }
            Action::Persist(i) => {
                let r = &mut self.replicas[i];
                for w in r.pending.drain(..) {
                    r.disk.apply(&w);
                }
                let marker: DurabilityMarker = r.raft.durability_marker();
                let held: Vec<_> = r.held.drain(..).collect();
                let now = self.now;
                r.raft.on_persisted(now, marker);
                let from = self.id(i);
                for (to, msg) in held {
                    self.put(from, to, msg);
                }
                self.drain(i);
            }
            Action::Crash(i) => {
                self.crashes_left -= 1;
                let all = voters(self.replicas.len() as u32);
                let id = self.id(i);
                let now = self.now;
                let r = &mut self.replicas[i];
                r.incarnation += 1;
                r.pending.clear();
                r.held.clear();
                r.raft = new_raft(id, &all, r.incarnation, r.disk.clone(), now);
                self.drain(i);
                if self.crashes_left == 0 {
                    // See `drain`: from now on every replica persists at once.
                    for j in 0..self.replicas.len() {
                        if !self.replicas[j].pending.is_empty() {
                            self.apply(Action::Persist(j));
                        }
                    }
                }
            }
            Action::Propose(i) => {
                self.proposals_left -= 1;
                let now = self.now;
                let first = ProducerId(u64::from(self.proposals_left));
                let _ = self.replicas[i].raft.propose(now, MetadataRecord::AllocateProducerIds { first, count: 1 });
                self.drain(i);
            }
        }
    }

    fn put(&mut self, from: NodeId, to: NodeId, msg: RaftMessage) {
        self.net.push((from, to, msg));
    }

    /// Once no crash is left, a write's durability is observable only as a delay of
    /// the sends waiting for it, which delivery order already covers: the replica
    /// persists at once (a reduction of the search, not of the behaviours checked
    /// for safety).
    fn drain(&mut self, i: usize) {
        self.drain_outputs(i);
        if self.crashes_left == 0 && !self.replicas[i].pending.is_empty() {
            self.apply(Action::Persist(i));
        }
    }

    fn drain_outputs(&mut self, i: usize) {
        let from = self.id(i);
        let outs: Vec<RaftOutput> = self.replicas[i].raft.drain_outputs().collect();
        for o in outs {
            match o {
                RaftOutput::Write(w) => self.replicas[i].pending.push(w),
                RaftOutput::Send { to, msg, after_persist } => {
                    if after_persist && !self.replicas[i].pending.is_empty() {
                        self.replicas[i].held.push((to, msg));
                    } else {
                        self.put(from, to, msg);
                    }
                }
            }
        }
    }

    /// Checks the state, updating the path's observations; `Err` names the broken rule.
    fn check(&mut self) -> Result<(), String> {
        for r in &self.replicas {
            r.raft.check_invariants();
        }
        for (i, r) in self.replicas.iter().enumerate() {
            let id = self.id(i);
            let mine = r.raft.committed_after(0);
            let common = mine.len().min(self.committed.len());
            if mine[..common] != self.committed[..common] {
                return Err(format!(
                    "committed entries changed: {id} has {:?}, earlier committed {:?}",
                    &mine[..common],
                    &self.committed[..common]
                ));
            }
            if mine.len() > self.committed.len() {
                let term = r.raft.term();
                self.committed_in.resize(mine.len(), term);
                self.committed = mine.to_vec();
            }
        }
        for (i, r) in self.replicas.iter().enumerate() {
            if r.raft.role() != RaftRole::Leader {
                continue;
            }
            let id = self.id(i);
            let term = r.raft.term();
            match self.leaders.get(&term) {
                Some(&other) if other != id => return Err(format!("two leaders in term {term}: {other} and {id}")),
                Some(_) => {}
                None => {
                    // Leader completeness (Raft §5.4), checked when it takes office:
                    // an entry committed in a term before this one is in its log. (A
                    // stale leader of an older term may win late, from votes that
                    // were in flight, and lack entries committed since.)
                    let missing: Vec<&Entry> = self
                        .committed
                        .iter()
                        .zip(&self.committed_in)
                        .filter(|(e, t)| **t < term && !log_has(&r.raft, e))
                        .map(|(e, _)| e)
                        .collect();
                    if !missing.is_empty() {
                        return Err(format!(
                            "{id} became leader of term {term} without entries committed before it: {missing:?}"
                        ));
                    }
                    self.leaders.insert(term, id);
                }
            }
        }
        Ok(())
    }

    fn fingerprint(&self) -> u64 {
        let mut net: Vec<String> = self.net.iter().map(|m| format!("{m:?}")).collect();
        net.sort_unstable();
        let mut h = DefaultHasher::new();
        format!(
            "{:?}|{:?}|{net:?}|{} {} {} {} {}|{:?}|{:?}|{:?}",
            self.now,
            self.replicas,
            self.deliveries_left,
            self.timeouts_left,
            self.crashes_left,
            self.duplicates_left,
            self.proposals_left,
            self.leaders,
            self.committed,
            self.committed_in
        )
        .hash(&mut h);
        h.finish()
    }
}

/// Whether `raft`'s log holds `e` at its index.
fn log_has(raft: &Raft, e: &Entry) -> bool {
    raft.log_entries().get(e.index as usize - 1) == Some(e)
}

struct Report {
    states: usize,
    transitions: u64,
    max_depth: usize,
    leaders_elected: usize,
    max_committed: usize,
}

/// Depth-first search over every state reachable within `scope`.
fn explore(scope: Scope) -> Result<Report, String> {
    let mut start = World::new(&scope);
    start.check()?;
    let mut visited: HashSet<u64> = HashSet::new();
    let mut parent: HashMap<u64, (u64, Action)> = HashMap::new();
    let root = start.fingerprint();
    visited.insert(root);
    let mut stack = vec![(start, root, 0usize)];
    let mut report = Report { states: 1, transitions: 0, max_depth: 0, leaders_elected: 0, max_committed: 0 };
    while let Some((world, fp, depth)) = stack.pop() {
        report.max_depth = report.max_depth.max(depth);
        report.leaders_elected = report.leaders_elected.max(world.leaders.len());
        report.max_committed = report.max_committed.max(world.committed.len());
        for a in world.actions() {
            report.transitions += 1;
            let mut next = world.clone();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                next.apply(a);
                next.check()
            }));
            let verdict = match outcome {
                Ok(r) => r,
                Err(p) => Err(format!("panic: {}", panic_text(&p))),
            };
            if let Err(why) = verdict {
                let mut path = vec![a];
                let mut at = fp;
                while let Some(&(up, step)) = parent.get(&at) {
                    path.push(step);
                    at = up;
                }
                path.reverse();
                return Err(format!("{why}\n  after {} steps: {path:?}", path.len()));
            }
            let nfp = next.fingerprint();
            if visited.insert(nfp) {
                parent.insert(nfp, (fp, a));
                report.states += 1;
                if report.states > scope.max_states {
                    return Err(format!("scope {scope:?} exceeds {} states", scope.max_states));
                }
                stack.push((next, nfp, depth + 1));
            }
        }
    }
    Ok(report)
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

fn run(scope: Scope) -> Report {
    // Panics inside handlers are caught and reported with their path.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = explore(scope);
    std::panic::set_hook(hook);
    match result {
        Ok(r) => {
            println!(
                "{scope:?}: {} states, {} transitions, depth {}, {} leaders on a path, {} entries committed",
                r.states, r.transitions, r.max_depth, r.leaders_elected, r.max_committed
            );
            r
        }
        Err(e) => panic!("Raft small-scope check failed in {scope:?}: {e}"),
    }
}

/// The scope for `voters` replicas: `small`, or `MQ_RAFT_SCOPE` such as
/// `deliveries=12 timeouts=3 crashes=1 duplicates=1 proposals=1` (unnamed bounds keep
/// their small values).
fn scope(voters: u32, small: Scope) -> Scope {
    let Ok(spec) = std::env::var("MQ_RAFT_SCOPE") else { return small };
    let mut s = Scope { voters, max_states: 200_000_000, ..small };
    for kv in spec.split_whitespace() {
        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("MQ_RAFT_SCOPE: `{kv}` is not name=value"));
        let v: u32 = v.parse().unwrap_or_else(|_| panic!("MQ_RAFT_SCOPE: `{kv}` is not a number"));
        match k {
            "deliveries" => s.deliveries = v,
            "timeouts" => s.timeouts = v,
            "crashes" => s.crashes = v,
            "duplicates" => s.duplicates = v,
            "proposals" => s.proposals = v,
            _ => panic!("MQ_RAFT_SCOPE: unknown bound `{k}`"),
        }
    }
    s
}

#[test]
fn two_voters_every_interleaving() {
    let r = run(scope(
        2,
        Scope { voters: 2, deliveries: 8, timeouts: 3, crashes: 1, duplicates: 0, proposals: 1, max_states: 3_000_000 },
    ));
    // The search reached the interesting part: a leader elected and an entry committed.
    assert!(r.leaders_elected >= 1 && r.max_committed >= 1, "scope too small to elect and commit");
}

#[test]
fn three_voters_every_interleaving() {
    // Enough for one election and its commit; the two-voter scope reaches two
    // elections. Larger scopes: MQ_RAFT_SCOPE (docs/simulator.md).
    let r = run(scope(
        3,
        Scope { voters: 3, deliveries: 6, timeouts: 2, crashes: 1, duplicates: 0, proposals: 1, max_states: 3_000_000 },
    ));
    assert!(r.leaders_elected >= 1 && r.max_committed >= 1, "scope too small to elect and commit");
}
