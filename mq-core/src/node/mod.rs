//! The broker node: the state machine a driver runs for one broker (DESIGN.md
//! sections 2 to 5). One node is, at once:
//!
//! - a replica of the metadata quorum if it is a voter (Raft, [`crate::controller`]),
//!   and the active controller while it leads that quorum;
//! - a broker that registers with the controller, heartbeats, follows the
//!   committed metadata log, and serves the partitions it holds a replica of, as
//!   leader or follower ([`crate::replication`]).
//!
//! The write path (docs/architecture.md): every durable change, whether a Raft
//! term, a metadata entry, a produced batch or a replicated one, is *staged* as a
//! [`Write`] together with the *effects* that may happen only once it is durable
//! (a reply, a vote, an acknowledgement to the leader). Staged writes leave as one
//! [`Output::Persist`] whenever fewer than `max_inflight_persists` are in flight,
//! so one fsync covers everything that arrived meanwhile (group commit).
//! Completions run the effects in order.
//!
//! The handle order: one input is dispatched, then the node *pumps* until quiet
//! (Raft outputs, newly committed metadata, messages to itself), then flushes
//! staged writes. `poll_output` drains what resulted.

mod admin;
mod broker;
mod config;
mod delivery;
mod groups;
mod partitions;
mod quorum_host;
mod security;

pub use config::{AuthConfig, NodeConfig, NodeConfigBuilder};
pub use partitions::Slot;

use crate::buggify::Buggify;
use crate::contract::{Event, Input, Output, Peer, PersistToken};
use crate::controller::raft::{DurabilityMarker, LogIndex, Raft, RaftConfig};
use crate::controller::{MetadataImage, QuorumController};
use crate::coverage::Coverage;
use crate::group::coordinator::Coordinator;
use crate::ids::{CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId, TopicPartition};
use crate::log::PartitionLog;
use crate::rng::{Rng, Seed};
use crate::storage::{DurableState, Write};
use crate::time::Instant;
use crate::wire::{Acks, ErrorCode, Message, PeerMessage, Response, ResponseBody, WireError};
use std::collections::{BTreeMap, VecDeque};

/// In debug builds, every this many inputs `handle` runs the full
/// `check_invariants` (the others get the constant-time subset).
const FULL_CHECK_EVERY: u64 = 64;

/// Inputs between two full invariant checks of a node holding `batches` batches:
/// at least [`FULL_CHECK_EVERY`], and one per eight batches, so that the checks
/// cost about eight batch visits per input however long the logs grow (group
/// cursors append a small batch per ack).
pub fn full_check_spacing(batches: usize) -> u64 {
    FULL_CHECK_EVERY.max(batches as u64 / 8)
}

/// Longest topic name, as in Kafka.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A reply to send once a condition holds.
#[derive(Clone, Debug)]
pub(crate) struct PendingReply {
    pub(crate) to: Peer,
    pub(crate) correlation: CorrelationId,
    pub(crate) body: ResponseBody,
    /// Reported when the reply is sent (not when it fails).
    pub(crate) event: Option<Box<Event>>,
}

/// What to do once a Persist completes.
#[derive(Clone, Debug)]
enum Effect {
    /// A leader's own append of `tp` below `end` is durable; answer per `acks`
    /// (acks=all: once committed, or `Timeout` at `commit_deadline`, by default
    /// `produce_timeout` after this).
    Appended {
        tp: TopicPartition,
        end: Offset,
        epoch: LeaderEpoch,
        acks: Acks,
        reply: Option<PendingReply>,
        commit_deadline: Option<Instant>,
    },
    /// A follower's append or truncation of `tp` is durable: it may fetch again.
    Replicated { tp: TopicPartition, end: Offset },
    /// Raft writes up to this marker are durable.
    RaftDurable(DurabilityMarker),
    /// A message that may leave only now (a vote, an append acknowledgement).
    Send { to: NodeId, msg: PeerMessage },
}

/// Writes and their effects that share one Persist.
#[derive(Clone, Debug, Default)]
struct PersistBatch {
    writes: Vec<Write>,
    effects: Vec<Effect>,
    append_bytes: usize,
}

