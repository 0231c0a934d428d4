//! The producer: sends each batch of [`Producer::send`] to the partition's leader,
//! finds leaders through `Metadata` requests, retries with backoff, and reports
//! exactly one [`ProduceOutcome`] per send (DESIGN.md section 6).
//!
//! Leaders: the producer knows every broker. A send whose partition has no known
//! leader asks a broker (round robin) for metadata and waits; a leader learned at a
//! leader epoch older than one already known is ignored, so a lagging broker's
//! metadata never moves the cache back.
//!
//! Retries: a send is tried up to `max_attempts` times. A retriable refusal
//! (`NotLeader`, `NotReady`, `FencedEpoch`, `UnknownEpoch`, `UnknownTopic`, ...),
//! an indefinite error (`LeadershipLost`, `Timeout`, `Internal`), a missing reply
//! by the request deadline and a closed connection all forget the leader, refresh
//! metadata and try again after an exponential backoff with jitter drawn from the
//! producer's seeded stream. A send that cannot finish within `delivery_timeout`
//! stops retrying.
//!
//! The outcome classification is what a checker relies on, so it is conservative:
//! - `Ok` carries the partition and base offset of the attempt that was acknowledged;
//! - `Failed` is *definite*: *every* attempt was refused before the batch was
//!   appended (or none could be sent), so it can never be read;
//! - `Indefinite` means the batch may be in the log: some attempt timed out, lost its
//!   connection, got an indefinite error, or the send was `acks=0`. A retry never
//!   makes an indefinite send definite; only an acknowledgement ends it as `Ok`.
//!
//! A response that matches no request in flight (late, duplicated, from an attempt
//! given up on) is ignored.

use crate::contract::{Input, Peer};
use crate::ids::{CorrelationId, LeaderEpoch, NodeId, Offset, PartitionId, TopicPartition};
use crate::rng::{Rng, Seed};
use crate::time::{Duration, Instant};
use crate::wire::{Acks, ErrorCode, Message, Record, RecordBatch, Request, RequestBody, ResponseBody, WireError};
use rand::Rng as _;
use std::collections::{BTreeMap, VecDeque};

/// Producer settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Every broker of the cluster (metadata requests rotate over them).
    pub brokers: Vec<NodeId>,
    /// How long a request may wait for its response before that attempt is
    /// indefinite.
    pub request_timeout: Duration,
    /// Most sends without an outcome; `send` refuses beyond it (backpressure).
    pub max_inflight: usize,
    /// Most produce requests one send may use.
    pub max_attempts: u32,
    /// The first retry waits about this long; each further one twice as long.
    pub retry_backoff: Duration,
    /// The longest wait between two attempts.
    pub retry_backoff_max: Duration,
    /// A send that has no outcome this long after `send` stops retrying.
    pub delivery_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            brokers: vec![NodeId(1)],
            request_timeout: Duration::from_secs(5),
            max_inflight: 5,
            max_attempts: 10,
            retry_backoff: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(30),
        }
    }
}

/// Names one `send`; its outcome carries the same id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendId(pub u64);

/// How a send ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProduceOutcome {
    /// The broker acknowledged the batch at `base_offset` of `partition`.
    Ok {
        /// The partition written.
        partition: PartitionId,
        /// Offset of the first record.
        base_offset: Offset,
    },
    /// Every attempt was refused before appending; the batch is not in the log.
    Failed {
        /// The last broker error.
        error: WireError,
    },
    /// The batch may or may not have been appended.
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

/// Why [`Producer::send`] refused a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// `max_inflight` sends are waiting already; retry after an outcome.
    #[error("{0} sends are waiting for an outcome already; wait for one")]
    Backpressure(usize),
    /// A batch needs at least one record.
    #[error("a batch needs at least one record")]
    EmptyBatch,
}

/// Where one send stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting to be (re)sent from this time on, once its leader is known.
    Waiting(Instant),
    /// A produce request is out.
    InFlight { correlation: CorrelationId, to: NodeId, deadline: Instant },
}

