//! A minimal consumer of one partition: fetches committed records from the
//! partition's leader, reports them in offset order, and moves its position past
//! them.
//!
//! Leaders: the consumer knows every broker. Without a known leader it asks a broker
//! (round robin) for metadata; a fetch refused with `NotLeader`, `NotReady`,
//! `FencedEpoch`, `UnknownEpoch`, `UnknownTopic` or `UnknownPartition`, a request
//! without a reply by its deadline, or a closed connection forgets the leader, so the
//! next request refreshes metadata first: the consumer follows leader changes.
//!
//! One request is in flight at a time. An empty reply waits `poll_interval` before
//! the next fetch; a reply with records fetches again at once. A request without a
//! reply by its deadline is forgotten and the fetch is sent again. A fetch refused
//! `OffsetOutOfRange` makes the consumer ask for the earliest offset: when the
//! position fell below it (retention), the consumer resumes there, reporting the
//! skip. Otherwise the position is past the end of the log, which an unclean
//! election truncated: the consumer asks for the latest offset and resumes there,
//! reporting the truncation ([`ConsumerOutput::Truncated`]), as a Kafka consumer
//! with `auto.offset.reset=latest` (the default) does.
//!
//! With `credentials` the consumer logs in to each broker before its first request
//! there ([`crate::client::auth`]); `Unauthenticated` from a restarted broker makes
//! it log in again and retry after `poll_interval`; refused credentials are fatal:
//! [`ConsumerOutput::Error`] naming the app key, and the consumer stops.

use crate::client::auth::{AuthGate, Credentials, Routed, SendOutput};
use crate::contract::{Input, Peer};
use crate::ids::{CorrelationId, LeaderEpoch, NodeId, Offset, TopicPartition};
use crate::rng::Seed;
use crate::time::{Duration, Instant};
use crate::wire::{ErrorCode, Message, OffsetSpec, Record, Request, RequestBody, ResponseBody, WireError};
use std::collections::VecDeque;

/// Consumer settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Every broker of the cluster.
    pub brokers: Vec<NodeId>,
    /// The partition read.
    pub tp: TopicPartition,
    /// The first offset wanted.
    pub start: Offset,
    /// Soft cap on one reply.
    pub max_bytes: u32,
    /// How long a request may wait for its response.
    pub request_timeout: Duration,
    /// Pause after a reply without new records.
    pub poll_interval: Duration,
    /// The app key and secret to authenticate with (`None`: the brokers run
    /// without authentication).
    pub credentials: Option<Credentials>,
}

impl ConsumerConfig {
    /// Reads `tp` from offset 0 of a one-broker cluster (broker 1) with default
    /// limits.
    pub fn new(tp: TopicPartition) -> Self {
        ConsumerConfig {
            brokers: vec![NodeId(1)],
            tp,
            start: Offset(0),
            max_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(1),
            poll_interval: Duration::from_millis(10),
            credentials: None,
        }
    }
}

/// What the consumer asks its driver to do, or reports.
#[derive(Clone, Debug, PartialEq)]
pub enum ConsumerOutput {
    /// Send `msg` to `to`.
    Send {
        /// The broker.
        to: Peer,
        /// The request.
        msg: Message,
    },
    /// Committed records, in offset order, starting at the previous position.
    Records {
        /// The partition's high watermark in the reply.
        high_watermark: Offset,
        /// The records with their offsets.
        records: Vec<(Offset, Record)>,
    },
    /// The position moved without reading (the records were removed by retention).
    Skipped {
        /// The old position.
        from: Offset,
        /// The new position.
        to: Offset,
    },
    /// The position was past the end of the log (an unclean election truncated
    /// it): the consumer moved back to the log's end.
    Truncated {
        /// The old position.
        from: Offset,
        /// The new position: the high watermark.
        to: Offset,
    },
    /// The broker refused a request (for example an unknown topic); the consumer
    /// retries after `poll_interval`. A refusal of the credentials (code
    /// `Unauthenticated`, naming the app key) is fatal instead: the consumer stops.
    Error(WireError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    Fetch,
    Earliest,
    Latest,
    Metadata,
}

/// What an `OffsetOutOfRange` made the consumer look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    None,
    /// The log start (the position may have fallen below it).
    Earliest,
    /// The log end (the position is past it).
    Latest,
}

