//! A minimal producer: sends one `Produce` request per [`Producer::send`] and reports
//! exactly one [`ProduceOutcome`] per send.
//!
//! The outcome classification is what a checker relies on, so it is conservative:
//! - `Ok` carries the partition and base offset the broker assigned;
//! - `Failed` is *definite*: the broker refused the batch before appending it
//!   (unknown topic, backpressure, not leader, ...), so it can never be read;
//! - `Indefinite` means the batch may or may not be in the log: the deadline passed,
//!   the connection closed, `acks=0` (no reply is ever sent), or an error whose
//!   effect is unknown (`Timeout`, `Internal`, `TopicDeleted`).
//!
//! A response that matches no request in flight (late, duplicated) is ignored.

use crate::contract::{Input, Peer};
use crate::ids::{CorrelationId, NodeId, Offset, PartitionId};
use crate::time::{Duration, Instant};
use crate::wire::{Acks, ErrorCode, Message, Record, RecordBatch, Request, RequestBody, ResponseBody, WireError};
use std::collections::{BTreeMap, VecDeque};

/// Producer settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// The broker all requests go to (the partition leader in a one-node cluster).
    pub broker: NodeId,
    /// How long a request may wait for its response before it is indefinite.
    pub request_timeout: Duration,
    /// Most requests in flight; `send` refuses beyond it (backpressure).
    pub max_inflight: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig { broker: NodeId(1), request_timeout: Duration::from_secs(5), max_inflight: 5 }
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
    /// The broker refused the batch; it was not appended.
    Failed {
        /// The broker's error.
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
    /// `max_inflight` requests are waiting already; retry after an outcome.
    #[error("{0} requests are in flight already; wait for an outcome")]
    Backpressure(usize),
    /// A batch needs at least one record.
    #[error("a batch needs at least one record")]
    EmptyBatch,
}

#[derive(Clone, Debug)]
struct InFlight {
    id: SendId,
    deadline: Instant,
}

/// The producer state machine (see the module docs).
#[derive(Debug)]
pub struct Producer {
    config: ProducerConfig,
    now: Instant,
    next_correlation: u64,
    next_send: u64,
    /// Deadlines grow with correlation ids (constant timeout, monotonic `now`), so
    /// the first entry holds the earliest deadline.
    inflight: BTreeMap<CorrelationId, InFlight>,
    outputs: VecDeque<ProducerOutput>,
}

impl Producer {
    /// A producer with nothing in flight.
    pub fn new(config: ProducerConfig) -> Self {
        Producer {
            config,
            now: Instant::ZERO,
            next_correlation: 1,
            next_send: 1,
            inflight: BTreeMap::new(),
            outputs: VecDeque::new(),
        }
    }

    // ----- getters -----

    /// The settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Requests waiting for a response.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
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
        if self.inflight.len() >= self.config.max_inflight {
            return Err(ProduceError::Backpressure(self.inflight.len()));
        }
        let id = SendId(self.next_send);
        self.next_send += 1;
        let correlation = CorrelationId(self.next_correlation);
        self.next_correlation += 1;
        let body = RequestBody::Produce { topic: topic.to_owned(), partition, acks, batch: RecordBatch::new(records) };
        let to = Peer::Node(self.config.broker);
        self.outputs.push_back(ProducerOutput::Send { to, msg: Message::Request(Request { correlation, body }) });
        if acks == Acks::None {
            let reason = "acks=0: the broker never confirms".to_owned();
            self.outputs.push_back(ProducerOutput::Done { id, outcome: ProduceOutcome::Indefinite { reason } });
        } else {
            self.inflight.insert(correlation, InFlight { id, deadline: self.now + self.config.request_timeout });
        }
        Ok(id)
    }

    // ----- the contract -----

    /// Feeds one input.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.advance(now);
        match input {
            Input::Message { from, msg: Message::Response(resp) } if from == Peer::Node(self.config.broker) => {
                let Some(req) = self.inflight.remove(&resp.correlation) else { return };
                let outcome = match resp.body {
                    Ok(ResponseBody::Produced { partition, base_offset, .. }) => {
                        ProduceOutcome::Ok { partition, base_offset }
                    }
                    Ok(other) => ProduceOutcome::Indefinite { reason: format!("unexpected reply {other:?}") },
                    Err(error) if is_definite(error.code) => ProduceOutcome::Failed { error },
                    Err(error) => ProduceOutcome::Indefinite { reason: error.to_string() },
                };
                self.outputs.push_back(ProducerOutput::Done { id: req.id, outcome });
            }
            Input::Message { .. } => {} // not ours: a request, or from another peer
            Input::Disconnected { peer } if peer == Peer::Node(self.config.broker) => {
                for (_, req) in std::mem::take(&mut self.inflight) {
                    let reason = "connection closed before the reply".to_owned();
                    self.outputs
                        .push_back(ProducerOutput::Done { id: req.id, outcome: ProduceOutcome::Indefinite { reason } });
                }
            }
            Input::Timeout => {
                while let Some(entry) = self.inflight.first_entry() {
                    if entry.get().deadline > self.now {
                        break;
                    }
                    let req = entry.remove();
                    let reason = format!("no reply within {}", self.config.request_timeout);
                    self.outputs
                        .push_back(ProducerOutput::Done { id: req.id, outcome: ProduceOutcome::Indefinite { reason } });
                }
            }
            Input::Connected { .. } | Input::Disconnected { .. } | Input::Persisted { .. } => {}
        }
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
    }

    /// The next output, until `None`.
    pub fn poll_output(&mut self) -> Option<ProducerOutput> {
        self.outputs.pop_front()
    }

    /// The earliest request deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.inflight.values().next().map(|r| r.deadline)
    }

    /// Panics if an internal invariant is broken.
    pub fn check_invariants(&self) {
        assert!(self.inflight.len() <= self.config.max_inflight, "more requests in flight than allowed");
        let mut last = Instant::ZERO;
        for r in self.inflight.values() {
            assert!(r.deadline >= last, "deadlines out of correlation order");
            last = r.deadline;
        }
    }

    fn advance(&mut self, now: Instant) {
        debug_assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = self.now.max(now);
    }
}

