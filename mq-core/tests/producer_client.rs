//! The producer client (`mq_core::client::Producer`) against in-process brokers:
//! batches, idempotent retries through a leader failover, order per partition.

mod support;

use mq_core::client::{ProduceOutcome, Producer, ProducerConfig, ProducerOutput, SendId};
use mq_core::harness::Harness;
use mq_core::wire::{Acks, Message, Record, RequestBody, ResponseBody, TopicConfig};
use mq_core::{
    ClientId, CorrelationId, Duration, Input, NodeConfig, NodeId, Offset, PartitionId, Peer, TopicPartition,
};
use std::collections::BTreeMap;
use support::{ok, CLIENT};

const PRODUCER: u64 = 7;

/// Moves the producer's requests into the harness and the brokers' answers back,
/// for `d` of harness time, in steps of 5 ms; answers are lost while `lose` holds.
fn pump(
    h: &mut Harness,
    p: &mut Producer,
    routes: &mut BTreeMap<CorrelationId, u32>,
    done: &mut Vec<(SendId, ProduceOutcome)>,
    d: Duration,
    lose: bool,
) {
    let until = h.now() + d;
    while h.now() < until {
        while let Some(out) = p.poll_output() {
            match out {
                ProducerOutput::Send { to: Peer::Node(n), msg } => {
                    if let Message::Request(r) = &msg {
                        routes.insert(r.correlation, n.0);
                    }
                    if h.is_running(n.0) {
                        h.input(n.0, Input::Message { from: Peer::Client(ClientId(PRODUCER)), msg });
                    } else {
                        p.handle(h.now(), Input::Disconnected { peer: Peer::Node(n) });
                    }
                }
                ProducerOutput::Send { .. } => {}
                ProducerOutput::Done { id, outcome } => done.push((id, outcome)),
            }
        }
        h.advance(Duration::from_millis(5));
        for resp in h.take_responses(PRODUCER) {
            let from = NodeId(routes.remove(&resp.correlation).expect("a response to a request"));
            if lose {
                continue;
            }
            p.handle(h.now(), Input::Message { from: Peer::Node(from), msg: Message::Response(resp) });
        }
        if p.poll_timeout().is_some_and(|t| t <= h.now()) {
            p.handle(h.now(), Input::Timeout);
        }
    }
}