#[derive(Clone, Debug)]
struct SendState {
    tp: TopicPartition,
    acks: Acks,
    batch: RecordBatch,
    /// Produce requests sent so far.
    attempts: u32,
    /// Why some attempt's effect is unknown, if one's is.
    indefinite: Option<String>,
    /// The last definite refusal.
    last_error: Option<WireError>,
    give_up_at: Instant,
    stage: Stage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LeaderInfo {
    leader: Option<NodeId>,
    epoch: LeaderEpoch,
}

/// The producer state machine (see the module docs).
#[derive(Debug)]
pub struct Producer {
    config: ProducerConfig,
    rng: Rng,
    now: Instant,
    next_correlation: u64,
    next_send: u64,
    sends: BTreeMap<SendId, SendState>,
    /// Produce requests out, to the send they carry.
    requests: BTreeMap<CorrelationId, SendId>,
    leaders: BTreeMap<TopicPartition, LeaderInfo>,
    /// The metadata request out: (correlation, broker, deadline).
    metadata: Option<(CorrelationId, NodeId, Instant)>,
    next_metadata_at: Instant,
    next_broker: usize,
    retries: u64,
    outputs: VecDeque<ProducerOutput>,
}

impl Producer {
    /// A producer with nothing in flight; `seed` drives its jitter and its first
    /// metadata broker.
    pub fn new(config: ProducerConfig, seed: u64) -> Self {
        assert!(!config.brokers.is_empty(), "a producer needs at least one broker");
        let mut rng = Seed(seed).stream("producer");
        let next_broker = rng.random_range(0..config.brokers.len());
        Producer {
            config,
            rng,
            now: Instant::ZERO,
            next_correlation: 1,
            next_send: 1,
            sends: BTreeMap::new(),
            requests: BTreeMap::new(),
            leaders: BTreeMap::new(),
            metadata: None,
            next_metadata_at: Instant::ZERO,
            next_broker,
            retries: 0,
            outputs: VecDeque::new(),
        }
    }

    // ----- getters -----

    /// The settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Sends without an outcome yet.
    pub fn inflight(&self) -> usize {
        self.sends.len()
    }

    /// Produce requests sent again after an attempt failed, over the producer's life.
    pub fn retries(&self) -> u64 {
        self.retries
    }

    /// The leader this producer believes leads `tp`, if any.
    pub fn leader(&self, tp: &TopicPartition) -> Option<NodeId> {
        self.leaders.get(tp).and_then(|l| l.leader)
    }

    // ----- application mutators -----

    /// Sends `records` as one batch to `topic`/`partition`. Exactly one
    /// [`ProducerOutput::Done`] with the returned id follows, now or later.
    pub fn send(
        &mut self,
        now: Instant,
        topic: &str,
        partition: PartitionId,
        acks: Acks,
        records: Vec<Record>,
    ) -> Result<SendId, ProduceError> {
        self.advance(now);
        if records.is_empty() {
            return Err(ProduceError::EmptyBatch);
        }
        if self.sends.len() >= self.config.max_inflight {
            return Err(ProduceError::Backpressure(self.sends.len()));
        }
        let id = SendId(self.next_send);
        self.next_send += 1;
        let state = SendState {
            tp: TopicPartition { topic: topic.to_owned(), partition },
            acks,
            batch: RecordBatch::new(records),
            attempts: 0,
            indefinite: None,
            last_error: None,
            give_up_at: self.now + self.config.delivery_timeout,
            stage: Stage::Waiting(self.now),
        };
        self.sends.insert(id, state);
        self.drive();
        Ok(id)
    }

