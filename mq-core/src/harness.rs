//! An in-process cluster harness for scenario tests (feature `test-util`): several
//! [`Node`]s with in-memory durable stores, a network with a fixed delay, fsyncs
//! with a fixed latency, and virtual time that jumps to the next thing that happens
//! (quinn's `Pair`, raft-rs's test cluster). Clients are addressed by `ClientId`;
//! their responses collect in an inbox per client.
//!
//! For randomized faults use mq-sim; this harness is deliberately plain so a
//! scenario test reads like the behaviour it names.

use crate::contract::{Event, Input, Output, Peer, PersistToken};
use crate::ids::{ClientId, CorrelationId, NodeId};
use crate::node::{Node, NodeConfig};
use crate::storage::{DurableState, RepairReport, Write};
use crate::time::{Duration, Instant};
use crate::wire::{Message, Request, RequestBody, Response};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

struct Slot {
    config: NodeConfig,
    seed: u64,
    node: Option<Node>,
    store: DurableState,
    persists: VecDeque<(Instant, PersistToken, Vec<Write>)>,
    hold_persists: bool,
}

/// A message travelling between nodes.
struct InFlight {
    at: Instant,
    seq: u64,
    from: NodeId,
    to: NodeId,
    msg: Message,
}

/// What `drive_bounded` reports when the cluster did not settle.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the cluster still had work after {steps} steps")]
pub struct NotQuiescent {
    /// Steps taken.
    pub steps: usize,
}

/// Several nodes, their stores, a network and virtual time.
pub struct Harness {
    now: Instant,
    slots: BTreeMap<NodeId, Slot>,
    network: Vec<InFlight>,
    seq: u64,
    inbox: BTreeMap<ClientId, Vec<Response>>,
    events: Vec<(Instant, NodeId, Event)>,
    closed: Vec<(NodeId, Peer, String)>,
    next_correlation: u64,
    /// Directed links that drop every message: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Directed links that drop replica fetches only: (follower, leader).
    fetch_cut: BTreeSet<(NodeId, NodeId)>,
    /// One-way delay of every message between nodes.
    pub network_delay: Duration,
    /// Time from a Persist to its completion.
    pub persist_delay: Duration,
}

impl Harness {
    /// A cluster of `n` nodes with ids `1..=n` (the first three are controller
    /// voters), each configured by `configure` from the defaults, seeded from `seed`.
    pub fn new(n: u32, seed: u64, configure: impl Fn(NodeConfig) -> NodeConfig) -> Self {
        let mut slots = BTreeMap::new();
        let voters: Vec<NodeId> = (1..=n.min(3)).map(NodeId).collect();
        for id in 1..=n {
            let base =
                NodeConfig { node_id: NodeId(id), cluster_size: n, voters: voters.clone(), ..NodeConfig::default() };
            let config = configure(base);
            let node = Node::new(config.clone(), seed);
            slots.insert(
                NodeId(id),
                Slot {
                    config,
                    seed,
                    node: Some(node),
                    store: DurableState::default(),
                    persists: VecDeque::new(),
                    hold_persists: false,
                },
            );
        }
        Harness {
            now: Instant::ZERO,
            slots,
            network: Vec::new(),
            seq: 0,
            inbox: BTreeMap::new(),
            events: Vec::new(),
            closed: Vec::new(),
            next_correlation: 1,
            cut: BTreeSet::new(),
            fetch_cut: BTreeSet::new(),
            network_delay: Duration::from_micros(100),
            persist_delay: Duration::from_millis(1),
        }
    }

    /// A single-node cluster with default settings, started until ready.
    pub fn single() -> Self {
        let mut h = Harness::new(1, 0, |c| c);
        h.wait_ready();
        h
    }

    /// Runs until every running node is ready (registered and unfenced) and a
    /// controller is active. Panics after a minute of virtual time.
    pub fn wait_ready(&mut self) {
        let deadline = self.now + Duration::from_secs(60);
        while !self.all_ready() {
            assert!(self.now < deadline, "cluster not ready after 60 s of virtual time");
            self.advance(Duration::from_millis(10));
        }
    }

    fn all_ready(&self) -> bool {
        let running = || self.slots.values().filter_map(|s| s.node.as_ref());
        running().all(Node::is_ready) && running().any(Node::is_active_controller)
    }

    /// Ids of the running nodes.
    pub fn running(&self) -> Vec<u32> {
        self.slots.iter().filter(|(_, s)| s.node.is_some()).map(|(id, _)| id.0).collect()
    }

    /// Whether node `id` is running.
    pub fn is_running(&self, id: u32) -> bool {
        self.slots[&NodeId(id)].node.is_some()
    }