#[test]
fn an_idempotent_producer_retrying_through_a_leader_crash_writes_each_send_once_in_order() {
    let mut h = Harness::new(3, 5, |c| c);
    h.wait_ready();
    let config = TopicConfig { replication_factor: 3, min_insync_replicas: 2, ..TopicConfig::new("t", 1) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    let tp = TopicPartition::new("t", 0);

    let config = ProducerConfig::new([NodeId(1), NodeId(2), NodeId(3)])
        .request_timeout(Duration::from_millis(500))
        .delivery_timeout(Duration::from_secs(30))
        .max_attempts(100);
    let mut p = Producer::new(config, 11).unwrap();
    let (mut routes, mut done) = (BTreeMap::new(), Vec::new());
    let mut sent = Vec::new();
    for i in 0..40 {
        let value = format!("m{i:02}");
        let id = p.send(h.now(), "t", PartitionId(0), Acks::All, vec![Record::from_value(value.clone())]).unwrap();
        sent.push((id, value));
        // Answers to sends 5 to 9 are lost: written, but the producer must retry.
        pump(&mut h, &mut p, &mut routes, &mut done, Duration::from_millis(10), (5..10).contains(&i));
        if i == 15 {
            let leader = support::leader_of(&h, &tp).expect("a leader");
            h.crash(leader);
        }
    }
    pump(&mut h, &mut p, &mut routes, &mut done, Duration::from_secs(20), false);
    assert_eq!(done.len(), sent.len(), "every send has an outcome");
    assert!(done.iter().all(|(_, o)| matches!(o, ProduceOutcome::Ok { .. })), "{done:?}");
    assert!(p.retries() > 0, "the crash made the producer retry");

    let leader = support::leader_of(&h, &tp).expect("a leader after the crash");
    let values = support::log_values(&h, leader, &tp);
    let expected: Vec<String> = sent.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(values, expected, "each send exactly once, in send order");
    for (id, outcome) in &done {
        let ProduceOutcome::Ok { base_offset, .. } = outcome else { unreachable!() };
        let value = &sent.iter().find(|(s, _)| s == id).unwrap().1;
        assert_eq!(&values[base_offset.0 as usize], value, "acknowledged at its offset");
    }
}

/// Moves the producer's outputs into the harness, except produce requests, which
/// are kept in `held` (to be delivered later, in another order).
fn hold_produces(
    h: &mut Harness,
    p: &mut Producer,
    routes: &mut BTreeMap<CorrelationId, u32>,
    held: &mut Vec<(u32, Message)>,
) {
    while let Some(out) = p.poll_output() {
        if let ProducerOutput::Send { to: Peer::Node(n), msg } = out {
            if let Message::Request(r) = &msg {
                routes.insert(r.correlation, n.0);
                if matches!(r.body, RequestBody::Produce { .. }) {
                    held.push((n.0, msg));
                    continue;
                }
            }
            h.input(n.0, Input::Message { from: Peer::Client(ClientId(PRODUCER)), msg });
        }
    }
    h.advance(Duration::from_millis(5));
    for resp in h.take_responses(PRODUCER) {
        let from = NodeId(routes.remove(&resp.correlation).expect("a response to a request"));
        p.handle(h.now(), Input::Message { from: Peer::Node(from), msg: Message::Response(resp) });
    }
}

#[test]
fn a_new_producers_batches_reordered_on_the_way_to_a_leader_past_retention_land_in_send_order() {
    let mut h = Harness::new(1, 5, |c| NodeConfig { retention_check_interval: Duration::from_millis(500), ..c });
    h.wait_ready();
    let config = TopicConfig { retention_time: Some(Duration::from_secs(2)), ..TopicConfig::new("t", 1) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    let tp = TopicPartition::new("t", 0);
    support::produce_ok(&mut h, "t", 0, &["old"]);
    h.advance(Duration::from_secs(4));
    assert_eq!(h.node(1).log(&tp).unwrap().log_start(), Offset(1), "retention moved the log start");

    let config = ProducerConfig::new([NodeId(1)]).request_timeout(Duration::from_millis(500)).max_attempts(100);
    let mut p = Producer::new(config, 11).unwrap();
    let (mut routes, mut done, mut held) = (BTreeMap::new(), Vec::new(), Vec::new());
    let first = p.send(h.now(), "t", PartitionId(0), Acks::All, vec![Record::from_value("a")]).unwrap();
    while held.is_empty() {
        hold_produces(&mut h, &mut p, &mut routes, &mut held);
    }
    let second = p.send(h.now(), "t", PartitionId(0), Acks::All, vec![Record::from_value("b")]).unwrap();
    while held.len() < 2 {
        hold_produces(&mut h, &mut p, &mut routes, &mut held);
    }
    // The second batch (sequence 1) reaches the leader before the first.
    for (to, msg) in held.drain(..).rev() {
        h.input(to, Input::Message { from: Peer::Client(ClientId(PRODUCER)), msg });
    }
    // (Less than the retention time, so that the log still holds both.)
    pump(&mut h, &mut p, &mut routes, &mut done, Duration::from_secs(1), false);
    assert!(done.iter().all(|(_, o)| matches!(o, ProduceOutcome::Ok { .. })), "{done:?}");
    assert_eq!(done.len(), 2);
    assert_eq!(support::log_values(&h, 1, &tp), ["a", "b"], "each send once, in send order");
    let offset = |id: SendId| match done.iter().find(|(s, _)| *s == id) {
        Some((_, ProduceOutcome::Ok { base_offset, .. })) => *base_offset,
        other => panic!("{other:?}"),
    };
    assert_eq!((offset(first), offset(second)), (Offset(1), Offset(2)));
}
