//! The `consumer` target: a client consumer fed arbitrary broker answers,
//! timeouts and closed connections. The first byte picks the machine:
//!
//! - the partition [`Consumer`]: checks that records come out in strictly
//!   increasing offset order, never behind its position, and that a skip moves
//!   forward;
//! - the [`GroupConsumer`] (any group mode, pull or push): the application also
//!   polls records and acks, nacks, rejects, seeks and closes, on records it was
//!   given or on any offset. Checks that `Closed` is reported at most once and,
//!   after `close`, that time alone brings it (the fuzzer stops answering).
//!
//! Both: `check_invariants` after every input; only requests, only to brokers.

use crate::arb::{self, Hints};
use crate::Steps;
use arbitrary::Unstructured;
use mq_core::client::{
    Consumer, ConsumerConfig, ConsumerOutput, Delivery, GroupConsumer, GroupConsumerConfig, GroupConsumerOutput,
    GroupEvent,
};
use mq_core::group::GroupMode;
use mq_core::wire::{GroupSettings, Message, Response, ResponseBody, SeekTo, WireError};
use mq_core::{CorrelationId, Duration, Input, Instant, NodeId, Offset, Peer, TopicPartition};

const MAX_STEPS: usize = 200;

/// Requests a client sent: (broker, correlation), the latest 32.
#[derive(Default)]
struct Requests(Vec<(NodeId, CorrelationId)>);

impl Requests {
    fn sent(&mut self, to: Peer, msg: &Message, hints: &mut Hints) {
        // Brokers named by metadata answers count too, so any broker id.
        let Peer::Node(n) = to else { panic!("a consumer request to a client: {to}") };
        let Message::Request(req) = msg else { panic!("a consumer sent a non-request: {msg:?}") };
        self.0.push((n, req.correlation));
        if self.0.len() > 32 {
            self.0.remove(0);
        }
        hints.collect(msg);
    }

    /// An input for the fuzzer's choice of answer, to a request made or not.
    fn answer(&mut self, u: &mut Unstructured<'_>, hints: &Hints) -> Option<Input> {
        let (from, correlation) = if !self.0.is_empty() && u.arbitrary::<u8>().unwrap_or(0) % 8 != 0 {
            let i = u.choose_index(self.0.len()).unwrap_or(0);
            // Kept now and then: a duplicate answer, or a second push.
            if u.arbitrary::<u8>().unwrap_or(0) % 4 == 0 {
                self.0[i]
            } else {
                self.0.remove(i)
            }
        } else {
            (NodeId(arb::number(u, hints, 4) as u32), CorrelationId(arb::number(u, hints, u64::MAX)))
        };
        let body = arb::value::<Result<ResponseBody, WireError>>(u, hints).ok()?;
        Some(Input::Message { from: Peer::Node(from), msg: Message::Response(Response { correlation, body }) })
    }
}

/// Time moves to the machine's deadline, or by an arbitrary step.
fn advance(u: &mut Unstructured<'_>, hints: &Hints, now: &mut Instant, deadline: Option<Instant>) {
    if u.arbitrary().unwrap_or(false) {
        if let Some(t) = deadline {
            *now = (*now).max(t);
        }
    } else {
        *now = *now + Duration::from_millis(arb::number(u, hints, 20_000));
    }
}

fn disconnect(u: &mut Unstructured<'_>, hints: &Hints) -> Input {
    let peer = Peer::Node(NodeId(1 + arb::number(u, hints, 3) as u32));
    if u.arbitrary().unwrap_or(false) {
        Input::Disconnected { peer }
    } else {
        Input::Connected { peer }
    }
}

/// Runs one input sequence.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let setup: u16 = u.arbitrary().unwrap_or(0);
    let brokers: Vec<NodeId> = (1..=1 + u32::from(setup % 3)).map(NodeId).collect();
    if setup & 0x100 == 0 {
        run_partition(&mut u, setup, brokers);
    } else {
        run_group(&mut u, setup, brokers);
    }
}

fn run_partition(u: &mut Unstructured<'_>, setup: u16, brokers: Vec<NodeId>) {
    let mut hints = Hints::default();
    let start = Offset(arb::number(u, &hints, u64::MAX));
    let config = ConsumerConfig {
        brokers,
        start,
        max_bytes: arb::number(u, &hints, u64::from(u32::MAX)) as u32,
        ..ConsumerConfig::new(TopicPartition::new("t", u32::from(setup >> 4) % 3))
    };
    let mut consumer = Consumer::new(config, u64::from(setup));
    let mut requests = Requests::default();
    let mut now = Instant::ZERO;
    let mut steps = Steps::new(MAX_STEPS);
    while steps.next(u) {
        let choice: u8 = u.arbitrary().unwrap_or(0);
        let input = match choice % 8 {
            0..=4 => match requests.answer(u, &hints) {
                Some(input) => input,
                None => continue,
            },
            5 => disconnect(u, &hints),
            _ => {
                advance(u, &hints, &mut now, consumer.poll_timeout());
                Input::Timeout
            }
        };
        let position = consumer.position();
        consumer.handle(now, input);
        consumer.check_invariants();
        let outs: Vec<ConsumerOutput> = std::iter::from_fn(|| consumer.poll_output()).collect();
        // The position goes back only to a truncated log's end, and says so.
        let truncated_to = outs.iter().find_map(|o| match o {
            ConsumerOutput::Truncated { to, .. } => Some(*to),
            _ => None,
        });
        assert!(
            consumer.position() >= position || truncated_to == Some(consumer.position()),
            "the position went back from {position} to {}",
            consumer.position()
        );
        for out in outs {
            match out {
                ConsumerOutput::Send { to, msg } => requests.sent(to, &msg, &mut hints),
                ConsumerOutput::Records { records, .. } => {
                    // The consumer hands on a reply's records as the broker sent them
                    // (from its position on), so that a simulated broker's bug stays
                    // visible to the checker: a forged reply with overlapping batches
                    // repeats offsets. What the consumer itself promises: nothing
                    // behind its position, and a position that never goes back.
                    for (offset, _) in &records {
                        assert!(*offset >= position, "record {offset} behind the position {position}");
                    }
                }
                ConsumerOutput::Skipped { from, to } => {
                    assert!(to > from, "a skip from {from} back to {to}");
                }
                ConsumerOutput::Truncated { from, to } => {
                    assert!(to < from, "a truncation from {from} forward to {to}");
                }
                ConsumerOutput::Error(_) => {}
            }
        }
    }
}

