//! The broker node: the state machine a driver runs for one broker.
//!
//! This foundation serves a single-node cluster: topics, partition logs, produce
//! with acks, fetch below the high watermark, offset lookups and retention. Later
//! steps add the controller quorum and replication inside the same machine.
//!
//! The write path (docs/architecture.md): a produce request is validated, its batch
//! is stamped with offsets and appended to the in-memory log, and an
//! [`Write::Append`] is *staged*. Staged writes leave as one [`Output::Persist`]
//! whenever fewer than `max_inflight_persists` are in flight, so one fsync covers
//! every request that arrived while the previous one ran (group commit). When
//! `Persisted` arrives the log's LEO moves, the HW follows, and only then are
//! producers answered.

mod config;

pub use config::{NodeConfig, NodeConfigBuilder};

use crate::contract::{Event, Input, Output, Peer, PersistToken};
use crate::ids::{CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId, TopicPartition};
use crate::log::PartitionLog;
use crate::rng::{Rng, Seed};
use crate::storage::{DurableState, Write};
use crate::time::Instant;
use crate::wire::{
    Acks, BatchKind, ErrorCode, Message, OffsetSpec, PartitionInfo, RecordBatch, Request, RequestBody, Response,
    ResponseBody, TopicConfig, TopicInfo, WireError,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Longest topic name, as in Kafka.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A reply to send once a condition holds.
#[derive(Clone, Debug)]
struct PendingReply {
    to: Peer,
    correlation: CorrelationId,
    body: ResponseBody,
}

/// What to do once a Persist completes.
#[derive(Clone, Debug)]
enum Effect {
    /// Records below `end` of `tp` are durable; answer per `acks`.
    Appended { tp: TopicPartition, end: Offset, acks: Acks, reply: Option<PendingReply> },
    /// The topic is durable: make it visible and answer.
    TopicCreated { config: TopicConfig, reply: PendingReply },
    /// The deletion is durable: forget the topic and answer.
    TopicDeleted { topic: String, reply: PendingReply },
}

/// Writes and their effects that share one Persist.
#[derive(Clone, Debug, Default)]
struct PersistBatch {
    writes: Vec<Write>,
    effects: Vec<Effect>,
    append_bytes: usize,
}

/// One partition as this broker holds it.
#[derive(Clone, Debug)]
struct Partition {
    log: PartitionLog,
    /// `acks=all` replies waiting for the HW to pass their batch's end.
    hw_waiters: VecDeque<(Offset, PendingReply)>,
}

#[derive(Clone, Debug)]
struct Topic {
    config: TopicConfig,
    /// A deletion is being persisted: refuse new requests.
    deleting: bool,
    partitions: Vec<Partition>,
}

/// A broker node (see the module docs).
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    #[allow(dead_code)] // drawn from by the replication step (election jitter)
    rng: Rng,
    now: Instant,
    topics: BTreeMap<String, Topic>,
    /// Topics whose creation is being persisted.
    creating: BTreeSet<String>,
    outputs: VecDeque<Output>,
    next_token: u64,
    staged: PersistBatch,
    inflight: VecDeque<(PersistToken, PersistBatch)>,
    pending_write_bytes: usize,
    next_retention_check: Instant,
}

impl Node {
    /// A new node with empty durable state.
    pub fn new(config: NodeConfig, seed: u64) -> Self {
        let next_retention_check = Instant::ZERO + config.retention_check_interval;
        Node {
            rng: Seed(seed).indexed_stream("node", u64::from(config.node_id.0)),
            config,
            now: Instant::ZERO,
            topics: BTreeMap::new(),
            creating: BTreeSet::new(),
            outputs: VecDeque::new(),
            next_token: 1,
            staged: PersistBatch::default(),
            inflight: VecDeque::new(),
            pending_write_bytes: 0,
            next_retention_check,
        }
    }