/// A broker node (see the module docs).
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    #[allow(dead_code)] // kept for per-session jitter in later steps
    rng: Rng,
    now: Instant,
    raft: Raft,
    controller: Option<QuorumController>,
    controller_waiters: Vec<quorum_host::ControllerWaiter>,
    /// The committed metadata this broker has applied.
    image: MetadataImage,
    session: broker::Session,
    calls: BTreeMap<CorrelationId, broker::Call>,
    next_call: u64,
    /// The id of this node's next follower fetch (`ReplicaFetch::fetch_id`).
    next_fetch_id: u64,
    admin_waiters: Vec<(u64, Instant, PendingReply)>,
    /// Producer ids this broker may hand out: `[next, end)` of a block the
    /// controller allocated.
    producer_ids: (u64, u64),
    /// `InitProducer` requests waiting for a block.
    producer_id_waiters: Vec<(Peer, CorrelationId)>,
    slots: BTreeMap<TopicPartition, Slot>,
    /// Recovered logs of partitions the metadata has not assigned yet.
    orphans: BTreeMap<TopicPartition, PartitionLog>,
    outputs: VecDeque<Output>,
    next_token: u64,
    staged: PersistBatch,
    inflight: VecDeque<(PersistToken, PersistBatch)>,
    pending_write_bytes: usize,
    /// Messages this node sends itself (it may be its own controller).
    local: VecDeque<PeerMessage>,
    /// Inputs handled, to space out the full invariant check in debug builds.
    inputs_handled: u64,
    /// When (in inputs handled) the next full invariant check runs.
    next_full_check: u64,
    next_retention_check: Instant,
    next_isr_check: Instant,
    /// Group coordinators of the `__groups` partitions this broker leads.
    coordinators: BTreeMap<PartitionId, Coordinator>,
    /// The metadata index whose topics the coordinators last heard of.
    coordinator_topics_applied: LogIndex,
    /// Group delivery on the partitions this broker leads (docs/consumers.md
    /// section 6).
    deliveries: delivery::Deliveries,
    /// Authentication state of each client connection (with `config.auth`).
    auth: BTreeMap<crate::ids::ClientId, crate::security::session::AuthState>,
    /// This broker's secret for decoy salts (drawn from its seeded stream).
    broker_key: [u8; crate::security::KEY_BYTES],
    /// Rare branches taken by the node, and by controllers and coordinators it
    /// ran and dropped (docs/simulator.md "Coverage marks"; never read by the
    /// protocol).
    coverage: Coverage,
    /// Legal but rare paths under the simulator (off in production; `crate::buggify`).
    buggify: Buggify,
}

impl Node {
    /// A new node with empty durable state.
    pub fn new(config: NodeConfig, seed: u64) -> Self {
        Node::recover(config, seed, &DurableState::default())
    }

    /// Rebuilds a node from what its store kept. The driver must have repaired the
    /// store first ([`DurableState::repair`]); anything never persisted is gone.
    /// The node then re-learns the metadata, registers with a new broker epoch and
    /// catches up before it is ready.
    pub fn recover(config: NodeConfig, seed: u64, durable: &DurableState) -> Self {
        let seed = Seed(seed);
        let id = config.node_id;
        let raft_config = RaftConfig {
            election_timeout: config.election_timeout,
            heartbeat_interval: config.raft_heartbeat_interval,
            buggify: config.buggify,
            max_entries_per_append: config.raft_max_entries_per_append,
            ..RaftConfig::new(id, config.voters.clone())
        };
        let raft =
            Raft::new(raft_config, seed.indexed_stream("raft", u64::from(id.0)), durable.raft.clone(), Instant::ZERO);
        let orphans = durable
            .logs
            .iter()
            .map(|(tp, stored)| {
                let retired = stored.retired_producers().clone();
                let log = PartitionLog::recovered_with_producers(
                    tp.clone(),
                    stored.log_start(),
                    stored.read_batches(),
                    retired,
                );
                (tp.clone(), log)
            })
            .collect();
        let mut rng = seed.indexed_stream("node", u64::from(id.0));
        let broker_key = security::random_key(&mut rng);
        Node {
            rng,
            now: Instant::ZERO,
            raft,
            controller: None,
            controller_waiters: Vec::new(),
            image: MetadataImage::default(),
            session: broker::Session::default(),
            calls: BTreeMap::new(),
            next_call: 1,
            next_fetch_id: 1,
            admin_waiters: Vec::new(),
            producer_ids: (0, 0),
            producer_id_waiters: Vec::new(),
            slots: BTreeMap::new(),
            orphans,
            outputs: VecDeque::new(),
            next_token: 1,
            staged: PersistBatch::default(),
            inflight: VecDeque::new(),
            pending_write_bytes: 0,
            local: VecDeque::new(),
            inputs_handled: 0,
            next_full_check: FULL_CHECK_EVERY,
            next_retention_check: Instant::ZERO + config.retention_check_interval,
            next_isr_check: Instant::ZERO,
            coordinators: BTreeMap::new(),
            coordinator_topics_applied: 0,
            deliveries: delivery::Deliveries::default(),
            auth: BTreeMap::new(),
            broker_key,
            coverage: Coverage::default(),
            buggify: Buggify::new(config.buggify, "buggify-node", u64::from(id.0)),
            config,
        }
    }