/// True when the broker refused the batch before appending it.
fn is_definite(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidRequest
            | ErrorCode::UnknownTopic
            | ErrorCode::UnknownPartition
            | ErrorCode::RecordTooLarge
            | ErrorCode::InvalidConfig
            | ErrorCode::Backpressure
            | ErrorCode::NotLeader
            | ErrorCode::NotEnoughReplicas
            | ErrorCode::FencedEpoch
            | ErrorCode::UnknownEpoch
            | ErrorCode::Unauthenticated
            | ErrorCode::Unauthorized
            | ErrorCode::NotReady
            | ErrorCode::OutOfOrderSequence
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Response;

    fn produced(p: &mut Producer) -> (CorrelationId, Vec<ProducerOutput>) {
        let outs: Vec<_> = std::iter::from_fn(|| p.poll_output()).collect();
        let corr = outs
            .iter()
            .find_map(|o| match o {
                ProducerOutput::Send { msg: Message::Request(r), .. } => Some(r.correlation),
                _ => None,
            })
            .expect("a request");
        (corr, outs)
    }

    fn reply(corr: CorrelationId, body: Result<ResponseBody, WireError>) -> Input {
        Input::Message { from: Peer::Node(NodeId(1)), msg: Message::Response(Response { correlation: corr, body }) }
    }

    #[test]
    fn an_ack_reports_the_offset_once_even_if_duplicated() {
        let mut p = Producer::new(ProducerConfig::default());
        let id = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("a")]).unwrap();
        let (corr, _) = produced(&mut p);
        let ok = Ok(ResponseBody::Produced { partition: PartitionId(0), base_offset: Offset(7), append_time_ms: 0 });
        p.handle(Instant::ZERO, reply(corr, ok.clone()));
        p.handle(Instant::ZERO, reply(corr, ok));
        let done: Vec<_> = std::iter::from_fn(|| p.poll_output()).collect();
        assert_eq!(
            done,
            vec![ProducerOutput::Done {
                id,
                outcome: ProduceOutcome::Ok { partition: PartitionId(0), base_offset: Offset(7) }
            }]
        );
    }

    #[test]
    fn refusals_are_definite_and_timeouts_indefinite() {
        let mut p = Producer::new(ProducerConfig::default());
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::Leader, vec![Record::from_value("a")]).unwrap();
        let (corr, _) = produced(&mut p);
        p.handle(Instant::ZERO, reply(corr, Err(WireError::new(ErrorCode::UnknownTopic, "no"))));
        assert!(matches!(p.poll_output(), Some(ProducerOutput::Done { outcome: ProduceOutcome::Failed { .. }, .. })));
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::Leader, vec![Record::from_value("b")]).unwrap();
        let _ = produced(&mut p);
        assert_eq!(p.poll_timeout(), Some(Instant::ZERO + Duration::from_secs(5)));
        p.handle(Instant::from_millis(5_000), Input::Timeout);
        assert!(matches!(
            p.poll_output(),
            Some(ProducerOutput::Done { outcome: ProduceOutcome::Indefinite { .. }, .. })
        ));
        assert_eq!(p.inflight(), 0);
    }

    #[test]
    fn acks_zero_is_indefinite_at_once_and_inflight_is_bounded() {
        let cfg = ProducerConfig { max_inflight: 1, ..ProducerConfig::default() };
        let mut p = Producer::new(cfg);
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::None, vec![Record::from_value("a")]).unwrap();
        let (_, outs) = produced(&mut p);
        assert!(matches!(outs[1], ProducerOutput::Done { outcome: ProduceOutcome::Indefinite { .. }, .. }));
        p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]).unwrap();
        let err = p.send(Instant::ZERO, "t", PartitionId(0), Acks::All, vec![Record::from_value("c")]);
        assert_eq!(err, Err(ProduceError::Backpressure(1)));
    }
}
