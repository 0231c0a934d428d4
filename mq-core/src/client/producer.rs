//! The producer (DESIGN.md section 6): packs sends into per-partition batches,
//! sends each batch to the partition's leader, finds leaders through `Metadata`
//! requests, retries with backoff, deduplicates its retries through the idempotent
//! producer protocol, and reports exactly one [`ProduceOutcome`] per send.
//!
//! **Sends.** [`Producer::submit`] takes a [`SendRequest`]: a topic, records, an
//! acks level, optionally a partition and a deadline. Awaited sends (`acks=1`,
//! `acks=all`) end with the partition and offset of their first record; one-way
//! sends (`acks=0`) end as soon as their batch is on the wire. A send of many
//! records is a batch send; its records stay together, in order, in one batch.
//!
//! **Partitions.** An explicit partition wins; otherwise the configured
//! [`PartitionerKind`] (or a plugged-in [`Partitioner`]) picks one, using the key of
//! the send's first record. The partition count comes from metadata, so a send
//! without a partition waits for it.
//!
//! **Batching.** Sends to the same partition with the same acks level pack into one
//! batch up to `batch_max_bytes` (a send larger than that travels alone). A batch
//! leaves when it is full or `linger` after its first send, and only when its
//! partition may send: at most `max_inflight_per_partition` batches are out per
//! partition, in order. Records waiting or in flight count against
//! `buffer_max_bytes`; a send that does not fit is refused with
//! [`ProduceError::BufferFull`] (backpressure), as is one beyond `max_inflight`
//! sends without an outcome.
//!
//! **Idempotence** (on by default, for `acks=all` batches as in Kafka): before its
//! first such batch the producer asks a broker for a producer id (`InitProducer`).
//! Each batch gets, when it first leaves, a stamp `(producer id, epoch, base
//! sequence)` with consecutive sequences per partition, and keeps it across
//! retries, so a leader that already appended it answers with the original offset
//! instead of appending it twice. Batches leave in sequence order and a retried
//! batch holds back the ones after it. `OutOfOrderSequence` while an earlier batch
//! of the partition is unresolved means "that one first": the batch waits for it.
//! When a batch ends without an acknowledgement (failed or indefinite), or the
//! leader expects a sequence the producer cannot explain, the partition's epoch is
//! bumped and the batches after it that never may have been appended are stamped
//! again from sequence 0 (Kafka's KIP-360 recovery); the leader accepts a newer
//! epoch and fences late attempts of the old one (`ProducerFenced`).
//!
//! **Retries.** A batch is tried up to `max_attempts` times. A retriable refusal
//! (`NotLeader`, `NotReady`, `FencedEpoch`, `UnknownEpoch`, `UnknownTopic`, ...),
//! an indefinite error (`LeadershipLost`, `Timeout`, `Internal`), a missing reply
//! by the request deadline and a closed connection all forget the leader, refresh
//! metadata and try again after an exponential backoff with jitter drawn from the
//! producer's seeded stream. A send that cannot finish by its deadline
//! (`delivery_timeout` unless the request sets one) stops retrying.
//!
//! The outcome classification is what a checker relies on, so it is conservative:
//! - `Ok` carries the partition and offset of the send's first record, from the
//!   attempt that was acknowledged;
//! - `Failed` is *definite*: *every* attempt was refused before the batch was
//!   appended (or none could be sent), so it can never be read;
//! - `Indefinite` means the batch may be in the log: some attempt timed out, lost its
//!   connection, got an indefinite error, or the send was `acks=0`. A retry never
//!   makes an indefinite send definite; only an acknowledgement ends it as `Ok`.
//!
//! A response that matches no request in flight (late, duplicated, from an attempt
//! given up on) is ignored.
//!
//! **Authentication** (with `credentials`, [`crate::client::auth`]): each broker
//! is logged in to before the first request it gets; a leader that answers
//! `Unauthenticated` (it restarted) is logged in to again and the batch retried.
//! Refused credentials fail every send not out definitely with an error naming
//! the app key, and every later send at once.

use crate::client::auth::{AuthGate, Credentials, Routed, SendOutput};
use crate::client::partitioner::{
    choose_partition, PartitionError, Partitioner, PartitionerConfigError, PartitionerKind,
};
use crate::client::retry::{backoff, jittered, BrokerRotation, Leaders};
use crate::contract::{Input, Peer};
use crate::ids::{
    CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence, TopicPartition,
};
use crate::rng::{Rng, Seed};
use crate::security::validate_app_key;
use crate::time::{Duration, Instant};
use crate::wire::{
    Acks, ErrorCode, Message, ProducerStamp, Record, RecordBatch, Request, RequestBody, ResponseBody, WireError,
};
use std::collections::{BTreeMap, VecDeque};

/// Producer settings. Build them with [`ProducerConfig::new`] and the chained
/// setters, or start from [`Default`] (one broker, `n1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Every broker of the cluster (metadata requests rotate over them).
    pub brokers: Vec<NodeId>,
    /// How long a request may wait for its response before that attempt is
    /// indefinite.
    pub request_timeout: Duration,
    /// Most sends without an outcome; `submit` refuses beyond it (backpressure).
    pub max_inflight: usize,
    /// Most produce requests one batch may use.
    pub max_attempts: u32,
    /// The first retry waits about this long; each further one twice as long.
    pub retry_backoff: Duration,
    /// The longest wait between two attempts.
    pub retry_backoff_max: Duration,
    /// A send that has no outcome this long after `submit` stops retrying (a
    /// request may set a shorter or longer deadline of its own).
    pub delivery_timeout: Duration,
    /// Stamp `acks=all` batches so that retries are deduplicated (Kafka's
    /// `enable.idempotence`, on by default).
    pub idempotence: bool,
    /// How long a batch waits for more sends before it leaves (Kafka's
    /// `linger.ms`). Zero: it leaves as soon as its partition may send; sends made
    /// while earlier batches are out still pack together.
    pub linger: Duration,
    /// A batch stops taking sends at this size (bytes, as
    /// [`RecordBatch::size_bytes`] counts them).
    pub batch_max_bytes: usize,
    /// Bytes of records waiting or in flight, at most (Kafka's `buffer.memory`).
    pub buffer_max_bytes: usize,
    /// Batches out at once per partition (Kafka's
    /// `max.in.flight.requests.per.connection`, at most 5 with idempotence).
    pub max_inflight_per_partition: usize,
    /// How sends without an explicit partition pick one.
    pub partitioner: PartitionerKind,
    /// The app key and secret to authenticate with (`None`: the brokers run
    /// without authentication).
    pub credentials: Option<Credentials>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            brokers: vec![NodeId(1)],
            request_timeout: Duration::from_secs(5),
            max_inflight: 1_000,
            max_attempts: 10,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(30),
            idempotence: true,
            linger: Duration::ZERO,
            batch_max_bytes: 16 * 1024,
            buffer_max_bytes: 32 * 1024 * 1024,
            max_inflight_per_partition: 5,
            partitioner: PartitionerKind::KeyHash,
            credentials: None,
        }
    }
}

impl ProducerConfig {
    /// The defaults, for these brokers.
    pub fn new(brokers: impl IntoIterator<Item = NodeId>) -> Self {
        ProducerConfig { brokers: brokers.into_iter().collect(), ..ProducerConfig::default() }
    }

    /// Sets `request_timeout`.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Sets `max_inflight` (sends without an outcome).
    pub fn max_inflight(mut self, n: usize) -> Self {
        self.max_inflight = n;
        self
    }

    /// Sets `max_attempts`.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Sets the retry backoff: first wait and longest wait.
    pub fn retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.retry_backoff = first;
        self.retry_backoff_max = max;
        self
    }

    /// Sets `delivery_timeout`.
    pub fn delivery_timeout(mut self, d: Duration) -> Self {
        self.delivery_timeout = d;
        self
    }

    /// Turns idempotence on or off.
    pub fn idempotence(mut self, on: bool) -> Self {
        self.idempotence = on;
        self
    }

    /// Sets `linger`.
    pub fn linger(mut self, d: Duration) -> Self {
        self.linger = d;
        self
    }

    /// Sets `batch_max_bytes`.
    pub fn batch_max_bytes(mut self, n: usize) -> Self {
        self.batch_max_bytes = n;
        self
    }

    /// Sets `buffer_max_bytes`.
    pub fn buffer_max_bytes(mut self, n: usize) -> Self {
        self.buffer_max_bytes = n;
        self
    }

    /// Sets `max_inflight_per_partition`.
    pub fn max_inflight_per_partition(mut self, n: usize) -> Self {
        self.max_inflight_per_partition = n;
        self
    }

    /// Sets the partitioner.
    pub fn partitioner(mut self, kind: PartitionerKind) -> Self {
        self.partitioner = kind;
        self
    }

    /// Authenticates with these credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Checks the settings; every error names the setting and the rule.
    pub fn validate(&self) -> Result<(), ProducerConfigError> {
        let bad = |setting: &'static str, rule: &str| Err(ProducerConfigError::Invalid { setting, rule: rule.into() });
        if self.brokers.is_empty() {
            return bad("brokers", "name at least one broker");
        }
        if self.max_inflight == 0 {
            return bad("max_inflight", "must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("max_attempts", "must be at least 1");
        }
        if self.request_timeout == Duration::ZERO {
            return bad("request_timeout", "must be positive");
        }
        if self.retry_backoff > self.retry_backoff_max {
            return bad("retry_backoff", "must not exceed retry_backoff_max");
        }
        if self.delivery_timeout < self.linger + self.request_timeout {
            // Kafka's rule: a send must be allowed at least one whole attempt.
            return bad("delivery_timeout", "must be at least linger + request_timeout");
        }
        if self.max_inflight_per_partition == 0 {
            return bad("max_inflight_per_partition", "must be at least 1");
        }
        if self.idempotence && self.max_inflight_per_partition > 5 {
            return bad("max_inflight_per_partition", "at most 5 with idempotence (brokers remember 5 batches)");
        }
        if self.batch_max_bytes == 0 || self.buffer_max_bytes < self.batch_max_bytes {
            return bad("buffer_max_bytes", "must be at least batch_max_bytes, which must be positive");
        }
        if let Some(Err(e)) = self.credentials.as_ref().map(|c| validate_app_key(&c.app_key)) {
            return bad("credentials", &e.message);
        }
        Ok(())
    }
}

/// Why a [`ProducerConfig`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProducerConfigError {
    /// A setting breaks its rule.
    #[error("invalid producer setting {setting}: {rule}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What it must be.
        rule: String,
    },
    /// The partitioner cannot be built.
    #[error("invalid partitioner: {0}")]
    Partitioner(#[from] PartitionerConfigError),
}