    // ----- getters -----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// The settings.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Ready to serve clients: registered with the controller, unfenced, and not
    /// shutting down.
    pub fn is_ready(&self) -> bool {
        self.session.epoch.is_some() && !self.session.fenced && self.session.stopping.is_none()
    }

    /// Whether a controlled shutdown began ([`Node::begin_shutdown`]).
    pub fn is_stopping(&self) -> bool {
        self.session.stopping.is_some()
    }

    /// Whether a controlled shutdown is complete: leadership moved away (or the
    /// controller could not be reached in time) and every write is durable. The
    /// driver may stop the node then without losing anything it promised.
    pub fn is_shut_down(&self) -> bool {
        self.session.stopping == Some(broker::Stopping::Done)
            && self.inflight.is_empty()
            && self.staged.writes.is_empty()
            && self.staged.effects.is_empty()
    }

    // ----- application mutators -----

    /// Starts a controlled shutdown (DESIGN.md section 8): from now on client
    /// requests get a retriable `NotReady`; the controller moves this broker's
    /// leaderships to other in-sync replicas and fences it, so it is never elected
    /// while stopping; `acks=all` waiters of those partitions are answered
    /// (`LeadershipLost`) as leadership moves. Poll outputs afterwards, and stop the
    /// node once [`Node::is_shut_down`].
    pub fn begin_shutdown(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.session.stopping.is_some() {
            return;
        }
        match self.session.epoch {
            Some(broker_epoch) => {
                self.session.stopping = Some(broker::Stopping::MovingLeadership);
                let request =
                    crate::controller::ControllerRequest::ControlledShutdown { broker: self.id(), broker_epoch };
                self.call_controller(request, broker::Purpose::Shutdown);
            }
            None => self.session.stopping = Some(broker::Stopping::Done),
        }
        self.pump();
        self.flush();
    }

    /// The committed metadata this node has applied.
    pub fn metadata(&self) -> &MetadataImage {
        &self.image
    }

    /// The metadata quorum replica.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Whether this node is the active controller.
    pub fn is_active_controller(&self) -> bool {
        self.controller.is_some()
    }

    /// The replica of `tp` on this node, if any.
    pub fn replica(&self, tp: &TopicPartition) -> Option<&crate::replication::Replica> {
        self.slots.get(tp).map(|s| &s.replica)
    }

    /// Follower fetches of `tp` parked at this leader until data arrives or they
    /// expire: at most one per follower.
    pub fn parked_fetches(&self, tp: &TopicPartition) -> usize {
        self.slots.get(tp).map_or(0, |s| s.parked.len())
    }

    /// The log of `tp`, if this node holds a replica.
    pub fn log(&self, tp: &TopicPartition) -> Option<&PartitionLog> {
        self.slots.get(tp).map(|s| &s.replica.log)
    }

