//! Retention by bytes and by time drops whole committed batches from the front of a
//! log, durably, and moves the log start.

mod support;

use mq_core::harness::Harness;
use mq_core::wire::{ErrorCode, OffsetSpec, RequestBody, ResponseBody, TopicConfig};
use mq_core::{Duration, Event, Offset, TopicPartition};
use support::*;

fn create_retained(h: &mut Harness, config: TopicConfig) {
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.drive();
    assert_eq!(ok(h, c), ResponseBody::TopicCreated);
}

#[test]
fn retention_by_bytes_keeps_the_newest_batches() {
    let mut h = Harness::single();
    let per_batch = values(&[&"x".repeat(100)]).size_bytes() as u64;
    create_retained(&mut h, TopicConfig { retention_bytes: Some(per_batch * 3), ..TopicConfig::new("t", 1) });
    for _ in 0..10 {
        produce_ok(&mut h, "t", 0, &[&"x".repeat(100)]);
    }
    h.advance(Duration::from_secs(6));
    h.drive();
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Earliest), Ok(Offset(7)));
    assert_eq!(fetch_values(&mut h, "t", 0, 7).len(), 3);
    let c = fetch(&mut h, "t", 0, 2, 1024);
    assert_eq!(err(&mut h, c).0, ErrorCode::OffsetOutOfRange);
    assert!(h.events().iter().any(|(_, _, e)| matches!(e, Event::LogStartAdvanced { log_start: Offset(7), .. })));
    // Durable: a restart keeps the new start.
    h.crash(1);
    h.restart(1);
    h.wait_ready();
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Earliest), Ok(Offset(7)));
    assert_eq!(h.store(1).logs[&TopicPartition::new("t", 0)].log_start(), Offset(7));
}

#[test]
fn retention_by_time_drops_batches_older_than_the_limit() {
    let mut h = Harness::single();
    create_retained(&mut h, TopicConfig { retention_time: Some(Duration::from_secs(60)), ..TopicConfig::new("t", 1) });
    produce_ok(&mut h, "t", 0, &["old-1", "old-2"]);
    h.advance(Duration::from_secs(50));
    produce_ok(&mut h, "t", 0, &["young"]);
    h.advance(Duration::from_secs(20));
    h.drive();
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Earliest), Ok(Offset(2)));
    assert_eq!(fetch_values(&mut h, "t", 0, 2), vec![(2, "young".into())]);
    h.advance(Duration::from_secs(60));
    h.drive();
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Earliest), Ok(Offset(3)));
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Latest), Ok(Offset(3)), "offsets are never reused");
}

#[test]
fn topics_without_retention_keep_everything() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    produce_ok(&mut h, "t", 0, &["a"]);
    h.advance(Duration::from_secs(3600));
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Earliest), Ok(Offset(0)));
}