    // ----- the contract -----

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.advance(now);
        match input {
            Input::Message { from: Peer::Node(from), msg: Message::Response(resp) } => {
                if self.metadata.is_some_and(|(c, b, _)| c == resp.correlation && b == from) {
                    self.metadata = None;
                    self.on_metadata(resp.body);
                } else if let Some(id) = self.requests.get(&resp.correlation).copied() {
                    let matches = self.sends.get(&id).is_some_and(
                        |s| matches!(s.stage, Stage::InFlight { correlation, to, .. } if correlation == resp.correlation && to == from),
                    );
                    if matches {
                        self.requests.remove(&resp.correlation);
                        self.on_produce_reply(id, resp.body);
                    }
                }
            }
            Input::Message { .. } => {} // not ours
            Input::Disconnected { peer: Peer::Node(peer) } => {
                if self.metadata.is_some_and(|(_, b, _)| b == peer) {
                    self.metadata = None;
                }
                let lost: Vec<SendId> = self
                    .sends
                    .iter()
                    .filter(|(_, s)| matches!(s.stage, Stage::InFlight { to, .. } if to == peer))
                    .map(|(id, _)| *id)
                    .collect();
                for id in lost {
                    self.attempt_unknown(id, format!("connection to broker {peer} closed before the reply"));
                }
            }
            Input::Timeout => {
                let now = self.now;
                if self.metadata.is_some_and(|(_, _, d)| d <= now) {
                    self.metadata = None;
                }
                let late: Vec<SendId> = self
                    .sends
                    .iter()
                    .filter(|(_, s)| matches!(s.stage, Stage::InFlight { deadline, .. } if deadline <= now))
                    .map(|(id, _)| *id)
                    .collect();
                let timeout = self.config.request_timeout;
                for id in late {
                    self.attempt_unknown(id, format!("no reply within {timeout}"));
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

    /// When the producer next needs [`Input::Timeout`]: a request deadline, a
    /// retry, a metadata refresh, or a send's delivery deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = Instant::MAX;
        let mut wants_metadata = false;
        for s in self.sends.values() {
            match s.stage {
                // The give-up time matters only between attempts: one in flight
                // ends by its own deadline.
                Stage::InFlight { deadline, .. } => t = t.min(deadline),
                Stage::Waiting(at) => {
                    t = t.min(s.give_up_at);
                    match self.leader(&s.tp) {
                        Some(_) => t = t.min(at),
                        None => wants_metadata = true,
                    }
                }
            }
        }
        match self.metadata {
            Some((_, _, deadline)) => t = t.min(deadline),
            None if wants_metadata => t = t.min(self.next_metadata_at),
            None => {}
        }
        (t != Instant::MAX).then_some(t)
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        assert!(self.sends.len() <= self.config.max_inflight, "more sends without an outcome than allowed");
        for (corr, id) in &self.requests {
            let s = self.sends.get(id).expect("a request belongs to a live send");
            assert!(
                matches!(s.stage, Stage::InFlight { correlation, .. } if correlation == *corr),
                "request {corr} does not match its send's stage"
            );
        }
        let inflight = self.sends.values().filter(|s| matches!(s.stage, Stage::InFlight { .. })).count();
        assert_eq!(inflight, self.requests.len(), "in-flight sends and requests disagree");
        for s in self.sends.values() {
            assert!(s.attempts <= self.config.max_attempts, "more attempts than allowed");
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

    /// Sends what may leave now, finishes sends past their deadline, and asks for
    /// metadata when a waiting send has no leader.
    fn drive(&mut self) {
        let now = self.now;
        let ids: Vec<SendId> = self.sends.keys().copied().collect();
        let mut wants_metadata = false;
        for id in ids {
            let Some(s) = self.sends.get(&id) else { continue };
            let Stage::Waiting(at) = s.stage else { continue };
            if s.give_up_at <= now || s.attempts >= self.config.max_attempts {
                self.give_up(id);
                continue;
            }
            match self.leader(&s.tp) {
                Some(leader) if at <= now => self.send_attempt(id, leader),
                Some(_) => {}
                // Learn the leader meanwhile, so the retry can leave on time.
                None => wants_metadata = true,
            }
        }
        if wants_metadata && self.metadata.is_none() && self.next_metadata_at <= now {
            let broker = self.config.brokers[self.next_broker % self.config.brokers.len()];
            self.next_broker = (self.next_broker + 1) % self.config.brokers.len();
            let correlation = self.correlation();
            self.metadata = Some((correlation, broker, now + self.config.request_timeout));
            // Ask again soon but not in a tight loop if this broker knows nothing.
            self.next_metadata_at = now + self.jittered(self.config.retry_backoff);
            let body = RequestBody::Metadata { topics: Vec::new() };
            let msg = Message::Request(Request { correlation, body });
            self.outputs.push_back(ProducerOutput::Send { to: Peer::Node(broker), msg });
        }
    }

    fn send_attempt(&mut self, id: SendId, leader: NodeId) {
        let correlation = self.correlation();
        let deadline = self.now + self.config.request_timeout;
        let Some(s) = self.sends.get_mut(&id) else { return };
        if s.attempts > 0 {
            self.retries += 1;
        }
        s.attempts += 1;
        let body = RequestBody::Produce {
            topic: s.tp.topic.clone(),
            partition: s.tp.partition,
            acks: s.acks,
            batch: s.batch.clone(),
        };
        self.outputs.push_back(ProducerOutput::Send {
            to: Peer::Node(leader),
            msg: Message::Request(Request { correlation, body }),
        });
        if s.acks == Acks::None {
            let reason = "acks=0: the broker never confirms".to_owned();
            self.finish(id, ProduceOutcome::Indefinite { reason });
        } else {
            s.stage = Stage::InFlight { correlation, to: leader, deadline };
            self.requests.insert(correlation, id);
        }
    }

    fn on_metadata(&mut self, body: Result<ResponseBody, WireError>) {
        let Ok(ResponseBody::Metadata { topics, .. }) = body else { return };
        for t in topics {
            for p in t.partitions {
                let tp = TopicPartition { topic: t.config.name.clone(), partition: p.partition };
                let known = self.leaders.get(&tp);
                if known.is_none_or(|k| p.leader_epoch >= k.epoch) {
                    self.leaders.insert(tp, LeaderInfo { leader: p.leader, epoch: p.leader_epoch });
                }
            }
        }
    }

    fn on_produce_reply(&mut self, id: SendId, body: Result<ResponseBody, WireError>) {
        match body {
            Ok(ResponseBody::Produced { partition, base_offset, .. }) => {
                self.finish(id, ProduceOutcome::Ok { partition, base_offset });
            }
            Ok(other) => {
                let reason = format!("unexpected reply {other:?}");
                self.mark_indefinite(id, reason.clone());
                self.finish(id, ProduceOutcome::Indefinite { reason });
            }
            Err(error) if error.code.is_indefinite() => self.attempt_unknown(id, error.to_string()),
            Err(error) if error.code == ErrorCode::TopicDeleted => {
                self.mark_indefinite(id, error.to_string());
                self.give_up(id);
            }
            Err(error) => {
                let retriable = error.code.is_retriable() || error.code == ErrorCode::UnknownTopic;
                if error.code.means_stale_leader() {
                    self.forget_leader(id);
                }
                if let Some(s) = self.sends.get_mut(&id) {
                    s.last_error = Some(error);
                }
                if retriable {
                    self.retry_later(id);
                } else {
                    self.give_up(id);
                }
            }
        }
    }

    /// An attempt whose effect is unknown: remember that, and retry.
    fn attempt_unknown(&mut self, id: SendId, reason: String) {
        if let Some(Stage::InFlight { correlation, .. }) = self.sends.get(&id).map(|s| s.stage.clone()) {
            self.requests.remove(&correlation);
        }
        self.mark_indefinite(id, reason);
        self.forget_leader(id);
        self.retry_later(id);
    }

    fn mark_indefinite(&mut self, id: SendId, reason: String) {
        if let Some(s) = self.sends.get_mut(&id) {
            s.indefinite.get_or_insert(reason);
        }
    }

    fn forget_leader(&mut self, id: SendId) {
        let Some(s) = self.sends.get(&id) else { return };
        let bad = match s.stage {
            Stage::InFlight { to, .. } => Some(to),
            Stage::Waiting(_) => None,
        };
        if let Some(info) = self.leaders.get_mut(&s.tp) {
            if bad.is_none() || info.leader == bad {
                info.leader = None;
            }
        }
    }

    fn retry_later(&mut self, id: SendId) {
        let base = self.config.retry_backoff.as_nanos();
        let Some(attempts) = self.sends.get(&id).map(|s| s.attempts) else { return };
        let exp = base.saturating_mul(1u64 << attempts.saturating_sub(1).min(20));
        let wait = self.jittered(Duration::from_nanos(exp.min(self.config.retry_backoff_max.as_nanos())));
        let at = self.now + wait;
        if let Some(s) = self.sends.get_mut(&id) {
            s.stage = Stage::Waiting(at);
        }
    }

    /// `d` scaled by a factor drawn from [0.5, 1.0].
    fn jittered(&mut self, d: Duration) -> Duration {
        let n = d.as_nanos().max(1);
        Duration::from_nanos(n / 2 + self.rng.random_range(0..=n / 2))
    }

    /// No more attempts: indefinite if any attempt may have appended, else failed.
    fn give_up(&mut self, id: SendId) {
        let Some(s) = self.sends.get(&id) else { return };
        let outcome = match (&s.indefinite, &s.last_error) {
            (Some(reason), _) => {
                ProduceOutcome::Indefinite { reason: format!("{reason}; gave up after {} attempt(s)", s.attempts) }
            }
            (None, Some(error)) => ProduceOutcome::Failed { error: error.clone() },
            (None, None) => ProduceOutcome::Failed {
                error: WireError::new(
                    ErrorCode::NotLeader,
                    format!("no leader of {} found within {}; nothing was sent", s.tp, self.config.delivery_timeout),
                ),
            },
        };
        self.finish(id, outcome);
    }

    fn finish(&mut self, id: SendId, outcome: ProduceOutcome) {
        if let Some(s) = self.sends.remove(&id) {
            if let Stage::InFlight { correlation, .. } = s.stage {
                self.requests.remove(&correlation);
            }
            self.outputs.push_back(ProducerOutput::Done { id, outcome });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PartitionInfo, Response, TopicConfig, TopicInfo};

    fn outputs(p: &mut Producer) -> Vec<ProducerOutput> {
        std::iter::from_fn(|| p.poll_output()).collect()
    }

    fn request_of(outs: &[ProducerOutput]) -> (NodeId, CorrelationId, RequestBody) {
        outs.iter()
            .find_map(|o| match o {
                ProducerOutput::Send { to: Peer::Node(n), msg: Message::Request(r) } => {
                    Some((*n, r.correlation, r.body.clone()))
                }
                _ => None,
            })
            .expect("a request")
    }

    fn reply(from: NodeId, corr: CorrelationId, body: Result<ResponseBody, WireError>) -> Input {
        Input::Message { from: Peer::Node(from), msg: Message::Response(Response { correlation: corr, body }) }
    }

    fn metadata(leader: u32, epoch: u32) -> Result<ResponseBody, WireError> {
        let info = PartitionInfo {
            partition: PartitionId(0),
            leader: Some(NodeId(leader)),
            leader_epoch: LeaderEpoch(epoch),
            replicas: vec![NodeId(1), NodeId(2)],
            isr: vec![NodeId(1), NodeId(2)],
            log_start: Offset(0),
            high_watermark: Offset(0),
        };
        Ok(ResponseBody::Metadata {
            brokers: vec![NodeId(1), NodeId(2)],
            controller: Some(NodeId(1)),
            topics: vec![TopicInfo { config: TopicConfig::new("t", 1), partitions: vec![info] }],
        })
    }

    fn two_brokers() -> Producer {
        let cfg = ProducerConfig { brokers: vec![NodeId(1), NodeId(2)], ..ProducerConfig::default() };
        Producer::new(cfg, 7)
    }

    /// Sends one record to t/0 and answers the metadata request with `leader`.
    fn send_to_leader(p: &mut Producer, acks: Acks, leader: u32) -> (SendId, CorrelationId) {
        let id = p.send(Instant::ZERO, "t", PartitionId(0), acks, vec![Record::from_value("a")]).unwrap();
        let (to, corr, body) = request_of(&outputs(p));
        assert!(matches!(body, RequestBody::Metadata { .. }));
        p.handle(Instant::ZERO, reply(to, corr, metadata(leader, 1)));
        let (to, corr, body) = request_of(&outputs(p));
        assert_eq!(to, NodeId(leader));
        assert!(matches!(body, RequestBody::Produce { .. }));
        (id, corr)
    }

    #[test]
    fn a_send_asks_metadata_then_goes_to_the_leader_and_acks_once() {
        let mut p = two_brokers();
        let (id, corr) = send_to_leader(&mut p, Acks::All, 2);
        let ok = Ok(ResponseBody::Produced { partition: PartitionId(0), base_offset: Offset(7), append_time_ms: 0 });
        p.handle(Instant::ZERO, reply(NodeId(2), corr, ok.clone()));
        p.handle(Instant::ZERO, reply(NodeId(2), corr, ok));
        assert_eq!(
            outputs(&mut p),
            vec![ProducerOutput::Done {
                id,
                outcome: ProduceOutcome::Ok { partition: PartitionId(0), base_offset: Offset(7) }
            }]
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
        let cfg = ProducerConfig { max_attempts: 2, ..ProducerConfig::default() };
        let mut p = Producer::new(cfg.clone(), 1);
        let (_, corr) = send_to_leader(&mut p, Acks::All, 1);
        let refuse = || Err(WireError::new(ErrorCode::NotEnoughReplicas, "isr too small"));
        p.handle(Instant::ZERO, reply(NodeId(1), corr, refuse()));
        let t = p.poll_timeout().unwrap();
        p.handle(t, Input::Timeout);
        let (_, corr, _) = request_of(&outputs(&mut p));
        p.handle(t, reply(NodeId(1), corr, refuse()));
        assert!(matches!(
            outputs(&mut p).as_slice(),
            [ProducerOutput::Done { outcome: ProduceOutcome::Failed { .. }, .. }]
        ));

        let mut p = Producer::new(cfg, 1);
        let (_, _) = send_to_leader(&mut p, Acks::All, 1);
        let t = p.poll_timeout().unwrap();
        p.handle(t, Input::Timeout); // the first attempt's deadline: unknown effect
        let mut t = t;
        loop {
            let outs = outputs(&mut p);
            if let Some(ProducerOutput::Done { outcome, .. }) =
                outs.iter().find(|o| matches!(o, ProducerOutput::Done { .. }))
            {
                assert!(matches!(outcome, ProduceOutcome::Indefinite { .. }), "{outcome:?}");
                break;
            }
            for o in outs {
                if let ProducerOutput::Send { to: Peer::Node(n), msg: Message::Request(r) } = o {
                    let body = match r.body {
                        RequestBody::Metadata { .. } => metadata(1, 1),
                        _ => refuse(),
                    };
                    p.handle(t, reply(n, r.correlation, body));
                }
            }
            if let Some(next) = p.poll_timeout() {
                t = next.max(t);
                p.handle(t, Input::Timeout);
            }
        }
    }

    #[test]
    fn acks_zero_is_indefinite_once_sent_and_sends_are_bounded() {
        let cfg = ProducerConfig { max_inflight: 1, ..ProducerConfig::default() };
        let mut p = Producer::new(cfg, 3);
        let id = p.send(Instant::ZERO, "t", PartitionId(0), Acks::None, vec![Record::from_value("a")]).unwrap();
        let err = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]);
        assert_eq!(err, Err(ProduceError::Backpressure(1)));
        let (to, corr, _) = request_of(&outputs(&mut p));
        p.handle(Instant::ZERO, reply(to, corr, metadata(1, 1)));
        let outs = outputs(&mut p);
        assert!(outs.iter().any(
            |o| matches!(o, ProducerOutput::Done { id: i, outcome: ProduceOutcome::Indefinite { .. } } if *i == id)
        ));
        assert_eq!(p.inflight(), 0);
    }

    #[test]
    fn older_leader_epochs_never_replace_newer_ones() {
        let mut p = two_brokers();
        let _ = send_to_leader(&mut p, Acks::All, 2);
        p.on_metadata(metadata(1, 0));
        assert_eq!(p.leader(&TopicPartition::new("t", 0)), Some(NodeId(2)));
    }
}
