//! Topic administration on a single-node cluster: create, list, delete, and the
//! errors a user can act on.

mod support;

use mq_core::harness::Harness;
use mq_core::wire::{Acks, ErrorCode, RequestBody, ResponseBody, TopicConfig};
use mq_core::Duration;
use support::*;

fn create_with(h: &mut Harness, config: TopicConfig) -> mq_core::CorrelationId {
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.drive();
    c
}

#[test]
fn created_topics_are_listed_with_their_partitions() {
    let mut h = Harness::single();
    create_ok(&mut h, "orders", 3);
    create_ok(&mut h, "audit", 1);
    let c = h.request(CLIENT, 1, RequestBody::ListTopics);
    let ResponseBody::Topics(topics) = ok(&mut h, c) else { panic!("expected Topics") };
    let names: Vec<&str> = topics.iter().map(|t| t.config.name.as_str()).collect();
    assert_eq!(names, vec!["audit", "orders"]);
    let orders = &topics[1];
    assert_eq!(orders.partitions.len(), 3);
    assert!(orders
        .partitions
        .iter()
        .all(|p| p.leader == Some(mq_core::NodeId(1)) && p.isr == vec![mq_core::NodeId(1)]));
}

#[test]
fn a_topic_becomes_visible_only_once_its_creation_is_committed() {
    let mut h = Harness::single();
    h.hold_persists(1, true);
    let c = create(&mut h, "t", 1);
    let p = produce(&mut h, "t", 0, Acks::All, &["early"]);
    assert_eq!(err(&mut h, p).0, ErrorCode::UnknownTopic);
    assert!(h.take_response(CLIENT, c).is_none());
    // A second create of the same name while the first is in flight is refused,
    // but only once the first committed: the refusal read the proposed creation.
    let again = create(&mut h, "t", 1);
    h.drive();
    assert!(h.take_response(CLIENT, again).is_none(), "TopicExists before the creation committed");
    h.hold_persists(1, false);
    h.drive();
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    assert_eq!(err(&mut h, again).0, ErrorCode::TopicExists);
    assert!(h.node(1).topic_names().any(|n| n == "t"));
    // Durable: the metadata log holds it across a restart.
    h.crash(1);
    h.restart(1);
    h.wait_ready();
    assert!(h.node(1).topic_names().any(|n| n == "t"));
}

/// Seed 1000900: the controller answered a retried create `TopicExists` from
/// a creation it had proposed but not made durable; the crash that followed
/// lost the creation, and the admin had been told its topic existed.
#[test]
fn a_refusal_read_from_a_creation_a_crash_then_loses_is_never_sent() {
    let mut h = Harness::single();
    h.hold_persists(1, true);
    let first = create(&mut h, "t", 1);
    let again = create(&mut h, "t", 1);
    h.drive();
    assert!(h.take_response(CLIENT, first).is_none() && h.take_response(CLIENT, again).is_none());
    h.crash(1);
    h.restart(1);
    h.wait_ready();
    assert!(h.take_response(CLIENT, again).is_none(), "the refusal outlived the creation it read");
    assert!(!h.node(1).topic_names().any(|n| n == "t"), "the creation was never durable");
    create_ok(&mut h, "t", 1);
}

#[test]
fn creating_an_existing_topic_fails_with_topic_exists() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    let c = create(&mut h, "t", 2);
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::TopicExists);
    assert!(msg.contains("t"), "{msg}");
}