/// One send: records for a topic, how to acknowledge them, where they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendRequest {
    /// The topic.
    pub topic: String,
    /// The partition, or `None` for the partitioner's choice.
    pub partition: Option<PartitionId>,
    /// The acks level (`acks=0` makes it one-way).
    pub acks: Acks,
    /// The records, kept together in order.
    pub records: Vec<Record>,
    /// This send's deadline from `submit`, instead of `delivery_timeout`.
    pub timeout: Option<Duration>,
}

impl SendRequest {
    /// An `acks=all` send to `topic` with no records yet.
    pub fn new(topic: impl Into<String>) -> Self {
        SendRequest { topic: topic.into(), partition: None, acks: Acks::All, records: Vec::new(), timeout: None }
    }

    /// Sends to this partition.
    pub fn partition(mut self, p: PartitionId) -> Self {
        self.partition = Some(p);
        self
    }

    /// Sets the acks level.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// Adds a record.
    pub fn record(mut self, r: Record) -> Self {
        self.records.push(r);
        self
    }

    /// Adds records.
    pub fn records(mut self, rs: impl IntoIterator<Item = Record>) -> Self {
        self.records.extend(rs);
        self
    }

    /// Sets this send's deadline.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
}

/// Names one send; its outcome carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendId(pub u64);

/// How a send ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProduceOutcome {
    /// The broker acknowledged the send's first record at `base_offset` of
    /// `partition` (its other records follow at consecutive offsets).
    Ok {
        /// The partition written.
        partition: PartitionId,
        /// Offset of the first record.
        base_offset: Offset,
    },
    /// Every attempt was refused before appending; the records are not in the log.
    Failed {
        /// The last broker error.
        error: WireError,
    },
    /// The records may or may not have been appended.
    Indefinite {
        /// Why the outcome is unknown.
        reason: String,
    },
}

/// What the producer asks its driver to do, or reports.
#[derive(Clone, Debug, PartialEq)]
pub enum ProducerOutput {
    /// Send `msg` to `to`.
    Send {
        /// The broker.
        to: Peer,
        /// The request.
        msg: Message,
    },
    /// A send finished.
    Done {
        /// Which send.
        id: SendId,
        /// How it ended.
        outcome: ProduceOutcome,
    },
}

/// Why [`Producer::submit`] refused a send. Nothing was queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// `max_inflight` sends are waiting already; retry after an outcome.
    #[error("{0} sends are waiting for an outcome already; wait for one")]
    Backpressure(usize),
    /// The buffer cannot take the send's bytes now; retry after an outcome.
    #[error("the producer buffer holds {used} of {limit} bytes; this send needs {needed}; wait for outcomes")]
    BufferFull {
        /// Bytes held.
        used: usize,
        /// `buffer_max_bytes`.
        limit: usize,
        /// The send's bytes.
        needed: usize,
    },
    /// The send alone is larger than the whole buffer.
    #[error("a send of {needed} bytes can never fit the {limit}-byte producer buffer")]
    TooLarge {
        /// The send's bytes.
        needed: usize,
        /// `buffer_max_bytes`.
        limit: usize,
    },
    /// A send needs at least one record.
    #[error("a send needs at least one record")]
    EmptyBatch,
}

/// Where one batch stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting to be (re)sent from this time on.
    Waiting(Instant),
    /// A produce request is out.
    InFlight { correlation: CorrelationId, to: NodeId, deadline: Instant },
}

/// A send not yet in a batch: its partition waits for metadata.
#[derive(Clone, Debug)]
struct Unrouted {
    id: SendId,
    request: SendRequest,
    bytes: usize,
    give_up_at: Instant,
}

/// A send's place in a batch.
#[derive(Clone, Copy, Debug)]
struct Member {
    id: SendId,
    records: u32,
}

/// Names a batch; batch ids grow, so a partition's queue is in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct BatchId(u64);

#[derive(Clone, Debug)]
struct Batch {
    tp: TopicPartition,
    acks: Acks,
    records: Vec<Record>,
    members: Vec<Member>,
    bytes: usize,
    created: Instant,
    give_up_at: Instant,
    /// Set when it first leaves; no send joins it afterwards.
    sealed: bool,
    stamp: Option<ProducerStamp>,
    /// Produce requests sent so far.
    attempts: u32,
    /// Why some attempt's effect is unknown, if one's is.
    indefinite: Option<String>,
    /// The last definite refusal.
    last_error: Option<WireError>,
    /// Refused as out of order while earlier batches were unresolved: it leaves
    /// again only once none of them is out.
    after_earlier: bool,
    stage: Stage,
}

/// A partition's batches, oldest first, and its idempotence sequence state.
#[derive(Clone, Debug, Default)]
struct PartitionQueue {
    batches: VecDeque<BatchId>,
    /// Producer id and epoch of this partition's stamps (the epoch is bumped to
    /// reset sequences); taken from the producer's identity at the first stamp.
    producer: Option<(ProducerId, ProducerEpoch)>,
    next_seq: Sequence,
    /// A batch ended without an acknowledgement: renumber once nothing is out.
    needs_reset: bool,
    /// The stamp of the acknowledged batch with the highest sequence under the
    /// current numbering.
    last_acked: Option<ProducerStamp>,
}

/// What the first waiting batch of a partition waits for.
enum Next {
    /// Its partition's room: a reply or a request deadline frees it.
    Blocked,
    /// The producer id (`InitProducer`).
    Identity,
    /// The partition's leader (metadata).
    Leader,
    /// The leader to authenticate this producer.
    Auth(NodeId),
    /// Nothing more: it leaves to `leader` at `at`.
    Leave { leader: NodeId, at: Instant },
}

/// A request for metadata or a producer id that is out: (correlation, broker,
/// deadline).
type Pending = Option<(CorrelationId, NodeId, Instant)>;

/// The producer state machine (see the module docs).
#[derive(Debug)]
pub struct Producer {
    config: ProducerConfig,
    partitioner: Box<dyn Partitioner>,
    rng: Rng,
    now: Instant,
    next_correlation: u64,
    next_send: u64,
    next_batch: u64,
    /// Sends without an outcome.
    open_sends: usize,
    unrouted: VecDeque<Unrouted>,
    batches: BTreeMap<BatchId, Batch>,
    queues: BTreeMap<TopicPartition, PartitionQueue>,
    /// Produce requests out, to the batch they carry.
    requests: BTreeMap<CorrelationId, BatchId>,
    leaders: Leaders,
    /// Partition count per topic, from metadata.
    partition_counts: BTreeMap<String, u32>,
    metadata: Pending,
    next_metadata_at: Instant,
    /// The producer id and its first epoch, once granted.
    identity: Option<(ProducerId, ProducerEpoch)>,
    init: Pending,
    next_init_at: Instant,
    brokers: BrokerRotation,
    buffered_bytes: usize,
    retries: u64,
    sequence_resets: u64,
    auth: AuthGate,
    outputs: VecDeque<ProducerOutput>,
}

impl SendOutput for ProducerOutput {
    fn send(to: NodeId, msg: Message) -> Self {
        ProducerOutput::Send { to: Peer::Node(to), msg }
    }
}

impl Producer {
    /// A producer with nothing in flight; `seed` drives its jitter, its random
    /// partitioner and its first metadata broker.
    pub fn new(config: ProducerConfig, seed: u64) -> Result<Self, ProducerConfigError> {
        config.validate()?;
        let partitioner = config.partitioner.build(Seed(seed))?;
        let mut rng = Seed(seed).stream("producer");
        let brokers = BrokerRotation::new(&config.brokers, &mut rng);
        let auth = AuthGate::new(
            config.credentials.clone(),
            Seed(seed).stream("producer-auth"),
            config.request_timeout,
            config.retry_backoff,
            config.retry_backoff_max,
        );
        Ok(Producer {
            config,
            partitioner,
            rng,
            now: Instant::ZERO,
            next_correlation: 1,
            next_send: 1,
            next_batch: 1,
            open_sends: 0,
            unrouted: VecDeque::new(),
            batches: BTreeMap::new(),
            queues: BTreeMap::new(),
            requests: BTreeMap::new(),
            leaders: Leaders::default(),
            partition_counts: BTreeMap::new(),
            metadata: None,
            next_metadata_at: Instant::ZERO,
            identity: None,
            init: None,
            next_init_at: Instant::ZERO,
            brokers,
            buffered_bytes: 0,
            retries: 0,
            sequence_resets: 0,
            auth,
            outputs: VecDeque::new(),
        })
    }

    /// Replaces the partitioner with one of the application's own.
    pub fn with_partitioner(mut self, partitioner: Box<dyn Partitioner>) -> Self {
        self.partitioner = partitioner;
        self
    }

    // ----- getters -----

    /// The settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Sends without an outcome yet.
    pub fn inflight(&self) -> usize {
        self.open_sends
    }

    /// Bytes of records waiting or in flight.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Produce requests sent again after an attempt failed, over the producer's life.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// Times a partition's sequences were reset under a new epoch.
    pub fn sequence_resets(&self) -> u64 {
        self.sequence_resets
    }

    /// The producer id granted to this producer, once it has one.
    pub fn producer_id(&self) -> Option<ProducerId> {
        self.identity.map(|(id, _)| id)
    }

