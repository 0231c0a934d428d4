//! The `producer` target: a client [`Producer`] with a fuzzed configuration,
//! fed application sends and arbitrary broker answers (any response body, any
//! error, to requests it made or never made), timeouts and closed connections.
//!
//! Checks: `check_invariants` after every input; only requests, only to
//! brokers; every send `submit` accepted gets exactly one `Done`, and
//! none other does; and once the fuzzer stops answering, time alone brings every
//! open send to its `Done` (the producer never hangs without a deadline).

use crate::arb::{self, Hints};
use crate::Steps;
use arbitrary::Unstructured;
use mq_core::client::{PartitionerKind, Producer, ProducerConfig, ProducerOutput, SendId, SendRequest};
use mq_core::wire::{Acks, Message, Record, Response, ResponseBody, WireError};
use mq_core::{CorrelationId, Duration, Input, Instant, NodeId, PartitionId, Peer};
use std::collections::BTreeSet;

const MAX_STEPS: usize = 200;

/// Longest send deadline after which the final liveness check still runs.
const BOUNDED_TIMEOUT: Duration = Duration::from_secs(120);

struct Driver {
    producer: Producer,
    now: Instant,
    /// Requests the producer sent: (broker, correlation).
    requests: Vec<(NodeId, CorrelationId)>,
    open: BTreeSet<SendId>,
    /// False once a send has a deadline too far out for the liveness check.
    bounded: bool,
    hints: Hints,
}

/// Runs one input sequence.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let setup: u32 = u.arbitrary().unwrap_or(0);
    let brokers: Vec<NodeId> = (1..=1 + (setup % 3)).map(NodeId).collect();
    let partitioner = match (setup >> 2) % 5 {
        0 => PartitionerKind::KeyHash,
        1 => PartitionerKind::RoundRobin,
        2 => PartitionerKind::Random,
        3 => PartitionerKind::Explicit,
        _ => PartitionerKind::WeightedRoundRobin { weights: vec![1, 0, 3] },
    };
    let config = ProducerConfig::new(brokers)
        .idempotence(setup & 0x20 != 0)
        .linger(Duration::from_millis(u64::from((setup >> 6) % 3) * 5))
        .max_attempts(1 + (setup >> 8) % 4)
        .max_inflight(1 + ((setup >> 10) % 8) as usize)
        .batch_max_bytes(64 + ((setup >> 13) % 4) as usize * 256)
        .buffer_max_bytes(1024 + ((setup >> 15) % 4) as usize * 4096)
        .max_inflight_per_partition(1 + ((setup >> 17) % 5) as usize)
        .request_timeout(Duration::from_millis(500))
        .delivery_timeout(Duration::from_secs(5))
        .partitioner(partitioner);
    let Ok(producer) = Producer::new(config, u64::from(setup)) else { return };
    let mut d = Driver {
        producer,
        now: Instant::ZERO,
        requests: Vec::new(),
        open: BTreeSet::new(),
        bounded: true,
        hints: Hints::default(),
    };
    let mut steps = Steps::new(MAX_STEPS);
    while steps.next(&u) {
        d.step(&mut u);
    }
    d.finish();
}

impl Driver {
    fn handle(&mut self, input: Input) {
        self.producer.handle(self.now, input);
        self.after();
    }

    fn after(&mut self) {
        self.producer.check_invariants();
        while let Some(out) = self.producer.poll_output() {
            match out {
                ProducerOutput::Send { to, msg } => {
                    // Brokers named by metadata answers count too, so any broker id.
                    let Peer::Node(n) = to else { panic!("a producer request to a client: {to}") };
                    let Message::Request(req) = &msg else { panic!("a producer sent a non-request: {msg:?}") };
                    self.requests.push((n, req.correlation));
                    if self.requests.len() > 32 {
                        self.requests.remove(0);
                    }
                    self.hints.collect(&msg);
                }
                ProducerOutput::Done { id, .. } => {
                    assert!(self.open.remove(&id), "a Done for {id:?}, which is not open (twice, or never sent)");
                }
            }
        }
    }

    fn submit(&mut self, u: &mut Unstructured<'_>) {
        let topic = arb::value::<String>(u, &self.hints).unwrap_or_default();
        let partition = arb::value::<Option<PartitionId>>(u, &self.hints).unwrap_or(None);
        let acks = arb::value::<Acks>(u, &self.hints).unwrap_or_default();
        let records = arb::value::<Vec<Record>>(u, &self.hints).unwrap_or_default();
        let timeout = arb::value::<Option<Duration>>(u, &self.hints).unwrap_or(None);
        if timeout.is_some_and(|t| t > BOUNDED_TIMEOUT) {
            self.bounded = false;
        }
        let request = SendRequest { topic, partition, acks, records, timeout };
        // A refused send has no outcome to wait for.
        if let Ok(id) = self.producer.submit(self.now, request) {
            assert!(self.open.insert(id), "submit returned {id:?} twice");
        }
        self.after();
    }

    fn step(&mut self, u: &mut Unstructured<'_>) {
        let choice: u8 = u.arbitrary().unwrap_or(0);
        match choice % 12 {
            0..=2 => self.submit(u),
            3..=6 => {
                // An answer to a request the producer made (kept for a duplicate now
                // and then).
                if self.requests.is_empty() {
                    return;
                }
                let i = u.choose_index(self.requests.len()).unwrap_or(0);
                let (from, correlation) =
                    if u.arbitrary::<u8>().unwrap_or(0) % 6 == 0 { self.requests[i] } else { self.requests.remove(i) };
                let Ok(body) = arb::value::<Result<ResponseBody, WireError>>(u, &self.hints) else { return };
                let msg = Message::Response(Response { correlation, body });
                self.handle(Input::Message { from: Peer::Node(from), msg });
            }
            7 => {
                // Anything from anyone.
                let from = Peer::Node(NodeId(arb::number(u, &self.hints, 4) as u32));
                let Ok(msg) = arb::value::<Message>(u, &self.hints) else { return };
                self.handle(Input::Message { from, msg });
            }
            8 => {
                let peer = Peer::Node(NodeId(1 + arb::number(u, &self.hints, 3) as u32));
                let input = if u.arbitrary().unwrap_or(false) {
                    Input::Disconnected { peer }
                } else {
                    Input::Connected { peer }
                };
                self.handle(input);
            }
            9 | 10 => {
                if let Some(t) = self.producer.poll_timeout() {
                    self.now = self.now.max(t);
                }
                self.handle(Input::Timeout);
            }
            _ => {
                self.now = self.now + Duration::from_millis(arb::number(u, &self.hints, 10_000));
                self.handle(Input::Timeout);
            }
        }
    }

    /// No more answers: every open send must end by its deadline.
    fn finish(&mut self) {
        if !self.bounded {
            return;
        }
        for _ in 0..10_000 {
            if self.open.is_empty() {
                return;
            }
            let Some(t) = self.producer.poll_timeout() else {
                panic!("{} sends open and no deadline to wake the producer", self.open.len())
            };
            self.now = self.now.max(t);
            self.handle(Input::Timeout);
        }
        panic!("{} sends still open long after every deadline", self.open.len());
    }
}