/// The consumer state machine (see the module docs).
#[derive(Debug)]
pub struct Consumer {
    config: ConsumerConfig,
    now: Instant,
    position: Offset,
    next_correlation: u64,
    /// The request out: correlation, kind, broker, deadline.
    inflight: Option<(CorrelationId, Pending, NodeId, Instant)>,
    /// The leader followed, with its leader epoch.
    leader: Option<(NodeId, LeaderEpoch)>,
    /// Highest leader epoch seen, so lagging metadata never moves back.
    epoch_seen: LeaderEpoch,
    next_broker: usize,
    leader_changes: u64,
    /// When to send the next request if none is in flight.
    next_request_at: Instant,
    reset: Reset,
    /// Whether the position ever moved back to a truncated log's end.
    truncated: bool,
    auth: AuthGate,
    outputs: VecDeque<ConsumerOutput>,
}

impl SendOutput for ConsumerOutput {
    fn send(to: NodeId, msg: Message) -> Self {
        ConsumerOutput::Send { to: Peer::Node(to), msg }
    }
}

impl Consumer {
    /// A consumer positioned at `config.start`; `seed` picks the first broker asked
    /// for metadata.
    pub fn new(config: ConsumerConfig, seed: u64) -> Self {
        assert!(!config.brokers.is_empty(), "a consumer needs at least one broker");
        let next_broker = (crate::rng::fnv1a(&seed.to_le_bytes()) % config.brokers.len() as u64) as usize;
        let auth = AuthGate::new(
            config.credentials.clone(),
            Seed(seed).stream("consumer-auth"),
            config.request_timeout,
            config.poll_interval,
            config.request_timeout.max(config.poll_interval),
        );
        Consumer {
            position: config.start,
            leader: None,
            epoch_seen: LeaderEpoch(0),
            next_broker,
            leader_changes: 0,
            config,
            now: Instant::ZERO,
            next_correlation: 1,
            inflight: None,
            next_request_at: Instant::ZERO,
            reset: Reset::None,
            truncated: false,
            auth,
            outputs: VecDeque::new(),
        }
    }

    // ----- getters -----

    /// The settings.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// The next offset to read.
    pub fn position(&self) -> Offset {
        self.position
    }