    /// Every partition log this node holds.
    pub fn logs(&self) -> impl Iterator<Item = &PartitionLog> {
        self.slots.values().map(|s| &s.replica.log)
    }

    /// Names of the topics in the applied metadata.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.image.topics.keys().map(String::as_str)
    }

    /// Batches held in every partition log (what a full invariant check walks).
    pub fn batch_count(&self) -> usize {
        self.slots.values().map(|s| s.replica.log.batch_count()).sum()
    }

    /// The rare protocol branches this node took since it was built (or
    /// recovered): its own, its Raft replica's, and those of every controller and
    /// group coordinator it ran ([`crate::coverage`]). Counting never changes
    /// what the node does.
    pub fn coverage(&self) -> Coverage {
        let mut c = self.coverage.clone();
        c.add(self.raft.coverage());
        if let Some(ctl) = &self.controller {
            c.add(ctl.coverage());
        }
        for coordinator in self.coordinators.values() {
            c.add(coordinator.coverage());
        }
        c
    }

    /// Persists issued and not yet completed.
    pub fn inflight_persists(&self) -> usize {
        self.inflight.len()
    }

    // ----- the contract -----

    /// Feeds one input (DESIGN.md section 2).
    pub fn handle(&mut self, now: Instant, input: Input) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
        match input {
            Input::Message { from, msg } => self.handle_message(from, msg),
            Input::Connected { .. } => {}
            Input::Disconnected { peer } => {
                self.delivery_disconnected(peer);
                self.forget_connection(peer);
            }
            Input::Timeout => self.handle_timeout(),
            Input::Persisted { token } => self.handle_persisted(token),
        }
        self.pump();
        self.flush();
        if cfg!(debug_assertions) {
            // The full check walks every batch and metadata entry; after every input
            // that would make long runs quadratic, so every input gets the
            // constant-time checks and the full one runs every 64th input, or less
            // often while the logs are long (about eight batch visits per input).
            self.inputs_handled += 1;
            if self.inputs_handled >= self.next_full_check {
                self.check_invariants();
                self.next_full_check = self.inputs_handled + full_check_spacing(self.batch_count());
            } else {
                self.check_positions();
            }
        }
    }

    /// The next output, until `None`; drain after every `handle`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the node next needs `Input::Timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.raft.poll_timeout();
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = t.min(x);
            }
        };
        consider(self.controller.as_ref().and_then(QuorumController::poll_timeout));
        consider(self.session_timeout());
        consider(self.calls.values().map(|c| c.deadline).min());
        consider(self.admin_waiters.iter().map(|w| w.1).min());
        consider(self.partitions_timeout());
        consider(self.coordinators_timeout());
        consider(self.delivery_timeout());
        let any_retention =
            self.image.topics.values().any(|t| t.config.retention_bytes.is_some() || t.config.retention_time.is_some());
        if any_retention {
            consider(Some(self.next_retention_check));
        }
        (t != Instant::MAX).then_some(t)
    }

    /// The constant-time part of [`Node::check_invariants`]: log positions, the
    /// persist pipeline's order and accounting.
    pub fn check_positions(&self) {
        for s in self.slots.values() {
            s.replica.log.check_positions();
        }
        assert!(self.inflight.len() <= self.config.max_inflight_persists);
        assert!(self.raft.commit_index() <= self.raft.last_index(), "commit beyond the metadata log");
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        self.raft.check_invariants();
        for (tp, s) in &self.slots {
            assert_eq!(s.replica.log.tp(), tp);
            s.replica.log.check_invariants();
            for (end, _, _) in &s.hw_waiters {
                assert!(*end > s.replica.log.high_watermark(), "a satisfied acks=all waiter was kept");
            }
            if !s.replica.is_leader() {
                assert!(s.hw_waiters.is_empty(), "{tp}: a non-leader holds acks=all waiters");
                assert!(s.parked.is_empty(), "{tp}: a non-leader holds parked fetches");
            }
            let mut fetchers: Vec<NodeId> = s.parked.iter().map(|(from, _, _)| *from).collect();
            fetchers.sort_unstable();
            fetchers.dedup();
            assert_eq!(fetchers.len(), s.parked.len(), "{tp}: a follower has two parked fetches");
        }
        let mut last = 0;
        for (token, _) in &self.inflight {
            assert!(token.0 > last, "persist tokens out of order");
            last = token.0;
        }
        assert!(self.inflight.len() <= self.config.max_inflight_persists);
        let queued: usize = self.inflight.iter().map(|(_, b)| b.append_bytes).sum::<usize>() + self.staged.append_bytes;
        assert_eq!(queued, self.pending_write_bytes, "pending write accounting drifted");
        assert!(self.image.applied <= self.raft.commit_index() || !self.raft.is_voter());
        if self.controller.is_some() {
            assert!(self.raft.leader() == Some(self.id()), "an active controller that does not lead Raft");
        }
        self.check_coordinators();
        self.check_deliveries();
    }

    /// The group coordinator of `__groups/partition` on this broker, if it leads
    /// that partition.
    pub fn coordinator(&self, partition: PartitionId) -> Option<&Coordinator> {
        self.coordinators.get(&partition)
    }

    // ----- inputs -----

    fn handle_message(&mut self, from: Peer, msg: Message) {
        match (from, msg) {
            (_, Message::Request(req)) => self.handle_request(from, req),
            (Peer::Node(n), Message::Peer(pm)) => self.handle_peer(n, pm),
            (Peer::Client(_), Message::Peer(_)) => self.outputs.push_back(Output::Close {
                peer: from,
                reason: "protocol error: broker-to-broker messages from a client connection".into(),
            }),
            (_, Message::Response(_)) => self.outputs.push_back(Output::Close {
                peer: from,
                reason: "protocol error: brokers accept requests, not responses".into(),
            }),
        }
    }

    fn handle_peer(&mut self, from: NodeId, msg: PeerMessage) {
        match msg {
            PeerMessage::Raft(m) => {
                if self.raft.is_voter() && self.config.voters.contains(&from) {
                    self.raft.handle_message(self.now, from, m);
                }
            }
            PeerMessage::MetadataFetch { after } => self.serve_metadata(from, after),
            PeerMessage::MetadataEntries { entries, commit, leader } => {
                self.apply_fetched_metadata(entries, commit, leader)
            }
            PeerMessage::Controller { correlation, request } => {
                self.handle_controller_request(from, correlation, request)
            }
            PeerMessage::ControllerReply { correlation, result } => self.handle_controller_reply(correlation, result),
            PeerMessage::ReplicaFetch(f) => self.handle_replica_fetch(from, f),
            PeerMessage::ReplicaFetchReply { tp, leader_epoch, fetch, result } => {
                self.handle_replica_fetch_reply(from, tp, leader_epoch, fetch, result)
            }
            PeerMessage::DeadLetter { correlation, tp, batch, commit_wait } => {
                self.handle_dead_letter(from, correlation, tp, batch, commit_wait)
            }
            PeerMessage::DeadLetterReply { correlation, result } => self.handle_dead_letter_reply(correlation, result),
        }
    }

    fn handle_timeout(&mut self) {
        let now = self.now;
        if now >= self.raft.poll_timeout() {
            self.raft.handle_timeout(now);
        }
        self.controller_tick();
        self.session_tick();
        self.admin_tick();
        self.partitions_tick();
        self.coordinators_tick();
        self.delivery_tick();
        if now >= self.next_retention_check {
            self.next_retention_check = now + self.config.retention_check_interval;
            self.run_retention();
        }
    }

    fn handle_persisted(&mut self, token: PersistToken) {
        while self.inflight.front().is_some_and(|(t, _)| *t <= token) {
            let Some((_, batch)) = self.inflight.pop_front() else { break };
            self.pending_write_bytes -= batch.append_bytes;
            for effect in batch.effects {
                match effect {
                    Effect::Appended { tp, end, epoch, acks, reply, commit_deadline } => {
                        self.on_appended(tp, end, epoch, acks, reply, commit_deadline)
                    }
                    Effect::Replicated { tp, end } => self.on_replicated(tp, end),
                    Effect::RaftDurable(marker) => self.raft.on_persisted(self.now, marker),
                    Effect::Send { to, msg } => self.send_peer(to, msg),
                }
            }
        }
    }

    /// Runs Raft outputs, newly committed metadata and messages to self until quiet.
    fn pump(&mut self) {
        loop {
            let mut progressed = self.drain_raft();
            progressed |= self.apply_committed();
            progressed |= self.update_controller_role();
            while let Some(m) = self.local.pop_front() {
                progressed = true;
                let me = self.id();
                self.handle_peer(me, m);
                progressed |= self.drain_raft();
            }
            if !progressed {
                break;
            }
        }
        self.sync_coordinators();
        self.sync_deliveries();
    }

    // ----- the persist pipeline -----

    fn stage(&mut self, write: Write, effect: Option<Effect>, append_bytes: usize) {
        self.staged.writes.push(write);
        if let Some(e) = effect {
            self.staged.effects.push(e);
        }
        self.staged.append_bytes += append_bytes;
        self.pending_write_bytes += append_bytes;
    }

    /// Sends `msg` once every write staged or in flight so far is durable.
    fn send_after_persist(&mut self, to: NodeId, msg: PeerMessage) {
        if self.staged.writes.is_empty() && self.staged.effects.is_empty() && self.inflight.is_empty() {
            self.send_peer(to, msg);
        } else {
            self.staged.effects.push(Effect::Send { to, msg });
        }
    }

    /// Sends staged writes as one Persist if the pipeline has room.
    fn flush(&mut self) {
        let nothing = self.staged.writes.is_empty() && self.staged.effects.is_empty();
        if nothing || self.inflight.len() >= self.config.max_inflight_persists {
            return;
        }
        let token = PersistToken(self.next_token);
        self.next_token += 1;
        let mut batch = std::mem::take(&mut self.staged);
        let writes = std::mem::take(&mut batch.writes);
        self.outputs.push_back(Output::Persist { token, writes });
        self.inflight.push_back((token, batch));
    }

    // ----- sending -----

    fn send_peer(&mut self, to: NodeId, msg: PeerMessage) {
        if to == self.id() {
            self.local.push_back(msg);
        } else {
            self.outputs.push_back(Output::Send { to: Peer::Node(to), msg: Message::Peer(msg) });
        }
    }

    fn reply(&mut self, to: Peer, correlation: CorrelationId, body: Result<ResponseBody, WireError>) {
        if let Peer::Node(n) = to {
            // The only requests brokers make of each other through the client
            // path are dead-letter appends (docs/consumers.md section 6.4).
            let result = body.and_then(|b| match b {
                ResponseBody::Produced { base_offset, .. } => Ok(base_offset),
                other => Err(WireError::new(ErrorCode::Internal, format!("unexpected answer to a broker: {other:?}"))),
            });
            self.send_peer(n, PeerMessage::DeadLetterReply { correlation, result });
            return;
        }
        self.outputs.push_back(Output::Send { to, msg: Message::Response(Response { correlation, body }) });
    }

    fn send_reply(&mut self, r: PendingReply) {
        if let Some(e) = r.event {
            self.event(*e);
        }
        self.reply(r.to, r.correlation, Ok(r.body));
    }

    fn event(&mut self, e: Event) {
        self.outputs.push_back(Output::Event(e));
    }
}

fn not_ready(id: NodeId) -> WireError {
    WireError::new(
        ErrorCode::NotReady,
        format!("broker {id} is starting: it has not registered and caught up yet; retry"),
    )
}

fn unknown_topic(topic: &str) -> WireError {
    WireError::new(ErrorCode::UnknownTopic, format!("unknown topic {topic}; create it first (mq topic create {topic})"))
}

/// Checks a topic name: 1 to 249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), WireError> {
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > MAX_TOPIC_NAME_LEN || !ok_chars || name == "." || name == ".." {
        return Err(WireError::new(
            ErrorCode::InvalidRequest,
            format!("invalid topic name {name:?}: use 1 to {MAX_TOPIC_NAME_LEN} characters of A-Z a-z 0-9 . _ -"),
        ));
    }
    Ok(())
}