    /// Rebuilds a node from what its store kept. The driver must have repaired the
    /// store first ([`DurableState::repair`]); anything never persisted is gone.
    pub fn recover(config: NodeConfig, seed: u64, durable: &DurableState) -> Self {
        let mut node = Node::new(config, seed);
        for (name, tc) in &durable.topics {
            let partitions = (0..tc.partitions)
                .map(|p| {
                    let tp = TopicPartition::new(name.clone(), p);
                    let mut log = match durable.logs.get(&tp) {
                        Some(stored) => PartitionLog::recovered(tp, stored.log_start(), stored.read_batches()),
                        None => PartitionLog::new(tp),
                    };
                    // Single-node: every persisted record is in the only in-sync
                    // replica, so it is committed.
                    log.advance_high_watermark(log.persisted_end());
                    Partition { log, hw_waiters: VecDeque::new() }
                })
                .collect();
            node.topics.insert(name.clone(), Topic { config: tc.clone(), deleting: false, partitions });
        }
        node
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

    /// The log of `tp`, if this node holds it.
    pub fn log(&self, tp: &TopicPartition) -> Option<&PartitionLog> {
        self.topics.get(&tp.topic)?.partitions.get(tp.partition.0 as usize).map(|p| &p.log)
    }

    /// Every partition log this node holds.
    pub fn logs(&self) -> impl Iterator<Item = &PartitionLog> {
        self.topics.values().flat_map(|t| t.partitions.iter().map(|p| &p.log))
    }

    /// Names of the visible topics.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().filter(|(_, t)| !t.deleting).map(|(n, _)| n.as_str())
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
            Input::Connected { .. } | Input::Disconnected { .. } => {}
            Input::Timeout => self.handle_timeout(),
            Input::Persisted { token } => self.handle_persisted(token),
        }
        self.flush();
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The next output, until `None`; drain after every `handle`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the node next needs `Input::Timeout`: the retention check, when any topic
    /// has retention; `None` otherwise.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let any_retention =
            self.topics.values().any(|t| t.config.retention_bytes.is_some() || t.config.retention_time.is_some());
        any_retention.then_some(self.next_retention_check)
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        for t in self.topics.values() {
            assert_eq!(t.partitions.len(), t.config.partitions as usize);
            for p in &t.partitions {
                p.log.check_invariants();
                for (end, _) in &p.hw_waiters {
                    assert!(*end > p.log.high_watermark(), "a satisfied acks=all waiter was kept");
                }
            }
        }
        let mut last = 0;
        for (token, _) in &self.inflight {
            assert!(token.0 > last, "persist tokens out of order");
            last = token.0;
        }
        assert!(self.inflight.len() <= self.config.max_inflight_persists);
        let queued: usize = self.inflight.iter().map(|(_, b)| b.append_bytes).sum::<usize>() + self.staged.append_bytes;
        assert_eq!(queued, self.pending_write_bytes, "pending write accounting drifted");
    }

    // ----- inputs -----

    fn handle_message(&mut self, from: Peer, msg: Message) {
        match msg {
            Message::Request(req) => self.handle_request(from, req),
            Message::Response(_) => {
                tracing::debug!(%from, "dropping a response sent to a broker");
                self.outputs.push_back(Output::Close {
                    peer: from,
                    reason: "protocol error: brokers accept requests, not responses".into(),
                });
            }
        }
    }

    fn handle_request(&mut self, from: Peer, req: Request) {
        let corr = req.correlation;
        let result = match req.body {
            RequestBody::CreateTopic(config) => self.create_topic(from, corr, config),
            RequestBody::DeleteTopic { topic } => self.delete_topic(from, corr, topic),
            RequestBody::ListTopics => Ok(Some(ResponseBody::Topics(self.list_topics()))),
            RequestBody::Produce { topic, partition, acks, batch } => {
                self.produce(from, corr, topic, partition, acks, batch)
            }
            RequestBody::Fetch { topic, partition, offset, max_bytes } => {
                self.fetch(&topic, partition, offset, max_bytes as usize).map(Some)
            }
            RequestBody::ListOffsets { topic, partition, spec } => {
                self.list_offsets(&topic, partition, spec).map(|offset| Some(ResponseBody::Offset { offset }))
            }
        };
        match result {
            Ok(Some(body)) => self.reply(from, corr, Ok(body)),
            Ok(None) => {} // answered later (after a Persist) or never (acks=0)
            Err(e) => self.reply(from, corr, Err(e)),
        }
    }

    fn handle_timeout(&mut self) {
        if self.now >= self.next_retention_check {
            self.next_retention_check = self.now + self.config.retention_check_interval;
            self.run_retention();
        }
    }

    fn handle_persisted(&mut self, token: PersistToken) {
        while self.inflight.front().is_some_and(|(t, _)| *t <= token) {
            let Some((_, batch)) = self.inflight.pop_front() else { break };
            self.pending_write_bytes -= batch.append_bytes;
            for effect in batch.effects {
                self.apply_effect(effect);
            }
        }
    }

    fn apply_effect(&mut self, effect: Effect) {
        match effect {
            Effect::Appended { tp, end, acks, reply } => {
                let Some(part) = self.partition_mut(&tp) else { return };
                part.log.mark_persisted(end);
                match (acks, reply) {
                    (Acks::All, Some(r)) => part.hw_waiters.push_back((end, r)),
                    (_, Some(r)) => self.send_reply(r),
                    (_, None) => {}
                }
                self.update_high_watermark(&tp);
            }
            Effect::TopicCreated { config, reply } => {
                self.creating.remove(&config.name);
                let partitions = (0..config.partitions)
                    .map(|p| Partition {
                        log: PartitionLog::new(TopicPartition::new(config.name.clone(), p)),
                        hw_waiters: VecDeque::new(),
                    })
                    .collect();
                let name = config.name.clone();
                self.topics.insert(name.clone(), Topic { config, deleting: false, partitions });
                self.outputs.push_back(Output::Event(Event::TopicCreated { topic: name }));
                self.send_reply(reply);
            }
            Effect::TopicDeleted { topic, reply } => {
                if let Some(t) = self.topics.remove(&topic) {
                    for p in t.partitions {
                        for (_, w) in p.hw_waiters {
                            let msg = format!("topic {topic} was deleted before the batch was committed");
                            self.reply(w.to, w.correlation, Err(WireError::new(ErrorCode::TopicDeleted, msg)));
                        }
                    }
                }
                self.outputs.push_back(Output::Event(Event::TopicDeleted { topic }));
                self.send_reply(reply);
            }
        }
    }

    /// Single-node rule: the ISR is this broker alone, so the HW is its LEO.
    fn update_high_watermark(&mut self, tp: &TopicPartition) {
        let Some(part) = self.partition_mut(tp) else { return };
        let leo = part.log.persisted_end();
        if !part.log.advance_high_watermark(leo) {
            return;
        }
        let hw = part.log.high_watermark();
        let mut ready = Vec::new();
        while part.hw_waiters.front().is_some_and(|(end, _)| *end <= hw) {
            if let Some((_, r)) = part.hw_waiters.pop_front() {
                ready.push(r);
            }
        }
        self.outputs.push_back(Output::Event(Event::HighWatermark { tp: tp.clone(), high_watermark: hw }));
        for r in ready {
            self.send_reply(r);
        }
    }

    // ----- requests -----

    fn create_topic(
        &mut self,
        from: Peer,
        corr: CorrelationId,
        config: TopicConfig,
    ) -> Result<Option<ResponseBody>, WireError> {
        validate_topic_name(&config.name)?;
        if self.topics.contains_key(&config.name) || self.creating.contains(&config.name) {
            return Err(WireError::new(ErrorCode::TopicExists, format!("topic {} already exists", config.name)));
        }
        if self.topics.len() + self.creating.len() >= self.config.max_topics {
            return Err(WireError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "broker {} holds its maximum of {} topics; delete one first",
                    self.id(),
                    self.config.max_topics
                ),
            ));
        }
        let invalid = |m: String| Err(WireError::new(ErrorCode::InvalidConfig, m));
        if config.partitions == 0 || config.partitions > self.config.max_partitions_per_topic {
            return invalid(format!(
                "topic {} asks for {} partitions; allowed are 1 to {}",
                config.name, config.partitions, self.config.max_partitions_per_topic
            ));
        }
        if config.replication_factor == 0 || u32::from(config.replication_factor) > self.config.cluster_size {
            return invalid(format!(
                "replication factor {} of topic {} must be between 1 and the {} broker(s) in the cluster",
                config.replication_factor, config.name, self.config.cluster_size
            ));
        }
        if config.min_insync_replicas == 0 || config.min_insync_replicas > config.replication_factor {
            return invalid(format!(
                "min_insync_replicas {} of topic {} must be between 1 and its replication factor {}",
                config.min_insync_replicas, config.name, config.replication_factor
            ));
        }
        if config.retention_time == Some(crate::time::Duration::ZERO) || config.retention_bytes == Some(0) {
            return invalid(format!("retention of topic {} must be positive (or unset for none)", config.name));
        }
        self.creating.insert(config.name.clone());
        let reply = PendingReply { to: from, correlation: corr, body: ResponseBody::TopicCreated };
        self.stage(Write::PutTopic(config.clone()), Effect::TopicCreated { config, reply }, 0);
        Ok(None)
    }

    fn delete_topic(
        &mut self,
        from: Peer,
        corr: CorrelationId,
        topic: String,
    ) -> Result<Option<ResponseBody>, WireError> {
        let t = self.topic_mut(&topic)?;
        t.deleting = true;
        let reply = PendingReply { to: from, correlation: corr, body: ResponseBody::TopicDeleted };
        self.stage(Write::DeleteTopic { topic: topic.clone() }, Effect::TopicDeleted { topic, reply }, 0);
        Ok(None)
    }

    fn list_topics(&self) -> Vec<TopicInfo> {
        self.topics
            .values()
            .filter(|t| !t.deleting)
            .map(|t| TopicInfo {
                config: t.config.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| PartitionInfo {
                        partition: PartitionId(i as u32),
                        leader: Some(self.id()),
                        leader_epoch: LeaderEpoch(0),
                        replicas: vec![self.id()],
                        isr: vec![self.id()],
                        log_start: p.log.log_start(),
                        high_watermark: p.log.high_watermark(),
                    })
                    .collect(),
            })
            .collect()
    }

    fn produce(
        &mut self,
        from: Peer,
        corr: CorrelationId,
        topic: String,
        partition: PartitionId,
        acks: Acks,
        batch: RecordBatch,
    ) -> Result<Option<ResponseBody>, WireError> {
        let max_batch = self.config.max_batch_bytes;
        let max_pending = self.config.max_pending_write_bytes;
        let size = batch.size_bytes();
        if batch.is_empty() {
            return Err(WireError::new(ErrorCode::InvalidRequest, "empty batch: send at least one record"));
        }
        if batch.kind != BatchKind::Data {
            return Err(WireError::new(ErrorCode::InvalidRequest, "clients may not write control batches"));
        }
        if size > max_batch {
            return Err(WireError::new(
                ErrorCode::RecordTooLarge,
                format!("batch of {size} bytes exceeds max_batch_bytes {max_batch}; split it or raise the limit"),
            ));
        }
        if self.pending_write_bytes + size > max_pending {
            return Err(WireError::new(
                ErrorCode::Backpressure,
                format!("broker {} has {} bytes waiting for disk; retry later", self.id(), self.pending_write_bytes),
            ));
        }
        let now_ms = self.now.as_millis();
        let part = self.partition_for_request(&topic, partition)?;
        let stamped = part.log.append(batch, LeaderEpoch(0), now_ms);
        let tp = TopicPartition { topic, partition };
        let reply = (acks != Acks::None).then(|| PendingReply {
            to: from,
            correlation: corr,
            body: ResponseBody::Produced {
                partition,
                base_offset: stamped.base_offset,
                append_time_ms: stamped.append_time_ms,
            },
        });
        let end = stamped.end_offset();
        let write = Write::Append { tp: tp.clone(), batches: vec![stamped] };
        self.stage(write, Effect::Appended { tp, end, acks, reply }, size);
        Ok(None)
    }

    fn fetch(
        &mut self,
        topic: &str,
        partition: PartitionId,
        offset: Offset,
        max_bytes: usize,
    ) -> Result<ResponseBody, WireError> {
        let cap = self.config.max_fetch_bytes;
        let part = self.partition_for_request(topic, partition)?;
        let log = &part.log;
        if offset < log.log_start() || offset > log.log_end() {
            return Err(WireError::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "offset {offset} is outside {topic}/{partition}, which holds {}..{}; seek to the earliest or latest offset",
                    log.log_start(),
                    log.high_watermark()
                ),
            ));
        }
        Ok(ResponseBody::Fetched {
            partition,
            high_watermark: log.high_watermark(),
            log_start: log.log_start(),
            batches: log.read_committed(offset, max_bytes.min(cap)),
        })
    }

    fn list_offsets(&mut self, topic: &str, partition: PartitionId, spec: OffsetSpec) -> Result<Offset, WireError> {
        let log = &self.partition_for_request(topic, partition)?.log;
        Ok(match spec {
            OffsetSpec::Earliest => log.log_start(),
            OffsetSpec::Latest => log.high_watermark(),
            OffsetSpec::Timestamp(t) => log.offset_for_time(t),
        })
    }

    fn run_retention(&mut self) {
        let now_ms = self.now.as_millis();
        let mut writes = Vec::new();
        for t in self.topics.values_mut().filter(|t| !t.deleting) {
            let min_time = t.config.retention_time.map(|d| now_ms.saturating_sub(d.as_millis()));
            for p in &mut t.partitions {
                if let Some(start) = p.log.retention_point(min_time, t.config.retention_bytes) {
                    p.log.advance_log_start(start);
                    let tp = p.log.tp().clone();
                    self.outputs.push_back(Output::Event(Event::LogStartAdvanced { tp: tp.clone(), log_start: start }));
                    writes.push(Write::AdvanceLogStart { tp, log_start: start });
                }
            }
        }
        // Deleting is not a promise to anyone, so it needs no effect on completion.
        self.staged.writes.extend(writes);
    }

    // ----- helpers -----

    fn stage(&mut self, write: Write, effect: Effect, append_bytes: usize) {
        self.staged.writes.push(write);
        self.staged.effects.push(effect);
        self.staged.append_bytes += append_bytes;
        self.pending_write_bytes += append_bytes;
    }

    /// Sends staged writes as one Persist if the pipeline has room.
    fn flush(&mut self) {
        if self.staged.writes.is_empty() || self.inflight.len() >= self.config.max_inflight_persists {
            return;
        }
        let token = PersistToken(self.next_token);
        self.next_token += 1;
        let mut batch = std::mem::take(&mut self.staged);
        let writes = std::mem::take(&mut batch.writes);
        self.outputs.push_back(Output::Persist { token, writes });
        self.inflight.push_back((token, batch));
    }

    fn reply(&mut self, to: Peer, correlation: CorrelationId, body: Result<ResponseBody, WireError>) {
        self.outputs.push_back(Output::Send { to, msg: Message::Response(Response { correlation, body }) });
    }

    fn send_reply(&mut self, r: PendingReply) {
        self.reply(r.to, r.correlation, Ok(r.body));
    }

    fn topic_mut(&mut self, topic: &str) -> Result<&mut Topic, WireError> {
        match self.topics.get_mut(topic) {
            Some(t) if !t.deleting => Ok(t),
            _ => Err(unknown_topic(topic)),
        }
    }

    fn partition_for_request(&mut self, topic: &str, partition: PartitionId) -> Result<&mut Partition, WireError> {
        let t = self.topic_mut(topic)?;
        let count = t.partitions.len();
        t.partitions.get_mut(partition.0 as usize).ok_or_else(|| {
            WireError::new(
                ErrorCode::UnknownPartition,
                format!("topic {topic} has partitions 0..{count}; partition {partition} does not exist"),
            )
        })
    }

    fn partition_mut(&mut self, tp: &TopicPartition) -> Option<&mut Partition> {
        self.topics.get_mut(&tp.topic)?.partitions.get_mut(tp.partition.0 as usize)
    }
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