    /// Every partition this producer has metadata for, with the leader it follows
    /// (`None` once forgotten) and the newest leader epoch it was told; the epoch
    /// never goes back (docs/invariants.md, `client_metadata_monotonic`).
    pub fn leader_epochs(&self) -> impl Iterator<Item = (&TopicPartition, Option<NodeId>, LeaderEpoch)> + '_ {
        self.leaders.iter()
    }

    /// The leader this producer believes leads `tp`, if any.
    pub fn leader(&self, tp: &TopicPartition) -> Option<NodeId> {
        self.leaders.get(tp)
    }

    /// A broker's refusal of the credentials (naming the app key), once one
    /// refused them: every send fails with it since.
    pub fn auth_error(&self) -> Option<&WireError> {
        self.auth.refused()
    }

    // ----- application mutators -----

    /// Sends `records` as one batch send to `topic`/`partition` with `acks` and the
    /// default deadline. Exactly one [`ProducerOutput::Done`] with the returned id
    /// follows, now or later.
    pub fn send(
        &mut self,
        now: Instant,
        topic: &str,
        partition: PartitionId,
        acks: Acks,
        records: Vec<Record>,
    ) -> Result<SendId, ProduceError> {
        self.submit(now, SendRequest::new(topic).partition(partition).acks(acks).records(records))
    }

    /// Queues one send. Exactly one [`ProducerOutput::Done`] with the returned id
    /// follows, now or later; a refused send has no outcome and took no room.
    pub fn submit(&mut self, now: Instant, request: SendRequest) -> Result<SendId, ProduceError> {
        self.advance(now);
        if request.records.is_empty() {
            return Err(ProduceError::EmptyBatch);
        }
        if self.open_sends >= self.config.max_inflight {
            return Err(ProduceError::Backpressure(self.open_sends));
        }
        let needed: usize = request.records.iter().map(Record::size_bytes).sum();
        let limit = self.config.buffer_max_bytes;
        if needed > limit {
            return Err(ProduceError::TooLarge { needed, limit });
        }
        if self.buffered_bytes + needed > limit {
            return Err(ProduceError::BufferFull { used: self.buffered_bytes, limit, needed });
        }
        let id = SendId(self.next_send);
        self.next_send += 1;
        if let Some(error) = self.auth.refused().cloned() {
            self.outputs.push_back(ProducerOutput::Done { id, outcome: ProduceOutcome::Failed { error } });
            return Ok(id);
        }
        self.open_sends += 1;
        self.buffered_bytes += needed;
        let give_up_at = self.now + request.timeout.unwrap_or(self.config.delivery_timeout);
        self.unrouted.push_back(Unrouted { id, request, bytes: needed, give_up_at });
        self.drive();
        Ok(id)
    }

    // ----- the contract -----

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.advance(now);
        if matches!(input, Input::Timeout) {
            self.auth.tick(self.now, &mut self.next_correlation, &mut self.outputs);
        }
        match input {
            Input::Message { from: Peer::Node(from), msg: Message::Response(resp) } => {
                let corr = resp.correlation;
                let (counter, outputs) = (&mut self.next_correlation, &mut self.outputs);
                if self.auth.on_response(self.now, from, corr, &resp.body, counter, outputs) != Routed::NotMine {
                    // An exchange answer, the gate's; `drive` ends the sends on a refusal.
                } else if self.metadata.is_some_and(|(c, b, _)| c == corr && b == from) {
                    self.metadata = None;
                    self.on_metadata(resp.body);
                } else if self.init.is_some_and(|(c, b, _)| c == corr && b == from) {
                    self.init = None;
                    self.on_init(resp.body);
                } else if let Some(bid) = self.requests.get(&corr).copied() {
                    let matches = self.batches.get(&bid).is_some_and(
                        |b| matches!(b.stage, Stage::InFlight { correlation, to, .. } if correlation == corr && to == from),
                    );
                    if matches {
                        self.requests.remove(&corr);
                        self.on_produce_reply(bid, resp.body);
                    }
                }
            }
            Input::Message { .. } => {} // not ours
            Input::Disconnected { peer: Peer::Node(peer) } => {
                self.auth.disconnected(peer);
                if self.metadata.is_some_and(|(_, b, _)| b == peer) {
                    self.metadata = None;
                }
                if self.init.is_some_and(|(_, b, _)| b == peer) {
                    self.init = None;
                }
                let lost: Vec<BatchId> = self
                    .batches
                    .iter()
                    .filter(|(_, b)| matches!(b.stage, Stage::InFlight { to, .. } if to == peer))
                    .map(|(id, _)| *id)
                    .collect();
                for bid in lost {
                    self.attempt_unknown(bid, format!("connection to broker {peer} closed before the reply"));
                }
            }
            Input::Timeout => {
                let now = self.now;
                if self.metadata.is_some_and(|(_, _, d)| d <= now) {
                    self.metadata = None;
                }
                if self.init.is_some_and(|(_, _, d)| d <= now) {
                    self.init = None;
                }
                let late: Vec<BatchId> = self
                    .batches
                    .iter()
                    .filter(|(_, b)| matches!(b.stage, Stage::InFlight { deadline, .. } if deadline <= now))
                    .map(|(id, _)| *id)
                    .collect();
                let timeout = self.config.request_timeout;
                for bid in late {
                    self.attempt_unknown(bid, format!("no reply within {timeout}"));
                }
            }
            Input::Connected { .. } | Input::Disconnected { .. } | Input::Persisted { .. } => {}
        }
        self.drive();
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<ProducerOutput> {
        self.outputs.pop_front()
    }

    /// When the producer next needs [`Input::Timeout`]: a request deadline, the
    /// end of a linger or a backoff, a metadata or producer-id request, or a
    /// send's deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = Instant::MAX;
        let mut wants_metadata = false;
        let mut wants_init = false;
        for u in &self.unrouted {
            t = t.min(u.give_up_at);
            wants_metadata |= !self.partition_counts.contains_key(&u.request.topic);
        }
        for (tp, q) in &self.queues {
            let mut inflight = 0;
            let mut head = None;
            for bid in &q.batches {
                let b = &self.batches[bid];
                match b.stage {
                    // The give-up time matters only between attempts: one in flight
                    // ends by its own deadline.
                    Stage::InFlight { deadline, .. } => {
                        t = t.min(deadline);
                        inflight += 1;
                    }
                    Stage::Waiting(_) => {
                        t = t.min(b.give_up_at);
                        head = head.or(Some(b));
                    }
                }
            }
            let Some(b) = head else { continue };
            match self.next_step(tp, q, b, inflight) {
                // A reply or a request deadline comes first (the gate's for `Auth`).
                Next::Blocked | Next::Auth(_) => {}
                Next::Identity => wants_init = true,
                Next::Leader => wants_metadata = true,
                Next::Leave { at, .. } => t = t.min(at),
            }
        }
        // A request out wakes at its deadline; one wanted, once it may be sent.
        let wake = |pending: Pending, wanted: bool, next_at: Instant| match pending {
            Some((_, _, deadline)) => deadline,
            None if wanted => next_at,
            None => Instant::MAX,
        };
        t = t.min(wake(self.metadata, wants_metadata, self.next_metadata_at));
        t = t.min(wake(self.init, wants_init, self.next_init_at));
        t = t.min(self.auth.poll_timeout().unwrap_or(Instant::MAX));
        (t != Instant::MAX).then_some(t)
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        self.auth.check_invariants();
        let members: usize = self.batches.values().map(|b| b.members.len()).sum();
        assert_eq!(self.open_sends, self.unrouted.len() + members, "sends without an outcome miscounted");
        assert!(self.open_sends <= self.config.max_inflight, "more sends without an outcome than allowed");
        let bytes: usize = self.unrouted.iter().map(|u| u.bytes).sum::<usize>()
            + self.batches.values().map(|b| b.bytes).sum::<usize>();
        assert_eq!(self.buffered_bytes, bytes, "buffered bytes miscounted");
        assert!(self.buffered_bytes <= self.config.buffer_max_bytes, "buffer over its limit");
        for (corr, bid) in &self.requests {
            let b = self.batches.get(bid).expect("a request belongs to a live batch");
            assert!(
                matches!(b.stage, Stage::InFlight { correlation, .. } if correlation == *corr),
                "request {corr} does not match its batch's stage"
            );
        }
        let inflight = self.batches.values().filter(|b| matches!(b.stage, Stage::InFlight { .. })).count();
        assert_eq!(inflight, self.requests.len(), "in-flight batches and requests disagree");
        let queued: usize = self.queues.values().map(|q| q.batches.len()).sum();
        assert_eq!(queued, self.batches.len(), "every batch sits in exactly one queue");
        for (tp, q) in &self.queues {
            let mut last: Option<ProducerStamp> = None;
            let mut prev_len = 0u32;
            let mut out = 0;
            for (i, bid) in q.batches.iter().enumerate() {
                let b = self.batches.get(bid).expect("a queued batch exists");
                assert_eq!(&b.tp, tp, "batch in the wrong queue");
                assert!(b.attempts <= self.config.max_attempts, "more attempts than allowed");
                assert!(i == 0 || q.batches[i - 1] < *bid, "queue out of creation order");
                assert!(!b.members.is_empty() && b.bytes > 0, "empty batch");
                if matches!(b.stage, Stage::InFlight { .. }) {
                    out += 1;
                    assert!(b.sealed, "an unsealed batch is in flight");
                }
                if let Some(s) = b.stamp {
                    assert!(b.sealed, "stamped before it left");
                    if let Some(l) =
                        last.filter(|l| l.producer_id == s.producer_id && l.producer_epoch == s.producer_epoch)
                    {
                        // Increasing in queue order; a batch that ended unacknowledged
                        // leaves a hole until the reset renumbers what can be renumbered.
                        let step = s.base_sequence.0.wrapping_sub(l.base_sequence.0);
                        assert!(step >= prev_len && step < 1 << 31, "sequences of {tp} go backwards");
                    }
                    last = Some(s);
                    prev_len = b.records.len() as u32;
                }
            }
            assert!(out <= self.config.max_inflight_per_partition, "too many batches out for {tp}");
        }
    }

    // ----- internals -----

    fn advance(&mut self, now: Instant) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
    }

    fn correlation(&mut self) -> CorrelationId {
        let c = CorrelationId(self.next_correlation);
        self.next_correlation += 1;
        c
    }

    /// True when `b` must be stamped before it leaves and nothing can stamp it yet.
    fn needs_identity(&self, b: &Batch, q: &PartitionQueue) -> bool {
        self.stamps(b) && b.stamp.is_none() && q.producer.is_none() && self.identity.is_none()
    }

    /// True when batches like `b` carry the idempotent stamp.
    fn stamps(&self, b: &Batch) -> bool {
        self.config.idempotence && b.acks == Acks::All
    }

    /// When `b` may leave, ignoring its partition's room: after its backoff, and
    /// after its linger unless it is full or has left before.
    fn ready_at(&self, b: &Batch) -> Instant {
        let Stage::Waiting(at) = b.stage else { return Instant::MAX };
        if b.sealed || b.bytes >= self.config.batch_max_bytes {
            at
        } else {
            at.max(b.created + self.config.linger)
        }
    }

    /// Routes sends, ends batches past their deadline, sends what may leave in
    /// partition order, and asks for metadata or a producer id when needed.
    fn drive(&mut self) {
        let now = self.now;
        if let Some(error) = self.auth.refused().cloned() {
            self.fail_all(&error);
            return;
        }
        let mut wants_metadata = self.route();
        let mut wants_init = false;
        let tps: Vec<TopicPartition> = self.queues.keys().cloned().collect();
        for tp in tps {
            let ids: Vec<BatchId> = self.queues[&tp].batches.iter().copied().collect();
            for bid in ids {
                let b = &self.batches[&bid];
                if matches!(b.stage, Stage::Waiting(_))
                    && (b.give_up_at <= now || b.attempts >= self.config.max_attempts)
                {
                    self.give_up(bid);
                }
            }
            let Some(q) = self.queues.get(&tp) else { continue };
            let mut inflight =
                q.batches.iter().filter(|b| matches!(self.batches[b].stage, Stage::InFlight { .. })).count();
            if q.needs_reset {
                if inflight > 0 {
                    continue; // reset once nothing of the old numbering is out
                }
                self.reset_sequences(&tp);
            }
            let ids: Vec<BatchId> = self.queues[&tp].batches.iter().copied().collect();
            for bid in ids {
                let b = &self.batches[&bid];
                if matches!(b.stage, Stage::InFlight { .. }) {
                    continue;
                }
                // The producer id and the leader are learnt meanwhile, so that the
                // batch can leave as soon as its linger or backoff ends.
                match self.next_step(&tp, &self.queues[&tp], b, inflight) {
                    Next::Leave { leader, at } if at <= now => {
                        self.send_attempt(bid, leader);
                        inflight += 1;
                    }
                    Next::Identity => {
                        wants_init = true;
                        break;
                    }
                    Next::Leader => {
                        wants_metadata = true;
                        break;
                    }
                    Next::Auth(leader) => {
                        self.auth.start(now, leader, &mut self.next_correlation, &mut self.outputs);
                        break;
                    }
                    Next::Leave { .. } | Next::Blocked => break,
                }
            }
        }
        if wants_metadata && self.metadata.is_none() && self.next_metadata_at <= now {
            self.metadata = Some(self.ask_any_broker(RequestBody::Metadata { topics: Vec::new() }));
            // Ask again soon but not in a tight loop if this broker knows nothing.
            self.next_metadata_at = now + jittered(&mut self.rng, self.config.retry_backoff);
        }
        if wants_init && self.init.is_none() && self.next_init_at <= now {
            self.init = Some(self.ask_any_broker(RequestBody::InitProducer));
            self.next_init_at = now + jittered(&mut self.rng, self.config.retry_backoff);
        }
    }

    /// Sends `body` to the next broker in rotation; returns what to wait for.
    fn ask_any_broker(&mut self, body: RequestBody) -> (CorrelationId, NodeId, Instant) {
        let broker = self.brokers.next();
        let correlation = self.correlation();
        let deadline = self.now + self.config.request_timeout;
        let request = Request { correlation, body };
        self.auth.send(self.now, broker, request, deadline, &mut self.next_correlation, &mut self.outputs);
        (correlation, broker, deadline)
    }

    /// The credentials were refused: every send not out ends with `error`
    /// (definitely failed, or indefinite if an earlier attempt may have appended
    /// it); batches out end by their answer or deadline, then likewise.
    fn fail_all(&mut self, error: &WireError) {
        while let Some(u) = self.unrouted.pop_front() {
            self.end_unrouted(u, ProduceOutcome::Failed { error: error.clone() });
        }
        let waiting: Vec<BatchId> =
            self.batches.iter().filter(|(_, b)| matches!(b.stage, Stage::Waiting(_))).map(|(id, _)| *id).collect();
        for bid in waiting {
            self.set_last_error(bid, error.clone());
            self.give_up(bid);
        }
    }

    /// What `b`, the first batch of `tp` not out, waits for while `inflight` of
    /// the partition's batches are out. `drive` acts on it; `poll_timeout` wakes
    /// for it.
    fn next_step(&self, tp: &TopicPartition, q: &PartitionQueue, b: &Batch, inflight: usize) -> Next {
        let full = inflight >= self.config.max_inflight_per_partition;
        if q.needs_reset || full || (b.after_earlier && inflight > 0) {
            Next::Blocked
        } else if self.needs_identity(b, q) {
            Next::Identity
        } else {
            match self.leader(tp) {
                None => Next::Leader,
                Some(leader) if !self.auth.is_ready(leader) => Next::Auth(leader),
                Some(leader) => Next::Leave { leader, at: self.ready_at(b) },
            }
        }
    }

    /// Places sends whose topic's partition count is known into batches; ends those
    /// past their deadline. True if some send still waits for metadata.
    fn route(&mut self) -> bool {
        let now = self.now;
        let mut waiting = VecDeque::new();
        while let Some(u) = self.unrouted.pop_front() {
            let topic = u.request.topic.clone();
            let Some(&count) = self.partition_counts.get(&topic) else {
                if u.give_up_at <= now {
                    let error = WireError::new(
                        ErrorCode::UnknownTopic,
                        format!("no broker knew topic {topic} before the send's deadline; nothing was sent"),
                    );
                    self.end_unrouted(u, ProduceOutcome::Failed { error });
                } else {
                    waiting.push_back(u);
                }
                continue;
            };
            let key = u.request.records[0].key.clone();
            let explicit = u.request.partition;
            match choose_partition(self.partitioner.as_mut(), &topic, explicit, key.as_deref(), count) {
                Ok(partition) => self.place(u, TopicPartition { topic, partition }),
                Err(e) => {
                    let code = match e {
                        PartitionError::UnknownPartition { .. } | PartitionError::NoPartitions { .. } => {
                            ErrorCode::UnknownPartition
                        }
                        _ => ErrorCode::InvalidRequest,
                    };
                    let error = WireError::new(code, format!("{e}; nothing was sent"));
                    self.end_unrouted(u, ProduceOutcome::Failed { error });
                }
            }
        }
        let wants = !waiting.is_empty();
        self.unrouted = waiting;
        wants
    }

    fn end_unrouted(&mut self, u: Unrouted, outcome: ProduceOutcome) {
        self.open_sends -= 1;
        self.buffered_bytes -= u.bytes;
        self.outputs.push_back(ProducerOutput::Done { id: u.id, outcome });
    }

    /// Adds a routed send to its partition's open batch, or opens one.
    fn place(&mut self, u: Unrouted, tp: TopicPartition) {
        let max = self.config.batch_max_bytes;
        let q = self.queues.entry(tp.clone()).or_default();
        let member = Member { id: u.id, records: u.request.records.len() as u32 };
        if let Some(b) = q.batches.back().and_then(|bid| self.batches.get_mut(bid)) {
            if !b.sealed && b.acks == u.request.acks && b.bytes + u.bytes <= max {
                b.records.extend(u.request.records);
                b.members.push(member);
                b.bytes += u.bytes;
                b.give_up_at = b.give_up_at.min(u.give_up_at);
                return;
            }
        }
        let bid = BatchId(self.next_batch);
        self.next_batch += 1;
        q.batches.push_back(bid);
        let batch = Batch {
            tp,
            acks: u.request.acks,
            records: u.request.records,
            members: vec![member],
            bytes: u.bytes,
            created: self.now,
            give_up_at: u.give_up_at,
            sealed: false,
            stamp: None,
            attempts: 0,
            indefinite: None,
            last_error: None,
            after_earlier: false,
            stage: Stage::Waiting(self.now),
        };
        self.batches.insert(bid, batch);
    }

    fn send_attempt(&mut self, bid: BatchId, leader: NodeId) {
        let correlation = self.correlation();
        let deadline = self.now + self.config.request_timeout;
        let stamps = self.batches.get(&bid).is_some_and(|b| self.stamps(b));
        let Some(b) = self.batches.get_mut(&bid) else { return };
        b.sealed = true;
        b.after_earlier = false;
        if stamps && b.stamp.is_none() {
            let q = self.queues.get_mut(&b.tp).expect("a batch's queue exists");
            let (producer_id, producer_epoch) = *q.producer.get_or_insert_with(|| {
                q.next_seq = Sequence(0);
                self.identity.expect("stamped only with an identity")
            });
            b.stamp = Some(ProducerStamp { producer_id, producer_epoch, base_sequence: q.next_seq });
            q.next_seq = q.next_seq.plus(b.records.len() as u32);
        }
        if b.attempts > 0 {
            self.retries += 1;
        }
        b.attempts += 1;
        let batch = RecordBatch { producer: b.stamp, ..RecordBatch::new(b.records.clone()) };
        let body = RequestBody::Produce { topic: b.tp.topic.clone(), partition: b.tp.partition, acks: b.acks, batch };
        self.outputs.push_back(ProducerOutput::Send {
            to: Peer::Node(leader),
            msg: Message::Request(Request { correlation, body }),
        });
        if b.acks == Acks::None {
            let reason = "acks=0: the broker never confirms".to_owned();
            self.finish(bid, |_| ProduceOutcome::Indefinite { reason: reason.clone() });
        } else {
            b.stage = Stage::InFlight { correlation, to: leader, deadline };
            self.requests.insert(correlation, bid);
        }
    }

    fn on_metadata(&mut self, body: Result<ResponseBody, WireError>) {
        let Ok(ResponseBody::Metadata { topics, .. }) = body else { return };
        for t in &topics {
            self.partition_counts.insert(t.config.name.clone(), t.config.partitions);
        }
        self.leaders.apply(&topics);
    }

    fn on_init(&mut self, body: Result<ResponseBody, WireError>) {
        // Anything else is retried after `next_init_at`, set when the request left.
        if let Ok(ResponseBody::ProducerId { producer_id, producer_epoch }) = body {
            self.identity = Some((producer_id, producer_epoch));
        }
    }

    fn on_produce_reply(&mut self, bid: BatchId, body: Result<ResponseBody, WireError>) {
        match body {
            Ok(ResponseBody::Produced { partition, base_offset, .. }) => {
                let mut offset = base_offset;
                self.finish(bid, |m| {
                    let outcome = ProduceOutcome::Ok { partition, base_offset: offset };
                    // Saturating: a broker's answer near u64::MAX must not overflow here
                    // (found by the producer fuzz target); honest offsets never get there.
                    offset = Offset(offset.0.saturating_add(u64::from(m.records)));
                    outcome
                });
            }
            Ok(other) => {
                let reason = format!("unexpected reply {other:?}");
                self.mark_indefinite(bid, reason.clone());
                self.finish(bid, |_| ProduceOutcome::Indefinite { reason: reason.clone() });
            }
            Err(error) if error.code.is_indefinite() => self.attempt_unknown(bid, error.to_string()),
            Err(error) if error.code == ErrorCode::TopicDeleted => {
                self.mark_indefinite(bid, error.to_string());
                self.give_up(bid);
            }
            Err(error) if matches!(error.code, ErrorCode::OutOfOrderSequence | ErrorCode::UnknownProducerId) => {
                self.on_out_of_order(bid, error)
            }
            Err(error) if error.code == ErrorCode::ProducerFenced => {
                // Only a newer epoch of this producer id fences it, and the producer
                // bumps epochs only once nothing older is out: a late attempt.
                self.set_last_error(bid, error);
                self.give_up(bid);
            }
            Err(error) => {
                // `Unauthenticated` with credentials: the leader restarted and forgot
                // this connection; the gate runs the exchange again first.
                let retriable = error.code.is_retriable()
                    || error.code == ErrorCode::UnknownTopic
                    || self.auth.reauthenticates(error.code);
                if error.code.means_stale_leader() {
                    self.forget_leader(bid);
                }
                self.set_last_error(bid, error);
                if retriable {
                    self.retry_later(bid);
                } else {
                    self.give_up(bid);
                }
            }
        }
    }

    /// The leader expects another sequence (`OutOfOrderSequence`), or has no
    /// state for this producer id and wants sequence 0 (`UnknownProducerId`). With
    /// an earlier batch of the partition still unresolved, this one simply goes
    /// after it (the attempt does not count). Otherwise the numbering itself is
    /// off, or the leader's state for it is gone: reset it under a new epoch
    /// (KIP-360), unless this batch may already be in the log, where a copy under
    /// a new stamp could be a duplicate: then it ends indefinite.
    fn on_out_of_order(&mut self, bid: BatchId, error: WireError) {
        let Some(b) = self.batches.get(&bid) else { return };
        let tp = b.tp.clone();
        let stamp = b.stamp;
        let q = &self.queues[&tp];
        let earlier = q
            .batches
            .iter()
            .take_while(|x| **x != bid)
            .any(|x| self.batches[x].stamp.zip(stamp).is_some_and(|(a, s)| same_numbering(&a, &s)));
        let possibly_appended = b.indefinite.is_some();
        // A later batch of the same numbering is already written, yet the leader
        // wants this one renumbered (a leader that forgot the producer's state
        // would have to take the later one first). Written now, this batch would
        // land after it: fail it instead (Kafka's producer keeps retrying such a
        // batch until its delivery timeout, with the same end).
        let overtaken = !earlier
            && q.last_acked
                .zip(stamp)
                .is_some_and(|(a, s)| same_numbering(&a, &s) && a.base_sequence > s.base_sequence);
        let error = if overtaken {
            WireError::new(
                ErrorCode::OutOfOrderSequence,
                format!(
                    "a later send to {tp} is already written, so this one can no longer be written in order: {}",
                    error.message
                ),
            )
        } else {
            error
        };
        self.set_last_error(bid, error);
        if earlier {
            if let Some(b) = self.batches.get_mut(&bid) {
                b.attempts -= 1;
                b.after_earlier = true;
                b.stage = Stage::Waiting(self.now);
            }
        } else if overtaken || possibly_appended {
            self.give_up(bid);
        } else {
            if let Some(q) = self.queues.get_mut(&tp) {
                q.needs_reset = true;
            }
            self.retry_later(bid);
        }
    }

    /// A new epoch for `tp`'s stamps, and fresh sequences from 0 for every batch
    /// that cannot be in the log under its old stamp. Called with nothing of the
    /// partition in flight.
    fn reset_sequences(&mut self, tp: &TopicPartition) {
        let Some(q) = self.queues.get_mut(tp) else { return };
        q.needs_reset = false;
        self.sequence_resets += 1;
        match q.producer {
            Some((id, epoch)) if epoch.0 < u16::MAX => q.producer = Some((id, ProducerEpoch(epoch.0 + 1))),
            // Epochs exhausted: the next stamp takes the producer's current identity.
            _ => q.producer = None,
        }
        q.next_seq = Sequence(0);
        let ids: Vec<BatchId> = q.batches.iter().copied().collect();
        for bid in ids {
            let Some(b) = self.batches.get_mut(&bid) else { continue };
            if b.stamp.is_some() && b.indefinite.is_none() {
                b.stamp = None; // stamped again, in queue order, when it next leaves
            }
        }
    }

    /// An attempt whose effect is unknown: remember that, and retry.
    fn attempt_unknown(&mut self, bid: BatchId, reason: String) {
        if let Some(Stage::InFlight { correlation, .. }) = self.batches.get(&bid).map(|b| b.stage.clone()) {
            self.requests.remove(&correlation);
        }
        self.mark_indefinite(bid, reason);
        self.forget_leader(bid);
        self.retry_later(bid);
    }

    fn mark_indefinite(&mut self, bid: BatchId, reason: String) {
        if let Some(b) = self.batches.get_mut(&bid) {
            b.indefinite.get_or_insert(reason);
        }
    }

    fn set_last_error(&mut self, bid: BatchId, error: WireError) {
        if let Some(b) = self.batches.get_mut(&bid) {
            b.last_error = Some(error);
        }
    }

    fn forget_leader(&mut self, bid: BatchId) {
        let Some(b) = self.batches.get(&bid) else { return };
        let bad = match b.stage {
            Stage::InFlight { to, .. } => Some(to),
            Stage::Waiting(_) => None,
        };
        self.leaders.forget(&b.tp, bad);
    }

    fn retry_later(&mut self, bid: BatchId) {
        let Some(attempts) = self.batches.get(&bid).map(|b| b.attempts) else { return };
        let wait = backoff(&mut self.rng, self.config.retry_backoff, self.config.retry_backoff_max, attempts);
        let at = self.now + wait;
        if let Some(b) = self.batches.get_mut(&bid) {
            b.stage = Stage::Waiting(at);
        }
    }

    /// No more attempts: indefinite if any attempt may have appended, else failed.
    fn give_up(&mut self, bid: BatchId) {
        let Some(b) = self.batches.get(&bid) else { return };
        let outcome = match (&b.indefinite, &b.last_error) {
            (Some(reason), _) => {
                ProduceOutcome::Indefinite { reason: format!("{reason}; gave up after {} attempt(s)", b.attempts) }
            }
            (None, Some(error)) => ProduceOutcome::Failed { error: error.clone() },
            (None, None) => ProduceOutcome::Failed {
                error: WireError::new(
                    ErrorCode::NotLeader,
                    format!("no leader of {} found before the send's deadline; nothing was sent", b.tp),
                ),
            },
        };
        self.finish(bid, |_| outcome.clone());
    }

    /// Ends a batch: one outcome per member send, in order.
    fn finish(&mut self, bid: BatchId, mut outcome: impl FnMut(&Member) -> ProduceOutcome) {
        let Some(b) = self.batches.remove(&bid) else { return };
        if let Stage::InFlight { correlation, .. } = b.stage {
            self.requests.remove(&correlation);
        }
        let q = self.queues.get_mut(&b.tp).expect("a batch's queue exists");
        q.batches.retain(|x| *x != bid);
        self.buffered_bytes -= b.bytes;
        self.open_sends -= b.members.len();
        let mut acked = true;
        for m in &b.members {
            let outcome = outcome(m);
            acked = matches!(outcome, ProduceOutcome::Ok { .. });
            self.outputs.push_back(ProducerOutput::Done { id: m.id, outcome });
        }
        if b.stamp.is_some() && !acked {
            // The numbering after it has a hole, or an unknown: start afresh.
            q.needs_reset = true;
        }
        if let Some(s) = b.stamp.filter(|_| acked) {
            let newer = q.last_acked.is_none_or(|a| !same_numbering(&a, &s) || a.base_sequence < s.base_sequence);
            if newer {
                q.last_acked = Some(s);
            }
        }
    }
}