    /// The leader followed, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader.map(|(l, _)| l)
    }

    /// The leader followed with the leader epoch metadata named for it, if known,
    /// and the newest leader epoch seen (it never goes back: docs/invariants.md,
    /// `client_metadata_monotonic`).
    pub fn leader_epoch(&self) -> (Option<(NodeId, LeaderEpoch)>, LeaderEpoch) {
        (self.leader, self.epoch_seen)
    }

    /// How often the consumer switched to a different leader.
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes
    }

    /// A broker's refusal of the credentials (naming the app key), once one
    /// refused them: the consumer stopped.
    pub fn auth_error(&self) -> Option<&WireError> {
        self.auth.refused()
    }

    // ----- the contract -----

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
        if self.auth.refused().is_some() {
            return; // stopped
        }
        if matches!(input, Input::Timeout) {
            self.auth.tick(self.now, &mut self.next_correlation, &mut self.outputs);
        }
        match input {
            Input::Message { from: Peer::Node(from), msg: Message::Response(resp) } => {
                let (counter, outputs) = (&mut self.next_correlation, &mut self.outputs);
                match self.auth.on_response(self.now, from, resp.correlation, &resp.body, counter, outputs) {
                    Routed::Exchange => {}
                    Routed::Refused(e) => {
                        self.inflight = None;
                        self.outputs.push_back(ConsumerOutput::Error(e));
                        return;
                    }
                    Routed::NotMine => match self.inflight {
                        Some((corr, kind, to, _)) if corr == resp.correlation && to == from => {
                            self.inflight = None;
                            self.on_response(kind, resp.body);
                        }
                        _ => {} // late or duplicated
                    },
                }
            }
            Input::Disconnected { peer: Peer::Node(peer) } => {
                self.auth.disconnected(peer);
                if let Some((_, _, to, _)) = self.inflight.filter(|(_, _, to, _)| *to == peer) {
                    self.inflight = None;
                    self.forget_leader(to);
                }
            }
            Input::Timeout if self.inflight.is_some_and(|(_, _, _, deadline)| deadline <= self.now) => {
                if let Some((_, _, to, _)) = self.inflight.take() {
                    self.forget_leader(to);
                }
            }
            _ => {}
        }
        self.maybe_request();
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<ConsumerOutput> {
        self.outputs.pop_front()
    }

    /// The request deadline, or when the next request is due (or an exchange
    /// deadline or backoff of the authentication); `None` once stopped.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.auth.refused().is_some() {
            return None;
        }
        let t = match self.inflight {
            Some((_, _, _, deadline)) => deadline,
            None => self.next_request_at,
        };
        Some(self.auth.poll_timeout().map_or(t, |a| a.min(t)))
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        self.auth.check_invariants();
        assert!(self.position >= self.config.start || self.truncated, "position moved before the start");
        if let Some((corr, kind, _, _)) = self.inflight {
            assert!(corr.0 < self.next_correlation, "correlation ids are reused");
            assert!(kind == Pending::Metadata || self.leader.is_some(), "a fetch without a leader");
        }
    }

    fn forget_leader(&mut self, broker: NodeId) {
        if self.leader.is_some_and(|(l, _)| l == broker) {
            self.leader = None;
        }
    }

    fn on_response(&mut self, kind: Pending, body: Result<ResponseBody, WireError>) {
        match (kind, body) {
            (Pending::Fetch, Ok(ResponseBody::Fetched { high_watermark, batches, .. })) => {
                // A batch reaching past the last offset is a broker's nonsense: the
                // position could not move past it.
                let records: Vec<(Offset, Record)> = batches
                    .iter()
                    .filter(|b| b.base_offset.get().checked_add(b.len()).is_some())
                    .flat_map(|b| b.iter_with_offsets())
                    .filter(|(o, _)| *o >= self.position)
                    .map(|(o, r)| (o, r.clone()))
                    .collect();
                match records.last() {
                    Some((last, _)) => {
                        // Records come back contiguous from the position; a gap would be
                        // a broker bug the checker must see, so report them as they are.
                        self.position = last.next();
                        self.next_request_at = self.now;
                        self.outputs.push_back(ConsumerOutput::Records { high_watermark, records });
                    }
                    None => self.next_request_at = self.now + self.config.poll_interval,
                }
            }
            (Pending::Earliest, Ok(ResponseBody::Offset { offset })) => {
                if offset > self.position {
                    self.reset = Reset::None;
                    self.outputs.push_back(ConsumerOutput::Skipped { from: self.position, to: offset });
                    self.position = offset;
                } else {
                    // Not below the log start, so past its end.
                    self.reset = Reset::Latest;
                }
                self.next_request_at = self.now;
            }
            (Pending::Latest, Ok(ResponseBody::Offset { offset })) => {
                self.reset = Reset::None;
                if offset < self.position {
                    self.outputs.push_back(ConsumerOutput::Truncated { from: self.position, to: offset });
                    self.position = offset;
                    self.truncated = true;
                    self.next_request_at = self.now;
                } else {
                    // The log grew back past the position meanwhile: fetch again,
                    // after a pause, so that a broker refusing the position and
                    // answering an end above it is not asked in a tight loop.
                    self.next_request_at = self.now + self.config.poll_interval;
                }
            }
            (Pending::Metadata, Ok(ResponseBody::Metadata { topics, .. })) => {
                let tp = &self.config.tp;
                let found = topics
                    .iter()
                    .filter(|t| t.config.name == tp.topic)
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition == tp.partition);
                match found {
                    Some(p) if p.leader.is_some() && p.leader_epoch >= self.epoch_seen => {
                        let leader = p.leader.expect("checked");
                        if self.leader.is_some_and(|(l, _)| l != leader) || self.leader.is_none() {
                            self.leader_changes += 1;
                        }
                        self.epoch_seen = p.leader_epoch;
                        self.leader = Some((leader, p.leader_epoch));
                        self.next_request_at = self.now;
                    }
                    _ => self.next_request_at = self.now + self.config.poll_interval,
                }
            }
            (_, Err(e)) if e.code.means_stale_leader() => {
                self.leader = None;
                self.outputs.push_back(ConsumerOutput::Error(e));
                self.next_request_at = self.now + self.config.poll_interval;
            }
            // With credentials: the broker restarted and forgot this connection; the
            // gate authenticates again before the next request.
            (_, Err(e)) if self.auth.reauthenticates(e.code) => {
                self.next_request_at = self.now + self.config.poll_interval;
            }
            (_, Err(e)) if e.code == ErrorCode::OffsetOutOfRange => {
                self.reset = Reset::Earliest;
                self.next_request_at = self.now;
            }
            (_, Err(e)) => {
                self.outputs.push_back(ConsumerOutput::Error(e));
                self.next_request_at = self.now + self.config.poll_interval;
            }
            (_, Ok(_)) => self.next_request_at = self.now + self.config.poll_interval,
        }
    }

    fn maybe_request(&mut self) {
        if self.inflight.is_some() || self.now < self.next_request_at {
            return;
        }
        let correlation = CorrelationId(self.next_correlation);
        self.next_correlation += 1;
        let tp = &self.config.tp;
        let (kind, body) = if self.leader.is_none() {
            (Pending::Metadata, RequestBody::Metadata { topics: vec![tp.topic.clone()] })
        } else if self.reset != Reset::None {
            let (kind, spec) = match self.reset {
                Reset::Latest => (Pending::Latest, OffsetSpec::Latest),
                _ => (Pending::Earliest, OffsetSpec::Earliest),
            };
            let body = RequestBody::ListOffsets { topic: tp.topic.clone(), partition: tp.partition, spec };
            (kind, body)
        } else {
            let body = RequestBody::Fetch {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: self.position,
                max_bytes: self.config.max_bytes,
            };
            (Pending::Fetch, body)
        };
        let to = match (kind, self.leader) {
            (Pending::Metadata, _) | (_, None) => {
                let b = self.config.brokers[self.next_broker % self.config.brokers.len()];
                self.next_broker = (self.next_broker + 1) % self.config.brokers.len();
                b
            }
            (_, Some((leader, _))) => leader,
        };
        let deadline = self.now + self.config.request_timeout;
        self.inflight = Some((correlation, kind, to, deadline));
        let request = Request { correlation, body };
        self.auth.send(self.now, to, request, deadline, &mut self.next_correlation, &mut self.outputs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{RecordBatch, Response};

    fn request(c: &mut Consumer) -> (CorrelationId, RequestBody) {
        match c.poll_output() {
            Some(ConsumerOutput::Send { msg: Message::Request(r), .. }) => (r.correlation, r.body),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn reply(corr: CorrelationId, body: Result<ResponseBody, WireError>) -> Input {
        Input::Message { from: Peer::Node(NodeId(1)), msg: Message::Response(Response { correlation: corr, body }) }
    }

    /// A consumer of t/0 that learned broker 1 leads it.
    fn consumer() -> Consumer {
        let mut c = Consumer::new(ConsumerConfig::new(TopicPartition::new("t", 0)), 0);
        c.handle(Instant::ZERO, Input::Timeout);
        let (corr, body) = request(&mut c);
        assert!(matches!(body, RequestBody::Metadata { .. }));
        let info = crate::wire::PartitionInfo {
            partition: crate::ids::PartitionId(0),
            leader: Some(NodeId(1)),
            leader_epoch: LeaderEpoch(1),
            replicas: vec![NodeId(1)],
            isr: vec![NodeId(1)],
            log_start: Offset(0),
            high_watermark: Offset(0),
        };
        let topics =
            vec![crate::wire::TopicInfo { config: crate::wire::TopicConfig::new("t", 1), partitions: vec![info] }];
        let md = ResponseBody::Metadata { brokers: vec![NodeId(1)], controller: None, topics };
        c.handle(Instant::ZERO, reply(corr, Ok(md)));
        assert_eq!(c.leader(), Some(NodeId(1)));
        c
    }

    #[test]
    fn records_advance_the_position_and_fetch_again() {
        let mut c = consumer();
        let (corr, body) = request(&mut c);
        assert!(matches!(body, RequestBody::Fetch { offset: Offset(0), .. }));
        let batch = RecordBatch::new(vec![Record::from_value("a"), Record::from_value("b")]);
        let fetched = ResponseBody::Fetched {
            partition: crate::ids::PartitionId(0),
            high_watermark: Offset(2),
            log_start: Offset(0),
            batches: vec![batch],
        };
        c.handle(Instant::ZERO, reply(corr, Ok(fetched.clone())));
        assert!(matches!(c.poll_output(), Some(ConsumerOutput::Records { records, .. }) if records.len() == 2));
        assert_eq!(c.position(), Offset(2));
        let (_, body) = request(&mut c);
        assert!(matches!(body, RequestBody::Fetch { offset: Offset(2), .. }));
        // A duplicate of the old reply is ignored.
        c.handle(Instant::ZERO, reply(corr, Ok(fetched)));
        assert_eq!(c.poll_output(), None);
    }

    /// Found by the `consumer` fuzz target: a fetched record at offset `u64::MAX`
    /// overflowed the position (`Offset::next`).
    #[test]
    fn a_batch_reaching_past_the_last_offset_is_ignored() {
        let mut c = consumer();
        let (corr, _) = request(&mut c);
        let mut batch = RecordBatch::new(vec![Record::from_value("a")]);
        batch.base_offset = Offset(u64::MAX);
        let fetched = ResponseBody::Fetched {
            partition: crate::ids::PartitionId(0),
            high_watermark: Offset(u64::MAX),
            log_start: Offset(0),
            batches: vec![batch],
        };
        c.handle(Instant::ZERO, reply(corr, Ok(fetched)));
        c.check_invariants();
        assert_eq!(c.position(), Offset(0));
        assert!(!matches!(c.poll_output(), Some(ConsumerOutput::Records { .. })));
    }

    #[test]
    fn out_of_range_resets_to_the_earliest_offset() {
        let mut c = consumer();
        let (corr, _) = request(&mut c);
        c.handle(Instant::ZERO, reply(corr, Err(WireError::new(ErrorCode::OffsetOutOfRange, "gone"))));
        let (corr, body) = request(&mut c);
        assert!(matches!(body, RequestBody::ListOffsets { spec: OffsetSpec::Earliest, .. }));
        c.handle(Instant::ZERO, reply(corr, Ok(ResponseBody::Offset { offset: Offset(5) })));
        assert_eq!(c.poll_output(), Some(ConsumerOutput::Skipped { from: Offset(0), to: Offset(5) }));
        assert!(matches!(request(&mut c).1, RequestBody::Fetch { offset: Offset(5), .. }));
    }

    /// Seed 1000240: an unclean election left the log shorter than the position;
    /// the consumer asked for the earliest offset, stayed where it was and
    /// fetched again at once, in a tight loop, until the run ended.
    #[test]
    fn out_of_range_past_the_end_resets_to_the_latest_offset() {
        let mut c = consumer();
        let (corr, _) = request(&mut c);
        let batch = RecordBatch::new((0..11).map(|i| Record::from_value(format!("v{i}"))).collect());
        let fetched = ResponseBody::Fetched {
            partition: crate::ids::PartitionId(0),
            high_watermark: Offset(11),
            log_start: Offset(0),
            batches: vec![batch],
        };
        c.handle(Instant::ZERO, reply(corr, Ok(fetched)));
        assert!(matches!(c.poll_output(), Some(ConsumerOutput::Records { .. })));
        assert_eq!(c.position(), Offset(11));
        let (corr, _) = request(&mut c);
        c.handle(Instant::ZERO, reply(corr, Err(WireError::new(ErrorCode::OffsetOutOfRange, "holds 0..4"))));
        let (corr, body) = request(&mut c);
        assert!(matches!(body, RequestBody::ListOffsets { spec: OffsetSpec::Earliest, .. }));
        c.handle(Instant::ZERO, reply(corr, Ok(ResponseBody::Offset { offset: Offset(0) })));
        assert_eq!(c.position(), Offset(11), "the log start is below the position");
        let (corr, body) = request(&mut c);
        assert!(matches!(body, RequestBody::ListOffsets { spec: OffsetSpec::Latest, .. }));
        c.handle(Instant::ZERO, reply(corr, Ok(ResponseBody::Offset { offset: Offset(4) })));
        assert_eq!(c.poll_output(), Some(ConsumerOutput::Truncated { from: Offset(11), to: Offset(4) }));
        assert!(matches!(request(&mut c).1, RequestBody::Fetch { offset: Offset(4), .. }));
    }

    #[test]
    fn a_lost_request_is_sent_again_after_its_deadline() {
        let mut c = consumer();
        let (first, _) = request(&mut c);
        let deadline = c.poll_timeout().unwrap();
        c.handle(deadline, Input::Timeout);
        let (second, _) = request(&mut c);
        assert_ne!(first, second);
    }
}

#[cfg(test)]
mod leader_tests {
    use super::*;
    use crate::wire::Response;

    #[test]
    fn not_leader_makes_the_consumer_ask_metadata_again() {
        let mut c = Consumer::new(
            ConsumerConfig { brokers: vec![NodeId(1), NodeId(2)], ..ConsumerConfig::new(TopicPartition::new("t", 0)) },
            0,
        );
        c.leader = Some((NodeId(1), LeaderEpoch(1)));
        c.handle(Instant::ZERO, Input::Timeout);
        let Some(ConsumerOutput::Send { to, msg: Message::Request(r) }) = c.poll_output() else { panic!("a fetch") };
        assert_eq!(to, Peer::Node(NodeId(1)));
        let err = Err(WireError::new(ErrorCode::NotLeader, "moved"));
        let input =
            Input::Message { from: to, msg: Message::Response(Response { correlation: r.correlation, body: err }) };
        c.handle(Instant::ZERO, input);
        assert_eq!(c.leader(), None);
        let t = c.poll_timeout().unwrap();
        c.handle(t, Input::Timeout);
        let outs: Vec<_> = std::iter::from_fn(|| c.poll_output()).collect();
        assert!(outs.iter().any(|o| matches!(
            o,
            ConsumerOutput::Send { msg: Message::Request(Request { body: RequestBody::Metadata { .. }, .. }), .. }
        )));
    }
}

#[cfg(test)]
mod auth_tests {
    use super::*;
    use crate::client::auth::scripted::AuthBroker;
    use crate::ids::PartitionId;
    use crate::wire::{PartitionInfo, RecordBatch, Response, TopicConfig, TopicInfo};

    fn consumer(secret: &str) -> Consumer {
        let config = ConsumerConfig {
            credentials: Some(Credentials::new("app", secret)),
            ..ConsumerConfig::new(TopicPartition::new("t", 0))
        };
        Consumer::new(config, 0)
    }

    /// Serves the consumer from broker 1 (leading t/0, holding "a" and "b") with
    /// auth on: the exchange through `broker`, `Unauthenticated` for other
    /// requests before it ended. Fires timeouts until `until`; drops the answers
    /// to the first `lose` requests. Returns the records and errors reported and
    /// each request's kind.
    fn serve(
        c: &mut Consumer,
        broker: &mut AuthBroker,
        mut now: Instant,
        until: Instant,
        mut lose: usize,
    ) -> (Instant, Vec<Offset>, Vec<WireError>, Vec<&'static str>) {
        let (mut records, mut errors, mut log) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let outs: Vec<ConsumerOutput> = std::iter::from_fn(|| c.poll_output()).collect();
            let mut sent = false;
            for o in outs {
                let (to, r) = match o {
                    ConsumerOutput::Send { to, msg: Message::Request(r) } => (to, r),
                    ConsumerOutput::Records { records: rs, .. } => {
                        records.extend(rs.into_iter().map(|(o, _)| o));
                        continue;
                    }
                    ConsumerOutput::Error(e) => {
                        errors.push(e);
                        continue;
                    }
                    other => panic!("{other:?}"),
                };
                sent = true;
                log.push(match &r.body {
                    RequestBody::AuthStart { .. } => "start",
                    RequestBody::AuthProof { .. } => "proof",
                    RequestBody::Metadata { .. } => "metadata",
                    RequestBody::Fetch { .. } => "fetch",
                    other => panic!("unexpected request {other:?}"),
                });
                let answer = match (broker.exchange(&r.body).or_else(|| broker.refuse_unauthenticated()), &r.body) {
                    (Some(a), _) => a,
                    (None, RequestBody::Metadata { .. }) => {
                        let info = PartitionInfo {
                            partition: PartitionId(0),
                            leader: Some(NodeId(1)),
                            leader_epoch: LeaderEpoch(1),
                            replicas: vec![NodeId(1)],
                            isr: vec![NodeId(1)],
                            log_start: Offset(0),
                            high_watermark: Offset(2),
                        };
                        let topics = vec![TopicInfo { config: TopicConfig::new("t", 1), partitions: vec![info] }];
                        Ok(ResponseBody::Metadata { brokers: vec![NodeId(1)], controller: None, topics })
                    }
                    (None, RequestBody::Fetch { offset, .. }) => {
                        let batches = if *offset == Offset(0) {
                            vec![RecordBatch::new(vec![Record::from_value("a"), Record::from_value("b")])]
                        } else {
                            vec![]
                        };
                        let (partition, high_watermark, log_start) = (PartitionId(0), Offset(2), Offset(0));
                        Ok(ResponseBody::Fetched { partition, high_watermark, log_start, batches })
                    }
                    (None, other) => panic!("{other:?}"),
                };
                if lose > 0 {
                    lose -= 1;
                    continue;
                }
                let msg = Message::Response(Response { correlation: r.correlation, body: answer });
                c.handle(now, Input::Message { from: to, msg });
            }
            if !sent {
                match c.poll_timeout().filter(|t| *t <= until) {
                    Some(t) => {
                        now = t.max(now);
                        c.handle(now, Input::Timeout);
                    }
                    None => return (now, records, errors, log),
                }
            }
        }
    }

    const SOON: Duration = Duration::from_millis(5);

    #[test]
    fn with_credentials_the_consumer_logs_in_first_then_reads() {
        let mut c = consumer("s3cret");
        let mut broker = AuthBroker::new(b"s3cret");
        let (_, records, errors, log) = serve(&mut c, &mut broker, Instant::ZERO, Instant::ZERO + SOON, 0);
        assert_eq!(log[..4], ["start", "proof", "metadata", "fetch"], "nothing before the login");
        assert_eq!(records, [Offset(0), Offset(1)]);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn a_leader_that_restarted_is_authenticated_again_and_the_fetch_sent_again() {
        let mut c = consumer("s3cret");
        let mut broker = AuthBroker::new(b"s3cret");
        let (now, ..) = serve(&mut c, &mut broker, Instant::ZERO, Instant::ZERO + SOON, 0);
        broker.restart();
        let (_, _, errors, log) = serve(&mut c, &mut broker, now, now + Duration::from_millis(50), 0);
        let logins = log.iter().filter(|k| **k == "start").count();
        assert_eq!(logins, 1, "one login after the restart: {log:?}");
        assert_eq!(log[..4], ["fetch", "start", "proof", "fetch"]);
        assert!(errors.is_empty(), "a passing refusal is not reported: {errors:?}");
        assert_eq!(c.position(), Offset(2));
    }

    #[test]
    fn a_wrong_secret_stops_the_consumer_with_an_error_naming_the_app_key() {
        let mut c = consumer("guess");
        let mut broker = AuthBroker::new(b"s3cret");
        let (_, records, errors, log) =
            serve(&mut c, &mut broker, Instant::ZERO, Instant::ZERO + Duration::from_millis(500), 0);
        assert_eq!(log, ["start", "proof"], "one exchange, then nothing: no retry loop");
        assert!(records.is_empty());
        let [e] = errors.as_slice() else { panic!("{errors:?}") };
        assert_eq!(e.code, ErrorCode::Unauthenticated);
        assert!(e.message.contains("app key \"app\""), "{e}");
        assert_eq!((c.poll_timeout(), c.auth_error()), (None, Some(e)));
    }

    #[test]
    fn a_lost_exchange_answer_times_out_and_the_exchange_runs_again() {
        let mut c = consumer("s3cret");
        let mut broker = AuthBroker::new(b"s3cret");
        let until = Instant::ZERO + Duration::from_secs(2);
        let (_, records, _, log) = serve(&mut c, &mut broker, Instant::ZERO, until, 1);
        assert_eq!(log[..5], ["start", "start", "proof", "metadata", "fetch"], "the lost AuthStart is sent again");
        assert_eq!(records, [Offset(0), Offset(1)]);
    }
}
