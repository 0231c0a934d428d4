//! Bad input gets a clear error or a closed connection, changes nothing and never
//! panics the broker (DESIGN.md section 2, "errors versus bugs").

mod support;

use mq_core::harness::Harness;
use mq_core::wire::{Acks, BatchKind, ErrorCode, Message, PeerMessage, RequestBody, Response, ResponseBody};
use mq_core::{ClientId, CorrelationId, Input, Instant, Node, NodeConfig, NodeId, Output, PartitionId, Peer};
use support::*;

#[test]
fn oversized_batches_are_refused_with_the_limit_named() {
    let mut h = Harness::new(1, 0, |c| NodeConfig { max_batch_bytes: 1000, ..c });
    h.wait_ready();
    create_ok(&mut h, "t", 1);
    let big = "x".repeat(2000);
    let c = produce(&mut h, "t", 0, Acks::All, &[&big]);
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::RecordTooLarge);
    assert!(msg.contains("max_batch_bytes") && msg.contains("1000"), "{msg}");
    h.drive();
    assert!(fetch_values(&mut h, "t", 0, 0).is_empty());
}

#[test]
fn empty_and_control_batches_from_clients_are_refused() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    let c = produce(&mut h, "t", 0, Acks::All, &[]);
    assert_eq!(err(&mut h, c).0, ErrorCode::InvalidRequest);
    let mut batch = values(&["sneaky"]);
    batch.kind = BatchKind::Control;
    let c = h.request(
        CLIENT,
        1,
        RequestBody::Produce { topic: "t".into(), partition: PartitionId(0), acks: Acks::All, batch },
    );
    assert_eq!(err(&mut h, c).0, ErrorCode::InvalidRequest);
    h.drive();
    assert!(fetch_values(&mut h, "t", 0, 0).is_empty());
}

#[test]
fn a_full_write_buffer_answers_backpressure_instead_of_growing() {
    let mut h = Harness::new(1, 0, |c| NodeConfig { max_pending_write_bytes: 1000, ..c });
    h.wait_ready();
    create_ok(&mut h, "t", 1);
    h.hold_persists(1, true);
    let first = produce(&mut h, "t", 0, Acks::All, &[&"a".repeat(600)]);
    let second = produce(&mut h, "t", 0, Acks::All, &[&"b".repeat(600)]);
    let (code, _) = err(&mut h, second);
    assert_eq!(code, ErrorCode::Backpressure);
    assert!(code.is_retriable());
    h.hold_persists(1, false);
    h.drive();
    assert!(matches!(ok(&mut h, first), ResponseBody::Produced { .. }));
    // Room again once the Persist completed.
    produce_ok(&mut h, "t", 0, &[&"c".repeat(600)]);
}

#[test]
fn a_response_sent_to_a_broker_closes_that_connection_only() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    let bogus = Message::Response(Response { correlation: CorrelationId(9), body: Ok(ResponseBody::TopicCreated) });
    h.input(1, Input::Message { from: Peer::Client(ClientId(66)), msg: bogus });
    assert_eq!(h.closed().len(), 1);
    assert_eq!(h.closed()[0].1, Peer::Client(ClientId(66)));
    // Other clients are unaffected.
    produce_ok(&mut h, "t", 0, &["fine"]);
}

#[test]
fn absurd_offsets_and_partitions_are_errors_not_panics() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    let c = fetch(&mut h, "t", u32::MAX, u64::MAX, u32::MAX);
    assert_eq!(err(&mut h, c).0, ErrorCode::UnknownPartition);
    let c = fetch(&mut h, "t", 0, u64::MAX, 0);
    assert_eq!(err(&mut h, c).0, ErrorCode::OffsetOutOfRange);
}

/// Found by the `node` fuzz target: a metadata answer naming a controller that is
/// not a voter (broker 0) made a broker send its controller requests there.
#[test]
fn a_controller_hint_naming_no_voter_is_ignored() {
    let config = NodeConfig { node_id: NodeId(2), cluster_size: 3, voters: vec![NodeId(1)], ..NodeConfig::default() };
    let mut node = Node::new(config, 0);
    let hint = PeerMessage::MetadataEntries { entries: vec![], commit: 0, leader: Some(NodeId(0)) };
    node.handle(Instant::ZERO, Input::Message { from: Peer::Node(NodeId(1)), msg: Message::Peer(hint) });
    let mut now = Instant::ZERO;
    let mut sent_to = std::collections::BTreeSet::new();
    for _ in 0..50 {
        while let Some(out) = node.poll_output() {
            if let Output::Send { to: Peer::Node(n), .. } = out {
                sent_to.insert(n);
            }
        }
        now = node.poll_timeout().map_or(now, |t| t.max(now));
        node.handle(now, Input::Timeout);
    }
    assert_eq!(sent_to.into_iter().collect::<Vec<_>>(), vec![NodeId(1)]);
}