/// Whether two stamps belong to one numbering: the same producer id and epoch.
fn same_numbering(a: &ProducerStamp, b: &ProducerStamp) -> bool {
    (a.producer_id, a.producer_epoch) == (b.producer_id, b.producer_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::auth::scripted::AuthBroker;
    use crate::ids::LeaderEpoch;
    use crate::wire::{PartitionInfo, Response, TopicConfig, TopicInfo};

    #[test]
    fn a_delivery_timeout_shorter_than_one_attempt_is_refused() {
        let c = ProducerConfig::default()
            .request_timeout(Duration::from_millis(500))
            .linger(Duration::from_millis(5))
            .delivery_timeout(Duration::from_millis(504));
        let err = c.validate().unwrap_err();
        assert!(matches!(err, ProducerConfigError::Invalid { setting: "delivery_timeout", .. }), "{err:?}");
        assert_eq!(c.delivery_timeout(Duration::from_millis(505)).validate(), Ok(()));
    }

    fn outputs(p: &mut Producer) -> Vec<ProducerOutput> {
        std::iter::from_fn(|| p.poll_output()).collect()
    }

    fn requests(outs: &[ProducerOutput]) -> Vec<(NodeId, CorrelationId, RequestBody)> {
        outs.iter()
            .filter_map(|o| match o {
                ProducerOutput::Send { to: Peer::Node(n), msg: Message::Request(r) } => {
                    Some((*n, r.correlation, r.body.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn request_of(outs: &[ProducerOutput]) -> (NodeId, CorrelationId, RequestBody) {
        requests(outs).into_iter().next().expect("a request")
    }

    fn done(outs: &[ProducerOutput]) -> Vec<(SendId, ProduceOutcome)> {
        outs.iter()
            .filter_map(|o| match o {
                ProducerOutput::Done { id, outcome } => Some((*id, outcome.clone())),
                _ => None,
            })
            .collect()
    }

    fn reply(from: NodeId, corr: CorrelationId, body: Result<ResponseBody, WireError>) -> Input {
        Input::Message { from: Peer::Node(from), msg: Message::Response(Response { correlation: corr, body }) }
    }

    fn metadata_n(leader: u32, epoch: u32, partitions: u32) -> Result<ResponseBody, WireError> {
        let infos = (0..partitions)
            .map(|p| PartitionInfo {
                partition: PartitionId(p),
                leader: Some(NodeId(leader)),
                leader_epoch: LeaderEpoch(epoch),
                replicas: vec![NodeId(1), NodeId(2)],
                isr: vec![NodeId(1), NodeId(2)],
                log_start: Offset(0),
                high_watermark: Offset(0),
            })
            .collect();
        Ok(ResponseBody::Metadata {
            brokers: vec![NodeId(1), NodeId(2)],
            controller: Some(NodeId(1)),
            topics: vec![TopicInfo { config: TopicConfig::new("t", partitions), partitions: infos }],
        })
    }

    fn metadata(leader: u32, epoch: u32) -> Result<ResponseBody, WireError> {
        metadata_n(leader, epoch, 1)
    }

    fn produced(base: u64) -> Result<ResponseBody, WireError> {
        Ok(ResponseBody::Produced { partition: PartitionId(0), base_offset: Offset(base), append_time_ms: 0 })
    }

    fn two_brokers() -> Producer {
        Producer::new(ProducerConfig::new([NodeId(1), NodeId(2)]), 7).unwrap()
    }

    /// Answers metadata (leader `leader`, one partition) and producer-id requests
    /// among `outs`; returns the produce requests.
    fn serve(p: &mut Producer, now: Instant, leader: u32) -> Vec<(NodeId, CorrelationId, RecordBatch)> {
        let mut produce = Vec::new();
        let mut outs = outputs(p);
        loop {
            let mut answered = false;
            for (to, corr, body) in requests(&outs) {
                match body {
                    RequestBody::Metadata { .. } => {
                        p.handle(now, reply(to, corr, metadata(leader, 1)));
                        answered = true;
                    }
                    RequestBody::InitProducer => {
                        let id = Ok(ResponseBody::ProducerId {
                            producer_id: ProducerId(42),
                            producer_epoch: ProducerEpoch(0),
                        });
                        p.handle(now, reply(to, corr, id));
                        answered = true;
                    }
                    RequestBody::Produce { batch, .. } => produce.push((to, corr, batch)),
                    other => panic!("unexpected request {other:?}"),
                }
            }
            if !answered {
                return produce;
            }
            outs = outputs(p);
        }
    }

    /// Sends one record to t/0 and answers metadata (and the producer id) so that
    /// the produce request goes to `leader`.
    fn send_to_leader(p: &mut Producer, acks: Acks, leader: u32) -> (SendId, CorrelationId) {
        let id = p.send(Instant::ZERO, "t", PartitionId(0), acks, vec![Record::from_value("a")]).unwrap();
        let produce = serve(p, Instant::ZERO, leader);
        assert_eq!(produce.len(), 1, "one produce request");
        assert_eq!(produce[0].0, NodeId(leader));
        (id, produce[0].1)
    }

    /// Fires timeouts until `p` has nothing scheduled before `until`.
    fn run_until(p: &mut Producer, mut now: Instant, until: Instant) -> Vec<ProducerOutput> {
        let mut all = Vec::new();
        while let Some(t) = p.poll_timeout().filter(|t| *t <= until) {
            now = t.max(now);
            p.handle(now, Input::Timeout);
            all.extend(outputs(p));
        }
        all
    }

    #[test]
    fn a_send_asks_metadata_then_goes_to_the_leader_and_acks_once() {
        let mut p = two_brokers();
        let (id, corr) = send_to_leader(&mut p, Acks::All, 2);
        p.handle(Instant::ZERO, reply(NodeId(2), corr, produced(7)));
        p.handle(Instant::ZERO, reply(NodeId(2), corr, produced(7)));
        assert_eq!(
            done(&outputs(&mut p)),
            vec![(id, ProduceOutcome::Ok { partition: PartitionId(0), base_offset: Offset(7) })]
        );
        assert_eq!(p.inflight(), 0);
        assert_eq!(p.buffered_bytes(), 0);
    }

    #[test]
    fn a_base_offset_at_the_end_of_the_range_is_reported_without_overflow() {
        let mut p = two_brokers();
        let (id, corr) = send_to_leader(&mut p, Acks::All, 2);
        p.handle(Instant::ZERO, reply(NodeId(2), corr, produced(u64::MAX)));
        assert_eq!(
            done(&outputs(&mut p)),
            vec![(id, ProduceOutcome::Ok { partition: PartitionId(0), base_offset: Offset(u64::MAX) })]
        );
    }

    #[test]
    fn not_leader_refreshes_metadata_and_retries_the_new_leader() {
        let mut p = two_brokers();
        let (_, corr) = send_to_leader(&mut p, Acks::All, 1);
        p.handle(Instant::ZERO, reply(NodeId(1), corr, Err(WireError::new(ErrorCode::NotLeader, "moved"))));
        assert_eq!(p.leader(&TopicPartition::new("t", 0)), None);
        let t = p.poll_timeout().unwrap();
        p.handle(t, Input::Timeout);
        let (to, corr, body) = request_of(&outputs(&mut p));
        assert!(matches!(body, RequestBody::Metadata { .. }));
        p.handle(t, reply(to, corr, metadata(2, 2)));
        let t = p.poll_timeout().unwrap().max(t);
        p.handle(t, Input::Timeout);
        let (to, _, body) = request_of(&outputs(&mut p));
        assert_eq!(to, NodeId(2));
        assert!(matches!(body, RequestBody::Produce { .. }));
        assert_eq!(p.retries(), 1);
    }

    #[test]
    fn refused_on_every_attempt_is_definite_but_one_timeout_keeps_it_indefinite() {
        let cfg = ProducerConfig::default().max_attempts(2);
        let mut p = Producer::new(cfg.clone(), 1).unwrap();
        let (_, corr) = send_to_leader(&mut p, Acks::All, 1);
        let refuse = || Err(WireError::new(ErrorCode::NotEnoughReplicas, "isr too small"));
        p.handle(Instant::ZERO, reply(NodeId(1), corr, refuse()));
        let t = p.poll_timeout().unwrap();
        p.handle(t, Input::Timeout);
        let (_, corr, _) = request_of(&outputs(&mut p));
        p.handle(t, reply(NodeId(1), corr, refuse()));
        assert!(matches!(done(&outputs(&mut p)).as_slice(), [(_, ProduceOutcome::Failed { .. })]));

        let mut p = Producer::new(cfg, 1).unwrap();
        let (_, _) = send_to_leader(&mut p, Acks::All, 1);
        let t = p.poll_timeout().unwrap();
        p.handle(t, Input::Timeout); // the first attempt's deadline: unknown effect
        let mut t = t;
        loop {
            let outs = outputs(&mut p);
            if let Some((_, outcome)) = done(&outs).first() {
                assert!(matches!(outcome, ProduceOutcome::Indefinite { .. }), "{outcome:?}");
                break;
            }
            for (n, corr, body) in requests(&outs) {
                let body = match body {
                    RequestBody::Metadata { .. } => metadata(1, 1),
                    _ => refuse(),
                };
                p.handle(t, reply(n, corr, body));
            }
            if let Some(next) = p.poll_timeout() {
                t = next.max(t);
                p.handle(t, Input::Timeout);
            }
        }
    }

    #[test]
    fn acks_zero_is_indefinite_once_sent_and_sends_are_bounded() {
        let cfg = ProducerConfig::default().max_inflight(1);
        let mut p = Producer::new(cfg, 3).unwrap();
        let id = p.send(Instant::ZERO, "t", PartitionId(0), Acks::None, vec![Record::from_value("a")]).unwrap();
        let err = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]);
        assert_eq!(err, Err(ProduceError::Backpressure(1)));
        let (to, corr, _) = request_of(&outputs(&mut p));
        p.handle(Instant::ZERO, reply(to, corr, metadata(1, 1)));
        let outs = outputs(&mut p);
        let reqs = requests(&outs);
        assert!(
            matches!(reqs.as_slice(), [(_, _, RequestBody::Produce { batch, .. })] if batch.producer.is_none()),
            "acks=0 batches carry no idempotent stamp: {reqs:?}"
        );
        assert!(matches!(done(&outs).as_slice(), [(i, ProduceOutcome::Indefinite { .. })] if *i == id));
        assert_eq!(p.inflight(), 0);
    }

    #[test]
    fn older_leader_epochs_never_replace_newer_ones() {
        let mut p = two_brokers();
        let _ = send_to_leader(&mut p, Acks::All, 2);
        p.on_metadata(metadata(1, 0));
        assert_eq!(p.leader(&TopicPartition::new("t", 0)), Some(NodeId(2)));
    }

    #[test]
    fn sends_made_while_a_batch_is_out_pack_into_one_batch_with_their_own_offsets() {
        let cfg = ProducerConfig::default().max_inflight_per_partition(1);
        let mut p = Producer::new(cfg, 1).unwrap();
        let (first, corr) = send_to_leader(&mut p, Acks::All, 1);
        let a = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]).unwrap();
        let records = vec![Record::from_value("c"), Record::from_value("d")];
        let b = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, records).unwrap();
        assert!(requests(&outputs(&mut p)).is_empty(), "the partition's one slot is taken");
        p.handle(Instant::ZERO, reply(NodeId(1), corr, produced(0)));
        let outs = outputs(&mut p);
        assert_eq!(
            done(&outs),
            vec![(first, ProduceOutcome::Ok { partition: PartitionId(0), base_offset: Offset(0) })]
        );
        let reqs = requests(&outs);
        let [(_, corr, RequestBody::Produce { batch, .. })] = reqs.as_slice() else { panic!("one batch: {reqs:?}") };
        assert_eq!(batch.len(), 3);
        let stamp = batch.producer.expect("stamped");
        assert_eq!(stamp.base_sequence, Sequence(1), "sequences continue over batches");
        p.handle(Instant::ZERO, reply(NodeId(1), *corr, produced(1)));
        assert_eq!(
            done(&outputs(&mut p)),
            vec![
                (a, ProduceOutcome::Ok { partition: PartitionId(0), base_offset: Offset(1) }),
                (b, ProduceOutcome::Ok { partition: PartitionId(0), base_offset: Offset(2) }),
            ]
        );
    }

    #[test]
    fn linger_holds_a_batch_until_it_is_full_or_the_linger_ends() {
        let one = Record::from_value(vec![0u8; 100]).size_bytes();
        let cfg =
            ProducerConfig::default().linger(Duration::from_millis(5)).batch_max_bytes(one * 3).idempotence(false);
        let mut p = Producer::new(cfg, 1).unwrap();
        let send = |p: &mut Producer, now| {
            p.send(now, "t", PartitionId(0), Acks::Leader, vec![Record::from_value(vec![0u8; 100])]).unwrap()
        };
        send(&mut p, Instant::ZERO);
        assert!(serve(&mut p, Instant::ZERO, 1).is_empty(), "lingering");
        assert_eq!(p.poll_timeout(), Some(Instant::ZERO + Duration::from_millis(5)));
        send(&mut p, Instant::ZERO + Duration::from_millis(1));
        send(&mut p, Instant::ZERO + Duration::from_millis(2));
        let reqs = requests(&outputs(&mut p));
        assert!(
            matches!(reqs.as_slice(), [(_, _, RequestBody::Produce { batch, .. })] if batch.len() == 3),
            "a full batch leaves before its linger ends: {reqs:?}"
        );
        send(&mut p, Instant::ZERO + Duration::from_millis(3));
        let outs =
            run_until(&mut p, Instant::ZERO + Duration::from_millis(3), Instant::ZERO + Duration::from_millis(8));
        let reqs = requests(&outs);
        assert!(matches!(reqs.as_slice(), [(_, _, RequestBody::Produce { batch, .. })] if batch.len() == 1));
    }

    #[test]
    fn a_full_buffer_refuses_with_backpressure_and_frees_on_outcomes() {
        let one = Record::from_value(vec![0u8; 1000]).size_bytes();
        let cfg = ProducerConfig::default().batch_max_bytes(one).buffer_max_bytes(one * 2);
        let mut p = Producer::new(cfg, 1).unwrap();
        let big = || vec![Record::from_value(vec![0u8; 1000])];
        let (first, corr) = {
            let id = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, big()).unwrap();
            let produce = serve(&mut p, Instant::ZERO, 1);
            (id, produce[0].1)
        };
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, big()).unwrap();
        let err = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, big()).unwrap_err();
        assert_eq!(err, ProduceError::BufferFull { used: one * 2, limit: one * 2, needed: one });
        let huge = vec![Record::from_value(vec![0u8; 3000])];
        assert!(matches!(
            p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, huge),
            Err(ProduceError::TooLarge { .. })
        ));
        p.handle(Instant::ZERO, reply(NodeId(1), corr, produced(0)));
        assert_eq!(done(&outputs(&mut p))[0].0, first);
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, big()).expect("room again");
    }

    #[test]
    fn a_retry_keeps_its_stamp_and_holds_back_the_batches_after_it() {
        let mut p = two_brokers();
        let (_, c0) = send_to_leader(&mut p, Acks::All, 1);
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]).unwrap();
        let reqs = requests(&outputs(&mut p));
        let [(_, c1, RequestBody::Produce { batch: b1, .. })] = reqs.as_slice() else { panic!("{reqs:?}") };
        assert_eq!(b1.producer.unwrap().base_sequence, Sequence(1));
        // The first batch is lost (timeout); the second arrives out of order.
        p.handle(Instant::ZERO, reply(NodeId(1), *c1, Err(WireError::new(ErrorCode::OutOfOrderSequence, "want 0"))));
        let t = Instant::ZERO + p.config().request_timeout;
        p.handle(t, Input::Timeout);
        assert!(p.batches.values().all(|b| b.attempts <= 1), "the out-of-order attempt does not count");
        let mut now = t;
        let mut seqs = Vec::new();
        while seqs.len() < 2 {
            for (to, corr, batch) in serve(&mut p, now, 1) {
                seqs.push(batch.producer.unwrap().base_sequence);
                if seqs.len() == 1 {
                    // Batch 1 stays back until batch 0 is resolved.
                    assert!(p.poll_timeout().is_none_or(|d| d >= now + p.config().request_timeout));
                    p.handle(now, reply(to, corr, produced(0)));
                }
            }
            now = p.poll_timeout().expect("a retry is due").max(now);
            p.handle(now, Input::Timeout);
        }
        assert_eq!(seqs, [Sequence(0), Sequence(1)], "resent in sequence order with the same stamps");
        let _ = c0;
    }

    /// Found by the simulator (seed 652 at 9ca0707): a one-broker cluster restarted
    /// with retention past the producer's records, so the leader had forgotten the
    /// producer; the network delayed batch 0, batch 1 reached the leader first and
    /// was taken at its sequence (leaders then accepted an unknown producer id at
    /// any sequence once the log had lost records; they no longer do), then batch
    /// 0 was refused as out of order. Renumbering and resending it put it after
    /// batch 1 in the log.
    #[test]
    fn a_batch_overtaken_by_an_acknowledged_later_one_fails_instead_of_landing_after_it() {
        let mut p = two_brokers();
        let (first, c0) = send_to_leader(&mut p, Acks::All, 1);
        let second = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]).unwrap();
        let reqs = requests(&outputs(&mut p));
        let [(_, c1, RequestBody::Produce { batch: b1, .. })] = reqs.as_slice() else { panic!("{reqs:?}") };
        assert_eq!(b1.producer.unwrap().base_sequence, Sequence(1));
        p.handle(Instant::ZERO, reply(NodeId(1), *c1, produced(5)));
        assert!(matches!(done(&outputs(&mut p)).as_slice(), [(i, ProduceOutcome::Ok { .. })] if *i == second));
        p.handle(Instant::ZERO, reply(NodeId(1), c0, Err(WireError::new(ErrorCode::OutOfOrderSequence, "want 2"))));
        let outs = outputs(&mut p);
        let ended = done(&outs);
        let [(id, ProduceOutcome::Failed { error })] = ended.as_slice() else { panic!("{outs:?}") };
        assert_eq!(*id, first);
        assert_eq!(error.code, ErrorCode::OutOfOrderSequence);
        assert!(error.message.contains("can no longer be written in order"), "{error}");
        assert!(requests(&outs).is_empty(), "not resent: {outs:?}");
        // The partition's later sends start a fresh numbering.
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("c")]).unwrap();
        let reqs = requests(&outputs(&mut p));
        let [(_, _, RequestBody::Produce { batch, .. })] = reqs.as_slice() else { panic!("{reqs:?}") };
        let stamp = batch.producer.unwrap();
        assert_eq!((stamp.producer_epoch, stamp.base_sequence), (ProducerEpoch(1), Sequence(0)));
    }

    #[test]
    fn a_batch_that_ends_unacknowledged_resets_the_partition_under_a_new_epoch() {
        let cfg = ProducerConfig::default().max_attempts(1);
        let mut p = Producer::new(cfg, 1).unwrap();
        let (_, c0) = send_to_leader(&mut p, Acks::All, 1);
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]).unwrap();
        let reqs = requests(&outputs(&mut p));
        let [(_, c1, _)] = reqs.as_slice() else { panic!("{reqs:?}") };
        p.handle(Instant::ZERO, reply(NodeId(1), c0, Err(WireError::new(ErrorCode::NotEnoughReplicas, "small isr"))));
        assert!(matches!(done(&outputs(&mut p)).as_slice(), [(_, ProduceOutcome::Failed { .. })]));
        // Nothing is renumbered while the second batch is out under the old numbering.
        p.handle(Instant::ZERO, reply(NodeId(1), *c1, Err(WireError::new(ErrorCode::OutOfOrderSequence, "want 0"))));
        let outs = outputs(&mut p);
        // max_attempts 1: the refused attempt used it up, nothing was appended.
        assert!(matches!(done(&outs).as_slice(), [(_, ProduceOutcome::Failed { .. })]), "{outs:?}");
        let id = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("c")]).unwrap();
        let reqs = requests(&outputs(&mut p));
        let [(_, c2, RequestBody::Produce { batch, .. })] = reqs.as_slice() else { panic!("{reqs:?}") };
        let stamp = batch.producer.unwrap();
        assert_eq!((stamp.producer_epoch, stamp.base_sequence), (ProducerEpoch(1), Sequence(0)));
        assert!(p.sequence_resets() >= 1);
        p.handle(Instant::ZERO, reply(NodeId(1), *c2, produced(0)));
        assert!(matches!(done(&outputs(&mut p)).as_slice(), [(i, ProduceOutcome::Ok { .. })] if *i == id));
    }

    /// KIP-360: a leader without state for the producer (retention or a reset
    /// removed it) refuses a batch not at sequence 0. With nothing earlier out, the
    /// producer starts a new epoch at 0 and sends the batch again; a batch that may
    /// already be in the log is not sent again under a new stamp (it could be
    /// written twice) and ends indefinite.
    #[test]
    fn an_unknown_producer_id_starts_a_new_epoch_unless_the_batch_may_be_in_the_log() {
        let mut p = two_brokers();
        let (first, c0) = send_to_leader(&mut p, Acks::All, 1);
        p.handle(Instant::ZERO, reply(NodeId(1), c0, produced(0)));
        assert!(matches!(done(&outputs(&mut p)).as_slice(), [(i, ProduceOutcome::Ok { .. })] if *i == first));
        let second = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]).unwrap();
        let reqs = requests(&outputs(&mut p));
        let [(_, c1, RequestBody::Produce { batch, .. })] = reqs.as_slice() else { panic!("{reqs:?}") };
        assert_eq!(batch.producer.unwrap().base_sequence, Sequence(1));
        let unknown = || Err(WireError::new(ErrorCode::UnknownProducerId, "no state; start at 0"));
        // Fires timeouts (answering metadata) until the next produce request leaves.
        let next_produce = |p: &mut Producer, mut now: Instant| loop {
            now = p.poll_timeout().expect("something is due").max(now);
            p.handle(now, Input::Timeout);
            if let [(_, c, b)] = serve(p, now, 1).as_slice() {
                return (now, *c, b.producer.unwrap());
            }
        };
        p.handle(Instant::ZERO, reply(NodeId(1), *c1, unknown()));
        assert!(done(&outputs(&mut p)).is_empty(), "the send goes on");
        let (now, c2, stamp) = next_produce(&mut p, Instant::ZERO);
        assert_eq!((stamp.producer_epoch, stamp.base_sequence), (ProducerEpoch(1), Sequence(0)));
        // This attempt's answer is lost: the batch may be in the log now.
        let (now, c3, retry) = next_produce(&mut p, now);
        assert_eq!(retry, stamp, "a retry keeps its stamp");
        assert_ne!(c2, c3);
        p.handle(now, reply(NodeId(1), c3, unknown()));
        let outs = outputs(&mut p);
        assert!(matches!(done(&outs).as_slice(), [(i, ProduceOutcome::Indefinite { .. })] if *i == second), "{outs:?}");
        assert!(requests(&outs).is_empty(), "not sent again under a new stamp: {outs:?}");
    }

    #[test]
    fn sends_without_a_partition_wait_for_metadata_and_follow_the_partitioner() {
        let cfg = ProducerConfig::default().partitioner(PartitionerKind::KeyHash).idempotence(false);
        let mut p = Producer::new(cfg, 1).unwrap();
        let keyed = SendRequest::new("t").acks(Acks::Leader).record(Record::keyed("foobar", "v"));
        p.submit(Instant::ZERO, keyed.clone()).unwrap();
        let (to, corr, body) = request_of(&outputs(&mut p));
        assert!(matches!(body, RequestBody::Metadata { .. }));
        p.handle(Instant::ZERO, reply(to, corr, metadata_n(1, 1, 50)));
        p.submit(Instant::ZERO, keyed).unwrap();
        let reqs = requests(&outputs(&mut p));
        let parts: Vec<PartitionId> = reqs
            .iter()
            .filter_map(|(_, _, b)| match b {
                RequestBody::Produce { partition, .. } => Some(*partition),
                _ => None,
            })
            .collect();
        // Kafka's murmur2 of "foobar" over 50 partitions (see partitioner.rs).
        assert_eq!(parts, vec![PartitionId(16), PartitionId(16)]);
    }

    #[test]
    fn an_explicit_partition_out_of_range_fails_definitely() {
        let mut p = Producer::new(ProducerConfig::default(), 1).unwrap();
        let id = p.send(Instant::ZERO, "t", PartitionId(9), Acks::All, vec![Record::from_value("a")]).unwrap();
        let (to, corr, _) = request_of(&outputs(&mut p));
        p.handle(Instant::ZERO, reply(to, corr, metadata(1, 1)));
        let outs = done(&outputs(&mut p));
        assert!(
            matches!(outs.as_slice(), [(i, ProduceOutcome::Failed { error })] if *i == id && error.code == ErrorCode::UnknownPartition),
            "{outs:?}"
        );
        assert_eq!(p.inflight(), 0);
    }

    #[test]
    fn a_send_to_a_topic_nobody_knows_fails_at_its_own_deadline() {
        let mut p = Producer::new(ProducerConfig::default(), 1).unwrap();
        let req = SendRequest::new("nope").record(Record::from_value("a")).timeout(Duration::from_millis(300));
        let id = p.submit(Instant::ZERO, req).unwrap();
        let mut now = Instant::ZERO;
        let mut ended = Vec::new();
        while ended.is_empty() {
            for (to, corr, _) in requests(&outputs(&mut p)) {
                p.handle(now, reply(to, corr, metadata(1, 1)));
            }
            ended = done(&outputs(&mut p));
            if ended.is_empty() {
                now = p.poll_timeout().expect("a deadline").max(now);
                p.handle(now, Input::Timeout);
                ended = done(&outputs(&mut p));
            }
        }
        assert!(now <= Instant::ZERO + Duration::from_millis(300));
        assert!(
            matches!(ended.as_slice(), [(i, ProduceOutcome::Failed { error })] if *i == id && error.code == ErrorCode::UnknownTopic)
        );
    }

    /// A producer with credentials against one broker (1, leading t/0) with auth
    /// on, knowing app key `app` with secret `s3cret`.
    struct AuthRig {
        p: Producer,
        broker: AuthBroker,
        now: Instant,
        /// Each request's kind, in order.
        log: Vec<&'static str>,
        /// The outcomes reported.
        ended: Vec<(SendId, ProduceOutcome)>,
    }

    impl AuthRig {
        fn new(secret: &str, seed: u64) -> AuthRig {
            let config = ProducerConfig::default()
                .request_timeout(Duration::from_millis(200))
                .credentials(Credentials::new("app", secret));
            let p = Producer::new(config, seed).unwrap();
            AuthRig { p, broker: AuthBroker::new(b"s3cret"), now: Instant::ZERO, log: Vec::new(), ended: Vec::new() }
        }

        fn send(&mut self) -> SendId {
            self.p.send(self.now, "t", PartitionId(0), Acks::All, vec![Record::from_value("a")]).unwrap()
        }

        /// Answers exchange requests through the broker, other requests before the
        /// exchange ended with `Unauthenticated`, metadata and producer ids; fires
        /// timeouts (for up to a minute) while nothing else happens. Returns the
        /// produce requests, unanswered.
        fn serve(&mut self) -> Vec<CorrelationId> {
            let until = self.now + Duration::from_secs(60);
            let mut produce = Vec::new();
            loop {
                let outs = outputs(&mut self.p);
                self.ended.extend(done(&outs));
                let reqs = requests(&outs);
                if reqs.is_empty() {
                    match self.p.poll_timeout().filter(|t| *t <= until) {
                        Some(t) if produce.is_empty() => {
                            self.now = t.max(self.now);
                            self.p.handle(self.now, Input::Timeout);
                            continue;
                        }
                        _ => return produce,
                    }
                }
                for (to, corr, body) in reqs {
                    assert_eq!(to, NodeId(1));
                    self.log.push(match &body {
                        RequestBody::AuthStart { .. } => "start",
                        RequestBody::AuthProof { .. } => "proof",
                        RequestBody::Metadata { .. } => "metadata",
                        RequestBody::InitProducer => "init",
                        RequestBody::Produce { .. } => "produce",
                        other => panic!("unexpected request {other:?}"),
                    });
                    let answer =
                        match (self.broker.exchange(&body).or_else(|| self.broker.refuse_unauthenticated()), body) {
                            (Some(a), _) => a,
                            (None, RequestBody::Metadata { .. }) => metadata(1, 1),
                            (None, RequestBody::InitProducer) => Ok(ResponseBody::ProducerId {
                                producer_id: ProducerId(42),
                                producer_epoch: ProducerEpoch(0),
                            }),
                            (None, _) => {
                                produce.push(corr);
                                continue;
                            }
                        };
                    self.p.handle(self.now, reply(to, corr, answer));
                }
            }
        }

        /// Answers a produce request and returns the outcomes that follow.
        fn answer(
            &mut self,
            corr: CorrelationId,
            body: Result<ResponseBody, WireError>,
        ) -> Vec<(SendId, ProduceOutcome)> {
            self.p.handle(self.now, reply(NodeId(1), corr, body));
            done(&outputs(&mut self.p))
        }
    }

    fn ok_at(offset: u64) -> ProduceOutcome {
        ProduceOutcome::Ok { partition: PartitionId(0), base_offset: Offset(offset) }
    }

    #[test]
    fn with_credentials_the_exchange_comes_first_and_the_send_follows() {
        let mut rig = AuthRig::new("s3cret", 1);
        let id = rig.send();
        let produce = rig.serve();
        assert_eq!(rig.log, ["start", "proof", "metadata", "init", "produce"], "held until authenticated");
        assert_eq!(rig.answer(produce[0], produced(0)), vec![(id, ok_at(0))]);
        assert_eq!(rig.p.auth_error(), None);

        // Nonces come from the producer's seeded stream.
        let nonce = |seed| {
            let mut rig = AuthRig::new("s3cret", seed);
            rig.send();
            match request_of(&outputs(&mut rig.p)).2 {
                RequestBody::AuthStart { client_nonce, .. } => client_nonce,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(nonce(1), nonce(1));
        assert_ne!(nonce(1), nonce(2));
    }

    #[test]
    fn a_leader_that_restarted_is_authenticated_again_and_the_send_retried() {
        let mut rig = AuthRig::new("s3cret", 1);
        rig.send();
        let produce = rig.serve();
        rig.answer(produce[0], produced(0));

        rig.broker.restart();
        let id = rig.send();
        rig.log.clear();
        let produce = rig.serve();
        assert_eq!(
            rig.log,
            ["produce", "start", "proof", "produce"],
            "refused Unauthenticated, then again after a login"
        );
        assert_eq!(rig.answer(produce[0], produced(1)), vec![(id, ok_at(1))]);
        assert_eq!(rig.p.retries(), 1);
    }

    #[test]
    fn a_wrong_secret_fails_every_send_with_the_app_key_and_nothing_more_is_sent() {
        let mut rig = AuthRig::new("guess", 1);
        let ids = [rig.send(), rig.send()];
        assert!(rig.serve().is_empty());
        assert_eq!(rig.log, ["start", "proof"], "one exchange, then nothing: no retry loop");
        assert_eq!(rig.ended.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
        for (_, outcome) in &rig.ended {
            let ProduceOutcome::Failed { error } = outcome else { panic!("definite: {outcome:?}") };
            assert_eq!(error.code, ErrorCode::Unauthenticated);
            assert!(error.message.contains("app key \"app\""), "{error}");
        }
        assert_eq!(rig.p.inflight(), 0);
        assert!(rig.p.auth_error().is_some());
        assert_eq!(rig.p.poll_timeout(), None, "nothing left to wake for");
        let late = rig.send();
        let outs = outputs(&mut rig.p);
        assert!(requests(&outs).is_empty());
        assert!(
            matches!(done(&outs).as_slice(), [(id, ProduceOutcome::Failed { error })] if *id == late && error.code == ErrorCode::Unauthenticated)
        );
    }

    #[test]
    fn a_lost_exchange_answer_times_out_and_the_exchange_runs_again() {
        let mut rig = AuthRig::new("s3cret", 1);
        let id = rig.send();
        let (_, _, body) = request_of(&outputs(&mut rig.p));
        assert!(matches!(body, RequestBody::AuthStart { .. }), "{body:?}");
        // Its answer is lost: nothing happens until the exchange's deadline.
        let deadline = rig.p.poll_timeout().unwrap();
        assert_eq!(deadline, Instant::ZERO + Duration::from_millis(200));
        let produce = rig.serve();
        assert_eq!(rig.log, ["start", "proof", "metadata", "init", "produce"]);
        assert!(rig.now > deadline, "the second exchange waited for the first's deadline");
        assert_eq!(rig.answer(produce[0], produced(0)), vec![(id, ok_at(0))]);
    }

    #[test]
    fn an_unauthorized_send_fails_definitely_without_a_retry() {
        let mut rig = AuthRig::new("s3cret", 1);
        let id = rig.send();
        let produce = rig.serve();
        let refusal = Err(WireError::new(ErrorCode::Unauthorized, "principal \"app\" may not Produce on t"));
        let outs = rig.answer(produce[0], refusal);
        assert!(
            matches!(outs.as_slice(), [(i, ProduceOutcome::Failed { error })] if *i == id && error.code == ErrorCode::Unauthorized),
            "{outs:?}"
        );
        assert_eq!((rig.p.retries(), rig.p.auth_error()), (0, None), "an ACL refusal is not an authentication failure");
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let bad = |c: ProducerConfig| Producer::new(c, 1).unwrap_err().to_string();
        assert!(bad(ProducerConfig::new([])).contains("brokers"));
        assert!(bad(ProducerConfig::default().max_inflight_per_partition(6)).contains("max_inflight_per_partition"));
        assert!(bad(ProducerConfig::default().buffer_max_bytes(10)).contains("buffer_max_bytes"));
        assert!(bad(ProducerConfig::default().credentials(Credentials::new("a b", "s"))).contains("credentials"));
        let weights = PartitionerKind::WeightedRoundRobin { weights: vec![0, 0] };
        assert!(bad(ProducerConfig::default().partitioner(weights)).contains("partitioner"));
        assert!(Producer::new(ProducerConfig::default().idempotence(false).max_inflight_per_partition(50), 1).is_ok());
    }
}