fn run_group(u: &mut Unstructured<'_>, setup: u16, brokers: Vec<NodeId>) {
    let mut hints = Hints::default();
    let topics: &[&str] = if setup & 0x200 == 0 { &["t"] } else { &["t", "u"] };
    let mode = arb::value::<GroupMode>(u, &hints).unwrap_or(GroupMode::Shared);
    let settings = arb::value::<GroupSettings>(u, &hints).unwrap_or_default();
    let delivery = if setup & 0x400 == 0 {
        Delivery::Pull { max_records: 1 + u32::from(setup >> 11), max_wait: Duration::from_millis(100) }
    } else {
        Delivery::Push { max_records: 1 + u32::from(setup >> 11), prefetch: 1 + u32::from(setup >> 12) }
    };
    let config = GroupConsumerConfig {
        mode,
        settings,
        delivery,
        request_timeout: Duration::from_millis(500),
        join_timeout: Duration::from_secs(2),
        max_pending_acks: 8,
        max_buffered_records: 16,
        ..GroupConsumerConfig::new(brokers, "g", topics.iter().copied())
    };
    let Ok(mut consumer) = GroupConsumer::new(config, u64::from(setup)) else { return };
    let mut requests = Requests::default();
    let mut now = Instant::ZERO;
    let mut given: Vec<(TopicPartition, Offset)> = Vec::new();
    let mut closing = false;
    let mut closed = false;
    let mut steps = Steps::new(MAX_STEPS);
    let drain = |consumer: &mut GroupConsumer, requests: &mut Requests, hints: &mut Hints, closed: &mut bool| {
        consumer.check_invariants();
        while let Some(GroupConsumerOutput::Send { to, msg }) = consumer.poll_output() {
            requests.sent(to, &msg, hints);
        }
        while let Some(e) = consumer.poll_event() {
            if e == GroupEvent::Closed {
                assert!(!*closed, "Closed reported twice");
                *closed = true;
            }
        }
    };
    while steps.next(u) {
        let choice: u8 = u.arbitrary().unwrap_or(0);
        match choice % 12 {
            0..=4 => {
                let Some(input) = requests.answer(u, &hints) else { continue };
                consumer.handle(now, input);
            }
            5 => consumer.handle(now, disconnect(u, &hints)),
            6 | 7 => {
                advance(u, &hints, &mut now, consumer.poll_timeout());
                consumer.handle(now, Input::Timeout);
            }
            8 => {
                while let Some(r) = consumer.poll_record() {
                    hints.number(r.offset.0);
                    given.push((r.tp, r.offset));
                }
                given.truncate(64);
            }
            9 | 10 => {
                let (tp, offset) = if !given.is_empty() && u.arbitrary::<u8>().unwrap_or(0) % 4 != 0 {
                    given[u.choose_index(given.len()).unwrap_or(0)].clone()
                } else {
                    let Ok(tp) = arb::value::<TopicPartition>(u, &hints) else { continue };
                    (tp, Offset(arb::number(u, &hints, u64::MAX)))
                };
                let _ = match u.arbitrary::<u8>().unwrap_or(0) % 6 {
                    0 | 1 => consumer.ack(now, &tp, offset),
                    2 => consumer.ack_up_to(now, &tp, offset),
                    3 => consumer.nack(now, &tp, offset, Duration::from_millis(arb::number(u, &hints, 10_000))),
                    4 => consumer.reject(now, &tp, offset),
                    _ => {
                        let to = arb::value::<SeekTo>(u, &hints).unwrap_or(SeekTo::Offset(offset));
                        consumer.seek(now, &tp, to)
                    }
                };
            }
            _ => {
                closing = true;
                consumer.close(now, Duration::from_millis(arb::number(u, &hints, 5_000)));
            }
        }
        drain(&mut consumer, &mut requests, &mut hints, &mut closed);
    }
    if closing {
        // No more answers: the close deadline alone ends it.
        for _ in 0..10_000 {
            if closed {
                return;
            }
            let Some(t) = consumer.poll_timeout() else { panic!("closing with no deadline to wake the consumer") };
            now = now.max(t);
            consumer.handle(now, Input::Timeout);
            drain(&mut consumer, &mut requests, &mut hints, &mut closed);
        }
        panic!("close never finished");
    }
}