    /// Drops every message between `a` and `b`, both ways.
    pub fn cut(&mut self, a: u32, b: u32) {
        self.cut.insert((NodeId(a), NodeId(b)));
        self.cut.insert((NodeId(b), NodeId(a)));
    }

    /// Cuts node `id` off from every other node.
    pub fn isolate(&mut self, id: u32) {
        let ids: Vec<u32> = self.slots.keys().map(|n| n.0).filter(|n| *n != id).collect();
        for other in ids {
            self.cut(id, other);
        }
    }

    /// Drops the replica fetches `follower` sends `leader` (and nothing else): the
    /// follower falls out of sync while both stay alive and in touch with the
    /// controller.
    pub fn block_fetches(&mut self, follower: u32, leader: u32) {
        self.fetch_cut.insert((NodeId(follower), NodeId(leader)));
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.fetch_cut.clear();
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The running node `id`. Panics if it is crashed or unknown (a test bug).
    pub fn node(&self, id: u32) -> &Node {
        self.slots[&NodeId(id)].node.as_ref().expect("node is crashed")
    }

    /// What node `id` has made durable.
    pub fn store(&self, id: u32) -> &DurableState {
        &self.slots[&NodeId(id)].store
    }

    /// Mutable access to a node's store (to corrupt it in recovery tests).
    pub fn store_mut(&mut self, id: u32) -> &mut DurableState {
        &mut self.slots.get_mut(&NodeId(id)).expect("unknown node").store
    }

    /// Events the nodes reported, with time and node.
    pub fn events(&self) -> &[(Instant, NodeId, Event)] {
        &self.events
    }

    /// Connections the nodes closed, with the reason.
    pub fn closed(&self) -> &[(NodeId, Peer, String)] {
        &self.closed
    }

    /// While `hold` is true, node `id`'s Persists do not complete (a stalled disk).
    pub fn hold_persists(&mut self, id: u32, hold: bool) {
        self.slot(id).hold_persists = hold;
    }

    /// Persists of node `id` issued and not yet completed.
    pub fn pending_persists(&self, id: u32) -> usize {
        self.slots[&NodeId(id)].persists.len()
    }

    /// Sends `body` from `client` to node `to` now; returns its correlation id.
    pub fn request(&mut self, client: u64, to: u32, body: RequestBody) -> CorrelationId {
        let correlation = CorrelationId(self.next_correlation);
        self.next_correlation += 1;
        let msg = Message::Request(Request { correlation, body });
        self.deliver(NodeId(to), Input::Message { from: Peer::Client(ClientId(client)), msg });
        correlation
    }

    /// Feeds raw input to node `to` now (for malformed or unusual traffic).
    pub fn input(&mut self, to: u32, input: Input) {
        self.deliver(NodeId(to), input);
    }

    /// Responses received by `client` so far, oldest first, emptying its inbox.
    pub fn take_responses(&mut self, client: u64) -> Vec<Response> {
        self.inbox.remove(&ClientId(client)).unwrap_or_default()
    }

    /// The response to `correlation` in `client`'s inbox, removing it.
    pub fn take_response(&mut self, client: u64, correlation: CorrelationId) -> Option<Response> {
        let inbox = self.inbox.get_mut(&ClientId(client))?;
        let i = inbox.iter().position(|r| r.correlation == correlation)?;
        Some(inbox.remove(i))
    }

    /// Crashes node `id`: its memory and every write not yet persisted are lost,
    /// and a stall set by [`Harness::hold_persists`] ends with them.
    pub fn crash(&mut self, id: u32) {
        let slot = self.slot(id);
        slot.node = None;
        slot.persists.clear();
        slot.hold_persists = false;
        self.network.retain(|m| m.to != NodeId(id) && m.from != NodeId(id));
    }

    /// Restarts crashed node `id` from its store, repairing torn tails first.
    pub fn restart(&mut self, id: u32) -> Vec<RepairReport> {
        let slot = self.slot(id);
        assert!(slot.node.is_none(), "restart of a running node");
        let reports = slot.store.repair();
        slot.node = Some(Node::recover(slot.config.clone(), slot.seed, &slot.store));
        reports
    }

    /// Takes the next step: the earliest message delivery, persist completion or
    /// timer, advancing time to it. Returns false when nothing is scheduled.
    pub fn step(&mut self) -> bool {
        self.step_until(Instant::MAX)
    }

    /// Steps until no message or persist is pending (timers fire along the way if
    /// they come first). Panics after a million steps: a livelock is a bug.
    pub fn drive(&mut self) {
        self.drive_bounded(1_000_000).expect("cluster did not settle");
    }

    /// Like [`Harness::drive`] but fails after `max_steps`.
    pub fn drive_bounded(&mut self, max_steps: usize) -> Result<usize, NotQuiescent> {
        let mut steps = 0;
        while self.has_work() {
            if steps == max_steps {
                return Err(NotQuiescent { steps });
            }
            self.step_until(Instant::MAX);
            steps += 1;
        }
        Ok(steps)
    }

    /// Runs everything scheduled within the next `d`, timers included, then sets
    /// the clock to `now + d`.
    pub fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while self.step_until(until) {}
        self.now = until;
    }

