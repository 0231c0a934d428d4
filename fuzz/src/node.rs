//! The `node` target: one broker [`Node`] fed an arbitrary sequence of inputs
//! through the core contract (DESIGN.md section 2). The fuzzer plays every client,
//! every other broker, the clock and the disk.
//!
//! Checks after every step: `check_invariants`; every output is well-formed
//! (responses go to clients that asked with that correlation id, peer messages go
//! to other brokers, never to the node itself); persist tokens increase; a
//! response to a client's broker-to-broker message or response is a `Close`; a
//! leader's `HighWatermark` events never go down within a leader epoch; and an
//! `acks=1`/`acks=all` `Produced` reply leaves only once its record is in the
//! durable store the driver keeps (what a crash would keep).

use crate::arb::{self, Hints};
use crate::{raft_peer_is_honest, Steps};
use arbitrary::Unstructured;
use mq_core::storage::{DurableState, Write};
use mq_core::wire::{Acks, Message, PeerMessage, Request, RequestBody, Response, ResponseBody};
use mq_core::{
    ClientId, CorrelationId, Duration, Event, Input, Instant, LeaderEpoch, Node, NodeConfig, NodeId, Offset, Output,
    Peer, PersistToken, TopicPartition,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Inputs per run, at most.
const MAX_STEPS: usize = 200;

/// A produce request as the driver remembers it.
#[derive(Clone, Debug)]
struct AskedProduce {
    tp: TopicPartition,
    acks: Acks,
}

struct Driver {
    config: NodeConfig,
    seed: u64,
    node: Node,
    now: Instant,
    durable: DurableState,
    /// Persists handed out and not completed, oldest first.
    inflight: VecDeque<(PersistToken, Vec<Write>)>,
    last_token: u64,
    completed: u64,
    /// Correlation ids each client used, with the produce requests among them.
    asked: BTreeMap<(Peer, CorrelationId), Vec<Option<AskedProduce>>>,
    hw: BTreeMap<(TopicPartition, LeaderEpoch), Offset>,
    /// Brokers that sent the node something (a reply may go back to them).
    senders: BTreeSet<NodeId>,
    hints: Hints,
}

/// Runs one input sequence.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let setup: u8 = u.arbitrary().unwrap_or(0);
    let inflight_persists = 1 + usize::from(setup >> 4) % 4;
    let config = match setup % 4 {
        // A single-node cluster, as is or warmed up to ready with a topic.
        0 | 1 => NodeConfig { max_inflight_persists: inflight_persists, ..NodeConfig::default() },
        // Broker 1 of three voters: the fuzzer plays brokers 2 and 3.
        2 => NodeConfig {
            cluster_size: 3,
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            max_inflight_persists: inflight_persists,
            ..NodeConfig::default()
        },
        // Broker 2, not a voter, of a three-broker cluster whose controller is 1.
        _ => NodeConfig {
            node_id: NodeId(2),
            cluster_size: 3,
            voters: vec![NodeId(1)],
            max_inflight_persists: inflight_persists,
            ..NodeConfig::default()
        },
    };
    config.validate().expect("the fuzz configurations are valid");
    let seed = u64::from(setup);
    let mut d = Driver {
        node: Node::new(config.clone(), seed),
        config,
        seed,
        now: Instant::ZERO,
        durable: DurableState::default(),
        inflight: VecDeque::new(),
        last_token: 0,
        completed: 0,
        asked: BTreeMap::new(),
        hw: BTreeMap::new(),
        senders: BTreeSet::new(),
        hints: Hints::default(),
    };
    if setup % 4 == 1 {
        d.warm_up();
    }
    let mut steps = Steps::new(MAX_STEPS);
    while steps.next(&u) {
        d.step(&mut u);
    }
    d.settle(50);
}

impl Driver {
    fn handle(&mut self, input: Input) {
        let close_expected = match &input {
            Input::Message { from: from @ Peer::Client(_), msg: Message::Peer(_) | Message::Response(_) } => {
                Some(*from)
            }
            Input::Message { from: from @ Peer::Node(_), msg: Message::Response(_) } => Some(*from),
            _ => None,
        };
        if let Input::Message { from: Peer::Node(n), .. } = &input {
            self.senders.insert(*n);
        }
        if let Input::Message { from, msg: Message::Request(req) } = &input {
            let produce = match &req.body {
                RequestBody::Produce { topic, partition, acks, .. } => Some(AskedProduce {
                    tp: TopicPartition { topic: topic.clone(), partition: *partition },
                    acks: *acks,
                }),
                _ => None,
            };
            self.asked.entry((*from, req.correlation)).or_default().push(produce);
        }
        self.node.handle(self.now, input);
        self.node.check_invariants();
        let closed = self.drain();
        if let Some(peer) = close_expected {
            assert!(closed.contains(&peer), "a protocol error from {peer} did not close its connection");
        }
    }

