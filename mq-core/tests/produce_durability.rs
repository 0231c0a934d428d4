//! A produce is acknowledged only after the Persist carrying its batch completes,
//! and a crash loses exactly what was never persisted (DESIGN.md section 2,
//! "durability through outputs").

mod support;

use mq_core::harness::Harness;
use mq_core::wire::codec::StoredTail;
use mq_core::wire::{Acks, ResponseBody};
use mq_core::{Offset, TopicPartition};
use support::*;

#[test]
fn produce_is_not_acknowledged_until_its_persist_completes() {
    let mut h = Harness::single();
    create_ok(&mut h, "orders", 1);
    h.hold_persists(1, true);
    let c = produce(&mut h, "orders", 0, Acks::All, &["a", "b"]);
    h.advance(mq_core::Duration::from_secs(10));
    assert!(h.take_response(CLIENT, c).is_none(), "acked while its Persist is still pending");
    assert_eq!(h.pending_persists(1), 1);
    assert!(fetch_values(&mut h, "orders", 0, 0).is_empty(), "unpersisted records must not be readable");

    h.hold_persists(1, false);
    h.drive();
    assert!(matches!(ok(&mut h, c), ResponseBody::Produced { base_offset: Offset(0), .. }));
    assert_eq!(fetch_values(&mut h, "orders", 0, 0), vec![(0, "a".into()), (1, "b".into())]);
}

#[test]
fn acks_one_also_waits_for_the_persist() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    h.hold_persists(1, true);
    let c = produce(&mut h, "t", 0, Acks::Leader, &["x"]);
    h.advance(mq_core::Duration::from_secs(1));
    assert!(h.take_response(CLIENT, c).is_none());
    h.hold_persists(1, false);
    h.drive();
    assert!(matches!(ok(&mut h, c), ResponseBody::Produced { .. }));
}

#[test]
fn records_whose_persist_never_completed_are_gone_after_recover() {
    let mut h = Harness::single();
    create_ok(&mut h, "orders", 1);
    produce_ok(&mut h, "orders", 0, &["kept"]);
    h.hold_persists(1, true);
    let lost = produce(&mut h, "orders", 0, Acks::All, &["lost-1", "lost-2"]);
    h.advance(mq_core::Duration::from_millis(50));
    h.crash(1);
    h.restart(1);
    h.wait_ready();
    assert!(h.take_response(CLIENT, lost).is_none(), "the lost batch was never acknowledged");
    let log = h.node(1).log(&TopicPartition::new("orders", 0)).unwrap();
    assert_eq!(log.log_end(), Offset(1));
    assert_eq!(fetch_values(&mut h, "orders", 0, 0), vec![(0, "kept".into())]);
    // The next record reuses the offset the lost batch had taken.
    assert_eq!(produce_ok(&mut h, "orders", 0, &["after"]), Offset(1));
}

#[test]
fn acknowledged_records_survive_a_crash() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 2);
    for i in 0..20 {
        produce_ok(&mut h, "t", i % 2, &[&format!("v{i}")]);
    }
    h.crash(1);
    h.restart(1);
    h.wait_ready();
    let p0: Vec<String> = fetch_values(&mut h, "t", 0, 0).into_iter().map(|(_, v)| v).collect();
    let p1: Vec<String> = fetch_values(&mut h, "t", 1, 0).into_iter().map(|(_, v)| v).collect();
    assert_eq!(p0, (0..20).step_by(2).map(|i| format!("v{i}")).collect::<Vec<_>>());
    assert_eq!(p1, (1..20).step_by(2).map(|i| format!("v{i}")).collect::<Vec<_>>());
}

#[test]
fn one_persist_covers_every_request_that_arrived_during_the_previous_one() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    h.hold_persists(1, true);
    let first = produce(&mut h, "t", 0, Acks::All, &["1"]);
    let rest: Vec<_> = (0..5).map(|i| produce(&mut h, "t", 0, Acks::All, &[&format!("r{i}")])).collect();
    assert_eq!(h.pending_persists(1), 1, "the first batch's Persist is in flight; the rest wait");
    h.hold_persists(1, false);
    h.drive();
    for c in std::iter::once(first).chain(rest) {
        assert!(matches!(ok(&mut h, c), ResponseBody::Produced { .. }));
    }
    // Two Persists in all: the first batch, then the five others together.
    let store = h.store(1);
    let log = &store.logs[&TopicPartition::new("t", 0)];
    assert_eq!(log.read_batches().len(), 6);
}

#[test]
fn while_a_persist_is_in_flight_new_writes_wait_for_the_next_one() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    h.drive();
    h.hold_persists(1, true);
    produce(&mut h, "t", 0, Acks::All, &["1"]);
    assert_eq!(h.pending_persists(1), 1);
    assert_eq!(h.node(1).inflight_persists(), 1);
    produce(&mut h, "t", 0, Acks::All, &["2"]);
    produce(&mut h, "t", 0, Acks::All, &["3"]);
    assert_eq!(h.pending_persists(1), 1, "staged while a Persist is in flight");
    h.hold_persists(1, false);
    h.drive();
    assert_eq!(fetch_values(&mut h, "t", 0, 0).len(), 3);
}

#[test]
fn acks_zero_gets_no_reply_but_the_record_is_stored() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    let c = produce(&mut h, "t", 0, Acks::None, &["fire-and-forget"]);
    h.drive();
    assert!(h.take_response(CLIENT, c).is_none());
    assert_eq!(fetch_values(&mut h, "t", 0, 0), vec![(0, "fire-and-forget".into())]);
}

#[test]
fn a_torn_tail_is_dropped_on_restart_and_the_log_continues() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    produce_ok(&mut h, "t", 0, &["a", "b"]);
    h.crash(1);
    let tp = TopicPartition::new("t", 0);
    let whole = h.store(1).logs[&tp].bytes().to_vec();
    // Half a batch at the end, as a crash in the middle of a write leaves it.
    h.store_mut(1).logs.get_mut(&tp).unwrap().append_torn_bytes(&whole[..whole.len() / 2]);
    let reports = h.restart(1);
    h.wait_ready();
    assert_eq!(reports.len(), 1);
    assert!(matches!(reports[0].tail, StoredTail::Torn { .. }));
    assert_eq!(fetch_values(&mut h, "t", 0, 0), vec![(0, "a".into()), (1, "b".into())]);
    assert_eq!(produce_ok(&mut h, "t", 0, &["c"]), Offset(2));
    h.crash(1);
    assert!(h.restart(1).is_empty(), "the repaired log has a clean tail");
    h.wait_ready();
    assert_eq!(fetch_values(&mut h, "t", 0, 2), vec![(2, "c".into())]);
}

#[test]
fn a_corrupt_batch_and_everything_after_it_are_dropped_on_restart() {
    let mut h = Harness::single();
    create_ok(&mut h, "t", 1);
    produce_ok(&mut h, "t", 0, &["a"]);
    produce_ok(&mut h, "t", 0, &["b"]);
    h.crash(1);
    let tp = TopicPartition::new("t", 0);
    let len = h.store(1).logs[&tp].bytes().len();
    h.store_mut(1).logs.get_mut(&tp).unwrap().corrupt_byte(len - 1);
    let reports = h.restart(1);
    h.wait_ready();
    assert!(matches!(reports[0].tail, StoredTail::Corrupt { .. }));
    assert_eq!(fetch_values(&mut h, "t", 0, 0), vec![(0, "a".into())]);
}
