//! Reading: fetch by offset below the high watermark with a byte limit, and offset
//! lookups (earliest, latest, by time).

mod support;

use mq_core::harness::Harness;
use mq_core::wire::{Acks, ErrorCode, OffsetSpec, ResponseBody};
use mq_core::{Duration, Offset};
use support::*;

#[test]
fn fetch_returns_records_in_order_from_the_requested_offset() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    produce_ok(&mut h, "t", 0, &["a", "b", "c"]);
    produce_ok(&mut h, "t", 0, &["d"]);
    let got = fetch_values(&mut h, "t", 0, 1);
    assert_eq!(got, vec![(1, "b".into()), (2, "c".into()), (3, "d".into())]);
    assert!(fetch_values(&mut h, "t", 0, 4).is_empty(), "at the HW: nothing yet, not an error");
}

#[test]
fn fetch_never_returns_records_at_or_above_the_high_watermark() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    produce_ok(&mut h, "t", 0, &["committed"]);
    h.hold_persists(1, true);
    produce(&mut h, "t", 0, Acks::All, &["pending"]);
    let c = fetch(&mut h, "t", 0, 0, u32::MAX);
    match ok(&mut h, c) {
        ResponseBody::Fetched { high_watermark, batches, .. } => {
            assert_eq!(high_watermark, Offset(1));
            assert!(batches.iter().all(|b| b.end_offset() <= high_watermark));
        }
        other => panic!("{other:?}"),
    }
    // Offset 1 exists in memory but is not committed: an empty reply, not an error.
    assert!(fetch_values(&mut h, "t", 0, 1).is_empty());
}

#[test]
fn max_bytes_bounds_the_reply_but_at_least_one_batch_comes_back() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    for i in 0..5 {
        produce_ok(&mut h, "t", 0, &[&format!("{i}").repeat(100)]);
    }
    let c = fetch(&mut h, "t", 0, 0, 1);
    let ResponseBody::Fetched { batches, .. } = ok(&mut h, c) else { panic!() };
    assert_eq!(batches.len(), 1, "one batch even though it exceeds max_bytes");
    let c = fetch(&mut h, "t", 0, 0, 400);
    let ResponseBody::Fetched { batches, .. } = ok(&mut h, c) else { panic!() };
    assert!((2..5).contains(&batches.len()), "{} batches", batches.len());
}

#[test]
fn the_broker_caps_fetch_replies_whatever_the_client_asks() {
    let mut h = Harness::new(1, 0, |c| mq_core::NodeConfig { max_fetch_bytes: 300, ..c });
    h.wait_ready();
    create_ok(&mut h, "t", 1);
    for _ in 0..5 {
        produce_ok(&mut h, "t", 0, &[&"x".repeat(100)]);
    }
    let c = fetch(&mut h, "t", 0, 0, u32::MAX);
    let ResponseBody::Fetched { batches, .. } = ok(&mut h, c) else { panic!() };
    assert!(batches.len() < 5);
}

#[test]
fn offsets_outside_the_log_are_out_of_range_with_the_valid_range_named() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    produce_ok(&mut h, "t", 0, &["a"]);
    let c = fetch(&mut h, "t", 0, 99, 1024);
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::OffsetOutOfRange);
    assert!(msg.contains("99") && msg.contains("0..1"), "{msg}");
    let c = fetch(&mut h, "t", 0, u64::MAX, 1024);
    assert_eq!(err(&mut h, c).0, ErrorCode::OffsetOutOfRange);
}

#[test]
fn list_offsets_gives_earliest_latest_and_by_time() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Latest), Ok(Offset(0)));
    produce_ok(&mut h, "t", 0, &["a", "b"]);
    h.advance(Duration::from_secs(10));
    let t_mid = h.now().as_millis();
    produce_ok(&mut h, "t", 0, &["c"]);
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Earliest), Ok(Offset(0)));
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Latest), Ok(Offset(3)));
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Timestamp(0)), Ok(Offset(0)));
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Timestamp(t_mid)), Ok(Offset(2)));
    assert_eq!(list_offset(&mut h, "t", 0, OffsetSpec::Timestamp(u64::MAX)), Ok(Offset(3)));
    assert_eq!(list_offset(&mut h, "nope", 0, OffsetSpec::Latest).unwrap_err().code, ErrorCode::UnknownTopic);
}