    fn has_work(&self) -> bool {
        !self.network.is_empty()
            || self.slots.values().any(|s| s.node.is_some() && !s.hold_persists && !s.persists.is_empty())
    }

    fn next_wakeup(&self) -> Option<(Instant, Wake)> {
        let mut best: Option<(Instant, Wake)> = None;
        let mut consider = |at: Instant, w: Wake| {
            if best.as_ref().is_none_or(|(b, _)| at < *b) {
                best = Some((at, w));
            }
        };
        if let Some((i, m)) = self.network.iter().enumerate().min_by_key(|(_, m)| (m.at, m.seq)) {
            consider(m.at, Wake::Message(i));
        }
        for (id, s) in &self.slots {
            let Some(node) = &s.node else { continue };
            if !s.hold_persists {
                if let Some((at, _, _)) = s.persists.front() {
                    consider(*at, Wake::Persist(*id));
                }
            }
            if let Some(at) = node.poll_timeout() {
                consider(at.max(self.now), Wake::Timer(*id));
            }
        }
        best
    }

    fn step_until(&mut self, until: Instant) -> bool {
        let Some((at, wake)) = self.next_wakeup() else { return false };
        if at > until {
            return false;
        }
        self.now = self.now.max(at);
        match wake {
            Wake::Message(i) => {
                let m = self.network.swap_remove(i);
                let fetch = matches!(m.msg, Message::Peer(crate::wire::PeerMessage::ReplicaFetch(_)));
                let dropped = self.cut.contains(&(m.from, m.to)) || (fetch && self.fetch_cut.contains(&(m.from, m.to)));
                if !dropped {
                    self.deliver(m.to, Input::Message { from: Peer::Node(m.from), msg: m.msg });
                }
            }
            Wake::Persist(id) => {
                let slot = self.slots.get_mut(&id).expect("slot exists");
                let (_, token, writes) = slot.persists.pop_front().expect("checked non-empty");
                slot.store.apply_all(&writes);
                self.deliver(id, Input::Persisted { token });
            }
            Wake::Timer(id) => self.deliver(id, Input::Timeout),
        }
        true
    }

    fn deliver(&mut self, to: NodeId, input: Input) {
        let now = self.now;
        let Some(node) = self.slots.get_mut(&to).and_then(|s| s.node.as_mut()) else { return };
        node.handle(now, input);
        self.drain(to);
    }

    /// Starts a controlled shutdown of node `id` ([`Node::begin_shutdown`]).
    pub fn begin_shutdown(&mut self, id: u32) {
        let now = self.now;
        let Some(node) = self.slots.get_mut(&NodeId(id)).and_then(|s| s.node.as_mut()) else { return };
        node.begin_shutdown(now);
        self.drain(NodeId(id));
    }

    /// Routes everything node `to` has to say.
    fn drain(&mut self, to: NodeId) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&to) else { return };
        let Some(node) = slot.node.as_mut() else { return };
        node.check_invariants();
        while let Some(out) = node.poll_output() {
            match out {
                Output::Send { to: Peer::Client(c), msg: Message::Response(r) } => {
                    self.inbox.entry(c).or_default().push(r);
                }
                Output::Send { to: Peer::Client(_), msg } => panic!("node sent a non-response to a client: {msg:?}"),
                Output::Send { to: Peer::Node(dst), msg } => {
                    self.seq += 1;
                    self.network.push(InFlight { at: now + self.network_delay, seq: self.seq, from: to, to: dst, msg });
                }
                Output::Persist { token, writes } => slot.persists.push_back((now + self.persist_delay, token, writes)),
                Output::Close { peer, reason } => self.closed.push((to, peer, reason)),
                Output::Event(e) => self.events.push((now, to, e)),
            }
        }
    }

    fn slot(&mut self, id: u32) -> &mut Slot {
        self.slots.get_mut(&NodeId(id)).expect("unknown node")
    }
}

enum Wake {
    Message(usize),
    Persist(NodeId),
    Timer(NodeId),
}