    /// Drains and checks every output; returns the peers closed.
    fn drain(&mut self) -> BTreeSet<Peer> {
        let mut closed = BTreeSet::new();
        while let Some(out) = self.node.poll_output() {
            match out {
                Output::Send { to, msg } => {
                    self.hints.collect(&msg);
                    self.check_send(to, &msg);
                }
                Output::Persist { token, writes } => {
                    assert!(token.0 > self.last_token, "persist token {token:?} after {}", self.last_token);
                    self.last_token = token.0;
                    assert!(
                        self.inflight.len() < self.config.max_inflight_persists,
                        "more persists in flight than max_inflight_persists"
                    );
                    self.inflight.push_back((token, writes));
                }
                Output::Close { peer, .. } => {
                    closed.insert(peer);
                }
                Output::Event(e) => self.check_event(e),
            }
        }
        closed
    }

    fn check_send(&mut self, to: Peer, msg: &Message) {
        match (to, msg) {
            (Peer::Node(n), _) => {
                assert_ne!(n, self.config.node_id, "a node sent itself a message through the driver");
                let known = (n.0 >= 1 && n.0 <= self.config.cluster_size) || self.senders.contains(&n);
                assert!(known, "a message to broker {n}, neither in the cluster nor a sender: {msg:?}");
                assert!(matches!(msg, Message::Peer(_)), "a broker sent a broker a client message: {msg:?}");
            }
            (Peer::Client(_), Message::Response(Response { correlation, body })) => {
                let asked = self.asked.get(&(to, *correlation));
                assert!(asked.is_some(), "a response to {to} with correlation {correlation:?} nobody asked for");
                if let (Some(asked), Ok(ResponseBody::Produced { partition, base_offset, .. })) = (asked, body) {
                    self.check_produced_durable(asked, *partition, *base_offset);
                }
            }
            (Peer::Client(_), other) => panic!("a broker sent a client something else than a response: {other:?}"),
        }
    }

    /// An acknowledged produce (acks=1 or all) is in the durable store already.
    fn check_produced_durable(&self, asked: &[Option<AskedProduce>], partition: mq_core::PartitionId, base: Offset) {
        let candidates: Vec<&AskedProduce> =
            asked.iter().flatten().filter(|p| p.tp.partition == partition && p.acks != Acks::None).collect();
        if candidates.is_empty() {
            return;
        }
        let durable = candidates.iter().any(|p| self.durable.logs.get(&p.tp).is_some_and(|l| l.log_end() > base));
        assert!(durable, "Produced at {base} of partition {partition} acknowledged before it was durable");
    }

    fn check_event(&mut self, e: Event) {
        if let Event::HighWatermark { tp, high_watermark, leader_epoch } = e {
            let last = self.hw.entry((tp.clone(), leader_epoch)).or_insert(Offset(0));
            assert!(high_watermark >= *last, "{tp}: the HW went from {last} down to {high_watermark} in one epoch");
            *last = high_watermark;
        }
    }

    fn persisted(&mut self, upto: usize) {
        let Some(&(token, _)) = self.inflight.get(upto) else { return };
        for _ in 0..=upto {
            let (_, writes) = self.inflight.pop_front().expect("counted");
            self.durable.apply_all(&writes);
        }
        self.completed = token.0;
        self.handle(Input::Persisted { token });
    }

    fn advance(&mut self, by: Duration) {
        self.now = self.now.saturating_add(by);
    }

    fn timeout_at_deadline(&mut self) {
        if let Some(t) = self.node.poll_timeout() {
            self.now = self.now.max(t);
        }
        self.handle(Input::Timeout);
    }

    /// Completes persists and fires deadlines until quiet or `rounds` ran out.
    fn settle(&mut self, rounds: usize) {
        for _ in 0..rounds {
            if !self.inflight.is_empty() {
                self.persisted(self.inflight.len() - 1);
                continue;
            }
            match self.node.poll_timeout() {
                Some(t) if t <= self.now + Duration::from_secs(10) => self.timeout_at_deadline(),
                _ => return,
            }
        }
    }