#[test]
fn invalid_topic_settings_are_refused_with_a_reason() {
    let mut h = Harness::single();
    let cases = [
        (TopicConfig::new("", 1), ErrorCode::InvalidRequest, "invalid topic name"),
        (TopicConfig::new("bad/name", 1), ErrorCode::InvalidRequest, "invalid topic name"),
        (TopicConfig::new("x".repeat(250), 1), ErrorCode::InvalidRequest, "invalid topic name"),
        (TopicConfig::new("zero", 0), ErrorCode::InvalidConfig, "partitions"),
        (
            TopicConfig { replication_factor: 3, ..TopicConfig::new("rf", 1) },
            ErrorCode::InvalidConfig,
            "replication factor",
        ),
        (
            TopicConfig { min_insync_replicas: 2, ..TopicConfig::new("isr", 1) },
            ErrorCode::InvalidConfig,
            "min_insync_replicas",
        ),
        (TopicConfig { retention_bytes: Some(0), ..TopicConfig::new("ret", 1) }, ErrorCode::InvalidConfig, "retention"),
    ];
    for (config, code, needle) in cases {
        let c = create_with(&mut h, config.clone());
        let (got, msg) = err(&mut h, c);
        assert_eq!(got, code, "{config:?}");
        assert!(msg.contains(needle), "message {msg:?} should mention {needle:?}");
    }
    assert_eq!(h.node(1).topic_names().count(), 0, "nothing was created");
}

#[test]
fn topic_and_partition_limits_are_enforced() {
    let mut h = Harness::new(1, 0, |c| mq_core::NodeConfig { max_topics: 2, max_partitions_per_topic: 4, ..c });
    h.wait_ready();
    create_ok(&mut h, "a", 4);
    let c = create(&mut h, "big", 5);
    assert_eq!(err(&mut h, c).0, ErrorCode::InvalidConfig);
    create_ok(&mut h, "b", 1);
    let c = create(&mut h, "c", 1);
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::InvalidConfig);
    assert!(msg.contains("maximum"), "{msg}");
}

#[test]
fn deleting_a_topic_removes_its_records_durably() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 2);
    produce_ok(&mut h, "t", 1, &["a"]);
    let c = h.request(CLIENT, 1, RequestBody::DeleteTopic { topic: "t".into() });
    h.drive();
    assert_eq!(ok(&mut h, c), ResponseBody::TopicDeleted);
    // Refused once the deletion is applied.
    let p = produce(&mut h, "t", 0, Acks::All, &["late"]);
    assert_eq!(err(&mut h, p).0, ErrorCode::UnknownTopic);
    assert!(h.store(1).logs.is_empty(), "the partition logs are gone from the store");
    h.crash(1);
    h.restart(1);
    h.wait_ready();
    assert_eq!(h.node(1).topic_names().count(), 0);
    // The name can be used again, starting from offset 0.
    create_ok(&mut h, "t", 1);
    assert_eq!(produce_ok(&mut h, "t", 0, &["new"]), mq_core::Offset(0));
}

#[test]
fn unknown_topics_and_partitions_get_clear_errors() {
    let mut h = Harness::single();
    let c = h.request(CLIENT, 1, RequestBody::DeleteTopic { topic: "nope".into() });
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::UnknownTopic);
    assert!(msg.contains("nope") && msg.contains("create"), "{msg}");
    create_ok(&mut h, "t", 2);
    let p = produce(&mut h, "t", 2, Acks::All, &["x"]);
    let (code, msg) = err(&mut h, p);
    assert_eq!(code, ErrorCode::UnknownPartition);
    assert!(msg.contains("0..2"), "{msg}");
}

/// A broker waits for an admin request it forwarded for `admin_timeout`, not
/// for `controller_request_timeout`, the pace of its own lifecycle calls: with
/// a 10 ms controller request timeout and controllers that answer in 20 ms or
/// more, every forwarded creation was answered `Timeout`, retried, and the
/// simulator's set-up never finished (seed 1002065, nothing committed).
#[test]
fn a_forwarded_admin_request_waits_the_admin_timeout_not_the_controller_request_timeout() {
    let mut h = Harness::new(3, 15, |c| mq_core::NodeConfig {
        controller_request_timeout: Duration::from_millis(20),
        admin_timeout: Duration::from_secs(5),
        ..c
    });
    h.wait_ready();
    h.network_delay = Duration::from_millis(30);
    let controller = h.running().into_iter().find(|id| h.node(*id).is_active_controller()).unwrap();
    let other = h.running().into_iter().find(|id| *id != controller).unwrap();
    let c = h.request(CLIENT, other, RequestBody::CreateTopic(TopicConfig::new("orders", 1)));
    h.advance(Duration::from_secs(2));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
}