    /// Drives a single-node cluster to ready and creates topic `t` (2 partitions).
    fn warm_up(&mut self) {
        for _ in 0..200 {
            if self.node.is_ready() {
                break;
            }
            self.settle(1);
            if self.inflight.is_empty() {
                self.advance(Duration::from_millis(50));
                self.handle(Input::Timeout);
            }
        }
        let body = RequestBody::CreateTopic(mq_core::wire::TopicConfig::new("t", 2));
        let msg = Message::Request(Request { correlation: CorrelationId(0), body });
        self.handle(Input::Message { from: Peer::Client(ClientId(0)), msg });
        self.settle(100);
    }

    fn crash_and_recover(&mut self) {
        // Writes never reported persisted are gone; recovery repairs the store.
        self.inflight.clear();
        self.durable.repair();
        self.node = Node::recover(self.config.clone(), self.seed, &self.durable);
        self.node.check_invariants();
        self.last_token = 0;
        self.completed = 0;
        self.hw.clear();
    }

    fn other_node(&self, u: &mut Unstructured<'_>) -> NodeId {
        // Another broker of the cluster, or now and then one that does not exist.
        let pick: u8 = u.arbitrary().unwrap_or(0);
        let n = 1 + u32::from(pick) % (self.config.cluster_size + 1);
        if n == self.config.node_id.0 {
            NodeId(self.config.cluster_size + 1)
        } else {
            NodeId(n)
        }
    }

    fn client(u: &mut Unstructured<'_>) -> Peer {
        Peer::Client(ClientId(u64::from(u.arbitrary::<u8>().unwrap_or(0) % 3)))
    }

    fn step(&mut self, u: &mut Unstructured<'_>) {
        let choice: u8 = u.arbitrary().unwrap_or(0);
        match choice % 16 {
            0..=3 => {
                let from = Self::client(u);
                let correlation = CorrelationId(arb::number(u, &self.hints, 8));
                let Ok(body) = arb::value::<RequestBody>(u, &self.hints) else { return };
                self.handle(Input::Message { from, msg: Message::Request(Request { correlation, body }) });
            }
            4..=6 => {
                let from = self.other_node(u);
                let Ok(msg) = arb::value::<PeerMessage>(u, &self.hints) else { return };
                if let PeerMessage::Raft(m) = &msg {
                    if !raft_peer_is_honest(self.node.raft(), m) {
                        return;
                    }
                }
                self.handle(Input::Message { from: Peer::Node(from), msg: Message::Peer(msg) });
            }
            7 => {
                // A protocol error: a client sending broker traffic or a response.
                let from =
                    if u.arbitrary().unwrap_or(false) { Self::client(u) } else { Peer::Node(self.other_node(u)) };
                let Ok(msg) = arb::value::<Message>(u, &self.hints) else { return };
                if matches!((&from, &msg), (_, Message::Request(_)) | (Peer::Node(_), Message::Peer(_))) {
                    return;
                }
                self.handle(Input::Message { from, msg });
            }
            8 => self.timeout_at_deadline(),
            9 => {
                let ms = arb::number(u, &self.hints, 120_000);
                self.advance(Duration::from_millis(ms));
                self.handle(Input::Timeout);
            }
            10 | 11 => {
                if !self.inflight.is_empty() {
                    let k = u.choose_index(self.inflight.len()).unwrap_or(0);
                    self.persisted(k);
                }
            }
            12 => {
                // A repeated completion of an old token is harmless (contract.rs).
                if self.completed > 0 {
                    let token = PersistToken(1 + arb::number(u, &self.hints, self.completed - 1));
                    self.handle(Input::Persisted { token });
                }
            }
            13 => {
                let peer =
                    if u.arbitrary().unwrap_or(false) { Self::client(u) } else { Peer::Node(self.other_node(u)) };
                let input = if u.arbitrary().unwrap_or(false) {
                    Input::Connected { peer }
                } else {
                    Input::Disconnected { peer }
                };
                self.handle(input);
            }
            14 => match u.arbitrary::<u8>().unwrap_or(0) % 4 {
                0 => self.crash_and_recover(),
                1 => {
                    self.node.begin_shutdown(self.now);
                    self.node.check_invariants();
                    self.drain();
                }
                _ => self.settle(20),
            },
            _ => self.settle(5),
        }
    }
}
