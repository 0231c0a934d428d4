//! Unit and property tests of [`super::Cursor`] (docs/consumers.md section 6).

use super::*;
use crate::group::assign::Assignor;
use crate::ids::{Generation, LeaderEpoch, TopicPartition};
use crate::time::Duration;
use proptest::prelude::*;

const M1: MemberId = MemberId(1);
const M2: MemberId = MemberId(2);
const M3: MemberId = MemberId(3);

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn gen(n: u32) -> GroupGeneration {
    GroupGeneration { coordinator_epoch: LeaderEpoch(1), generation: Generation(n) }
}

fn view(member: MemberId, generation: GroupGeneration, mode: GroupMode, members: &[(MemberId, u32)]) -> GroupView {
    GroupView {
        group: "g".into(),
        member,
        generation,
        mode,
        settings: GroupSettings { ack_timeout: Duration::from_millis(100), max_deliveries: 3, ..Default::default() },
        members: members.to_vec(),
    }
}

fn rec(v: &str) -> Record {
    Record::from_value(Bytes::copy_from_slice(v.as_bytes()))
}

/// A committed log of `batches`, each appended as one batch.
fn log_of(batches: Vec<RecordBatch>) -> PartitionLog {
    let mut log = PartitionLog::new(TopicPartition::new("t", 0));
    for b in batches {
        log.append(b, LeaderEpoch(1), 0);
    }
    log.mark_persisted(log.log_end());
    log.advance_high_watermark(log.log_end());
    log
}

fn data(n: usize) -> RecordBatch {
    RecordBatch::new((0..n).map(|i| rec(&format!("v{i}"))).collect())
}

fn offsets(d: &BTreeMap<MemberId, Vec<DeliveredRecord>>, m: MemberId) -> Vec<u64> {
    d.get(&m).map(|v| v.iter().map(|r| r.offset.0).collect()).unwrap_or_default()
}

fn room(entries: &[(MemberId, usize)]) -> BTreeMap<MemberId, usize> {
    entries.iter().copied().collect()
}

fn exclusive() -> GroupMode {
    GroupMode::Exclusive(Assignor::Sticky)
}

fn started(v: &GroupView, log: &PartitionLog) -> Cursor {
    let mut c = Cursor::start(v, log);
    c.observe(v, log, t(0)).unwrap();
    c
}

#[test]
fn exclusive_delivers_in_offset_order_and_skips_leased_records() {
    let log = log_of(vec![data(5)]);
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = started(&v, &log);
    let d = c.deal(&log, t(0), &room(&[(M1, 2)]));
    assert_eq!(offsets(&d, M1), vec![0, 1]);
    let d = c.deal(&log, t(1), &room(&[(M1, 10)]));
    assert_eq!(offsets(&d, M1), vec![2, 3, 4], "leased records are not delivered twice");
    assert!(c.deal(&log, t(2), &room(&[(M1, 10)])).is_empty());
    c.check_invariants();
}

#[test]
fn an_expired_lease_is_delivered_again_with_its_count() {
    let log = log_of(vec![data(1)]);
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = started(&v, &log);
    c.deal(&log, t(0), &room(&[(M1, 1)]));
    assert_eq!(c.poll_timeout(t(0)), Some(t(100)));
    assert!(c.expire(t(100)).is_empty());
    let d = c.deal(&log, t(100), &room(&[(M1, 1)]));
    assert_eq!(d[&M1][0].delivery, 2);
}

#[test]
fn control_and_filtered_records_are_skipped_and_folded_into_the_prefix() {
    let mut tagged = rec("x");
    tagged.tags = vec!["blue".into()];
    let control = encode_cursor("other", &AckSet::new(Offset(0)), 0);
    let log = log_of(vec![data(1), control, RecordBatch::new(vec![rec("untagged"), tagged])]);
    let mut v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    v.settings.filter = vec!["blue".into()];
    let mut c = started(&v, &log);
    let d = c.deal(&log, t(0), &room(&[(M1, 10)]));
    assert_eq!(offsets(&d, M1), vec![3], "only the tagged data record");
    assert_eq!(c.acks().prefix(), Offset(3), "offsets 0 to 2 are not for the group");
}

#[test]
fn the_prefix_moves_over_control_and_filtered_records_once_acked_below() {
    let control = encode_cursor("other", &AckSet::new(Offset(0)), 0);
    let log = log_of(vec![data(1), control, data(1)]);
    let v = view(M1, gen(1), GroupMode::Shared, &[(M1, 1)]);
    let mut c = started(&v, &log);
    let d = c.deal(&log, t(0), &room(&[(M1, 1)]));
    assert_eq!(offsets(&d, M1), vec![0]);
    let out = c.apply_acks(M1, &[(Offset(0), AckKind::Ack)], None, log.high_watermark(), t(1));
    assert!(out.changed && out.refused.is_empty());
    let d = c.deal(&log, t(1), &room(&[(M1, 5)]));
    assert_eq!(offsets(&d, M1), vec![2]);
    assert_eq!(c.acks().prefix(), Offset(2), "the control record at 1 is folded into the prefix");
}

#[test]
fn shared_push_deals_by_weight() {
    let log = log_of(vec![data(60)]);
    let v = view(M1, gen(1), GroupMode::Shared, &[(M1, 1), (M2, 2), (M3, 3)]);
    let mut c = started(&v, &log);
    let d = c.deal(&log, t(0), &room(&[(M1, 100), (M2, 100), (M3, 100)]));
    assert_eq!((offsets(&d, M1).len(), offsets(&d, M2).len(), offsets(&d, M3).len()), (10, 20, 30));
    // A member without room is skipped.
    let log = log_of(vec![data(6)]);
    let mut c = started(&v, &log);
    let d = c.deal(&log, t(0), &room(&[(M1, 2), (M2, 0), (M3, 1)]));
    assert_eq!((offsets(&d, M1).len(), offsets(&d, M2).len(), offsets(&d, M3).len()), (2, 0, 1));
}

#[test]
fn key_shared_sends_each_key_to_one_member_and_skips_the_others_keys() {
    let records: Vec<Record> = (0..40).map(|i| Record::keyed(format!("k{}", i % 8), format!("v{i}"))).collect();
    let log = log_of(vec![RecordBatch::new(records)]);
    let v = view(M1, gen(1), GroupMode::KeyShared, &[(M1, 1), (M2, 1)]);
    let mut c = started(&v, &log);
    let d1 = c.deal(&log, t(0), &room(&[(M1, 100)]));
    let d2 = c.deal(&log, t(0), &room(&[(M2, 100)]));
    let keys = |d: &BTreeMap<MemberId, Vec<DeliveredRecord>>, m| -> BTreeSet<Bytes> {
        d.get(&m).map(|v| v.iter().map(|r| r.record.key.clone().unwrap()).collect()).unwrap_or_default()
    };
    let (k1, k2) = (keys(&d1, M1), keys(&d2, M2));
    assert!(!k1.is_empty() && !k2.is_empty(), "{k1:?} {k2:?}");
    assert!(k1.is_disjoint(&k2));
    assert_eq!(offsets(&d1, M1).len() + offsets(&d2, M2).len(), 40);
}

#[test]
fn an_older_generation_is_refused_and_a_newer_one_releases_leases() {
    let log = log_of(vec![data(4)]);
    let v1 = view(M1, gen(2), GroupMode::Shared, &[(M1, 1), (M2, 1)]);
    let mut c = started(&v1, &log);
    c.deal(&log, t(0), &room(&[(M1, 2), (M2, 2)]));
    let stale = view(M1, gen(1), GroupMode::Shared, &[(M1, 1)]);
    assert!(matches!(c.observe(&stale, &log, t(1)), Err(CursorError::StaleGeneration { .. })));
    assert_eq!(c.check_generation(gen(1)).unwrap_err().code(), ErrorCode::IllegalGeneration);
    // M2 died: its leases end, M1 keeps its own.
    let v3 = view(M1, gen(3), GroupMode::Shared, &[(M1, 1)]);
    c.observe(&v3, &log, t(1)).unwrap();
    assert_eq!((c.held_by(M1), c.held_by(M2)), (2, 0));
    // Exclusive: every lease ends with a new generation.
    let mut c = started(&view(M1, gen(1), exclusive(), &[(M1, 1)]), &log);
    c.deal(&log, t(0), &room(&[(M1, 4)]));
    c.observe(&view(M1, gen(2), exclusive(), &[(M1, 1)]), &log, t(1)).unwrap();
    assert_eq!(c.held_by(M1), 0);
    assert_eq!(offsets(&c.deal(&log, t(1), &room(&[(M1, 9)])), M1), vec![0, 1, 2, 3]);
}

#[test]
fn a_view_without_its_own_member_is_refused() {
    let log = log_of(vec![data(1)]);
    let v = view(M1, gen(1), GroupMode::Shared, &[(M2, 1)]);
    let mut c = Cursor::start(&v, &log);
    assert_eq!(c.observe(&v, &log, t(0)).unwrap_err().code(), ErrorCode::InvalidRequest);
}

#[test]
fn acks_nacks_rejects_and_refusals() {
    let log = log_of(vec![data(6)]);
    let hw = log.high_watermark();
    let v = view(M1, gen(1), GroupMode::Shared, &[(M1, 1), (M2, 1)]);
    let mut c = started(&v, &log);
    c.deal(&log, t(0), &room(&[(M1, 4)]));
    c.deal(&log, t(0), &room(&[(M2, 1)]));
    let acks = [
        (Offset(0), AckKind::Ack),
        (Offset(1), AckKind::Nack { delay: Duration::from_millis(50) }),
        (Offset(2), AckKind::Reject),
        (Offset(4), AckKind::Reject),
        (Offset(9), AckKind::Ack),
    ];
    let out = c.apply_acks(M1, &acks, None, hw, t(10));
    assert!(out.changed);
    assert_eq!(out.refused, vec![(Offset(4), ErrorCode::InvalidRequest), (Offset(9), ErrorCode::OffsetOutOfRange)]);
    assert_eq!(out.dead_letters, vec![(Offset(2), DeadLetterReason::Rejected)]);
    assert!(c.is_dead_lettering(Offset(2)));
    // Offset 1 waits out its delay; 2 waits for its dead letter; 3 is leased to M1.
    assert_eq!(offsets(&c.deal(&log, t(20), &room(&[(M2, 9)])), M2), vec![5]);
    assert_eq!(c.poll_timeout(t(20)), Some(t(60)));
    assert_eq!(offsets(&c.deal(&log, t(60), &room(&[(M2, 9)])), M2), vec![1]);
    assert!(c.dead_lettered(Offset(2)));
    // M2's ack of M1's record counts: the work is done.
    let out = c.apply_acks(M2, &[(Offset(3), AckKind::Ack)], Some(Offset(2)), hw, t(61));
    assert!(out.changed && out.refused.is_empty());
    assert_eq!(c.acks().prefix(), Offset(4));
    c.check_invariants();
}

#[test]
fn max_deliveries_sends_to_the_dead_letter_topic_instead_of_redelivering() {
    let log = log_of(vec![data(1)]);
    let v = view(M1, gen(1), GroupMode::Shared, &[(M1, 1)]);
    let mut c = started(&v, &log);
    for i in 0..2 {
        assert_eq!(offsets(&c.deal(&log, t(i * 100), &room(&[(M1, 1)])), M1), vec![0]);
        assert!(c.expire(t(i * 100 + 100)).is_empty());
    }
    c.deal(&log, t(200), &room(&[(M1, 1)]));
    assert_eq!(c.expire(t(300)), vec![(Offset(0), DeadLetterReason::MaxDeliveries)]);
    assert!(c.deal(&log, t(300), &room(&[(M1, 1)])).is_empty(), "not delivered while dead-lettering");
}

/// mq-sim seed 1002484: a dead letter that fails (the dead-letter topic cannot be
/// created while a broker is down, and too many wait) delivers its record again
/// with the delivery count going on, in an exclusive group as in the others: a
/// count that restarted at 1 handed a "first" delivery behind later offsets.
#[test]
fn a_failed_dead_letter_delivers_its_record_again_with_its_count_going_on() {
    let log = log_of(vec![data(4)]);
    let hw = log.high_watermark();
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = started(&v, &log);
    let deal = |c: &mut Cursor, at: u64| -> Vec<(u64, u32)> {
        let d = c.deal(&log, t(at), &room(&[(M1, 9)]));
        d.get(&M1).map(|v| v.iter().map(|r| (r.offset.0, r.delivery)).collect()).unwrap_or_default()
    };
    assert_eq!(deal(&mut c, 0), vec![(0, 1), (1, 1), (2, 1), (3, 1)]);
    // Offset 1 runs out of deliveries (3), offset 2 is rejected on its first.
    let out = c.apply_acks(M1, &[(Offset(0), AckKind::Ack), (Offset(2), AckKind::Reject)], None, hw, t(10));
    assert_eq!(out.dead_letters, vec![(Offset(2), DeadLetterReason::Rejected)]);
    assert!(c.expire(t(100)).is_empty());
    assert_eq!(deal(&mut c, 100), vec![(1, 2), (3, 2)]);
    assert!(c.expire(t(200)).is_empty());
    assert_eq!(deal(&mut c, 200), vec![(1, 3), (3, 3)]);
    assert_eq!(
        c.expire(t(300)),
        vec![(Offset(1), DeadLetterReason::MaxDeliveries), (Offset(3), DeadLetterReason::MaxDeliveries)]
    );
    // The dead letters of offsets 1 and 2 fail; offset 3's is still in flight.
    c.dead_letter_failed(Offset(1));
    c.dead_letter_failed(Offset(2));
    c.check_invariants();
    assert_eq!(deal(&mut c, 300), vec![(1, 4), (2, 2)], "counts go on; 3 still waits for its dead letter");
    // The next delivery of offset 1 ends unacked: to the dead-letter topic again.
    assert_eq!(c.expire(t(400)), vec![(Offset(1), DeadLetterReason::MaxDeliveries)]);
    c.check_invariants();
}

/// mq-sim seed 4: a record is rejected and its dead letter stays in flight (the
/// dead-letter topic's leader is cut off); retention then removes the record, and
/// the next deal moved the prefix over it while it was still dead-lettering.
#[test]
fn retention_over_a_record_being_dead_lettered_settles_it() {
    let mut log = log_of(vec![data(3), data(3)]);
    let hw = log.high_watermark();
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = started(&v, &log);
    assert_eq!(offsets(&c.deal(&log, t(0), &room(&[(M1, 3)])), M1), vec![0, 1, 2]);
    let acks = [(Offset(1), AckKind::Reject), (Offset(0), AckKind::Ack), (Offset(2), AckKind::Ack)];
    let out = c.apply_acks(M1, &acks, None, hw, t(1));
    assert_eq!(out.dead_letters, vec![(Offset(1), DeadLetterReason::Rejected)]);
    assert_eq!(c.acks().prefix(), Offset(1));
    log.advance_log_start(Offset(3));
    assert_eq!(offsets(&c.deal(&log, t(2), &room(&[(M1, 9)])), M1), vec![3, 4, 5]);
    c.check_invariants();
    assert_eq!(c.acks().prefix(), Offset(3), "records retention removed count as done");
    assert!(!c.is_dead_lettering(Offset(1)));
    // The dead letter is acknowledged later: there is nothing left to ack.
    assert!(!c.dead_lettered(Offset(1)));
    c.check_invariants();
}

/// An ack (individual or cumulative) of a record whose dead letter is in flight
/// wins: the record is done at once, and the dead letter's outcome changes nothing.
#[test]
fn an_ack_of_a_record_being_dead_lettered_wins() {
    let log = log_of(vec![data(4)]);
    let hw = log.high_watermark();
    let v = view(M1, gen(1), GroupMode::Shared, &[(M1, 1), (M2, 1)]);
    let mut c = started(&v, &log);
    assert_eq!(offsets(&c.deal(&log, t(0), &room(&[(M1, 3)])), M1), vec![0, 1, 2]);
    let rejects = [(Offset(1), AckKind::Reject), (Offset(2), AckKind::Reject)];
    assert_eq!(c.apply_acks(M1, &rejects, None, hw, t(1)).dead_letters.len(), 2);
    // M2 acks offset 1 (the work is done, whoever did it).
    let out = c.apply_acks(M2, &[(Offset(1), AckKind::Ack)], None, hw, t(2));
    assert!(out.changed && out.refused.is_empty());
    assert!(!c.is_dead_lettering(Offset(1)) && c.acks().is_acked(Offset(1)));
    c.check_invariants();
    // A cumulative ack over offset 2.
    let out = c.apply_acks(M2, &[], Some(Offset(3)), hw, t(3));
    assert!(out.changed);
    assert!(!c.is_dead_lettering(Offset(2)));
    c.check_invariants();
    // The dead letters' outcomes arrive: no change, nothing delivered again.
    assert!(!c.dead_lettered(Offset(1)));
    c.dead_letter_failed(Offset(2));
    c.check_invariants();
    assert_eq!(c.acks().prefix(), Offset(3));
    assert_eq!(offsets(&c.deal(&log, t(4), &room(&[(M2, 9)])), M2), vec![3]);
}

#[test]
fn a_seek_replays_from_its_offset() {
    let log = log_of(vec![data(4)]);
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = started(&v, &log);
    c.deal(&log, t(0), &room(&[(M1, 4)]));
    c.apply_acks(M1, &[], Some(Offset(4)), log.high_watermark(), t(1));
    c.seek(Offset(1));
    assert_eq!(offsets(&c.deal(&log, t(2), &room(&[(M1, 9)])), M1), vec![1, 2, 3]);
}

#[test]
fn a_seek_replays_only_once_its_cursor_record_commits() {
    let mut log = log_of(vec![data(4)]);
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = started(&v, &log);
    c.deal(&log, t(0), &room(&[(M1, 4)]));
    c.apply_acks(M1, &[], Some(Offset(4)), log.high_watermark(), t(1));
    c.seek(Offset(1));
    let at = log.append(c.record(), LeaderEpoch(1), 2).base_offset;
    c.hold_for_seek(at);
    assert!(c.deal(&log, t(2), &room(&[(M1, 9)])).is_empty(), "replayed before the seek committed");
    assert!(c.is_held_by_seek());
    log.mark_persisted(log.log_end());
    log.advance_high_watermark(log.log_end());
    assert_eq!(offsets(&c.deal(&log, t(3), &room(&[(M1, 9)])), M1), vec![1, 2, 3]);
    assert!(!c.is_held_by_seek());
}

#[test]
fn a_new_leader_holding_an_uncommitted_seek_replays_once_it_commits() {
    let mut acked = AckSet::new(Offset(0));
    acked.ack_up_to(Offset(4));
    let mut log = log_of(vec![data(4), encode_cursor("g", &acked, 2)]);
    // An uncommitted record that only acks more is taken without waiting.
    let mut more = acked.clone();
    more.ack_up_to(Offset(5));
    log.append(encode_cursor("g", &more, 2), LeaderEpoch(2), 0);
    let found = rebuild(&log).cursors.remove("g").unwrap();
    assert!(!found.uncommitted_seek);
    // An uncommitted record with a newer seek: held until it commits.
    log.append(encode_cursor("g", &AckSet::new(Offset(1)), 3), LeaderEpoch(2), 0);
    let found = rebuild(&log).cursors.remove("g").unwrap();
    assert!(found.uncommitted_seek && found.seeks == 3, "{found:?}");
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = Cursor::rebuilt("g", found);
    c.observe(&v, &log, t(0)).unwrap();
    assert!(c.deal(&log, t(0), &room(&[(M1, 9)])).is_empty(), "replayed on an uncommitted seek");
    log.mark_persisted(log.log_end());
    log.advance_high_watermark(log.log_end());
    assert_eq!(offsets(&c.deal(&log, t(1), &room(&[(M1, 9)])), M1), vec![1, 2, 3]);
    assert_eq!(cursor_of_batch(&c.record()).unwrap().unwrap().seeks, 3, "the seek count is kept");
}

#[test]
fn a_cumulative_ack_above_the_high_watermark_is_refused() {
    let log = log_of(vec![data(2)]);
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = started(&v, &log);
    let out = c.apply_acks(M1, &[], Some(Offset(3)), log.high_watermark(), t(0));
    assert_eq!(out.refused, vec![(Offset(3), ErrorCode::OffsetOutOfRange)]);
    assert!(!out.changed);
}

#[test]
fn a_latest_group_made_by_acks_does_not_replay_history() {
    let log = log_of(vec![data(10)]);
    let mut c = Cursor::provisional("g", &log);
    c.apply_acks(M1, &[(Offset(8), AckKind::Ack)], None, log.high_watermark(), t(0));
    let mut v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    v.settings.start = StartPosition::Latest;
    c.observe(&v, &log, t(0)).unwrap();
    assert_eq!(offsets(&c.deal(&log, t(0), &room(&[(M1, 9)])), M1), vec![9]);
}

#[test]
fn records_removed_by_retention_count_as_done() {
    let mut log = log_of(vec![data(2), data(2)]);
    let v = view(M1, gen(1), exclusive(), &[(M1, 1)]);
    let mut c = started(&v, &log);
    log.advance_log_start(Offset(2));
    assert_eq!(offsets(&c.deal(&log, t(0), &room(&[(M1, 9)])), M1), vec![2, 3]);
    assert_eq!(c.acks().prefix(), Offset(2));
}

#[test]
fn cursor_records_round_trip_and_rebuild_takes_the_newest_per_group() {
    let mut a = AckSet::new(Offset(3));
    a.ack(Offset(7)).unwrap();
    let b = encode_cursor("g", &a, 4);
    assert_eq!(b.kind, BatchKind::Control);
    assert_eq!(cursor_of_batch(&b).unwrap().unwrap(), CursorPayload { group: "g".into(), acks: a.clone(), seeks: 4 });
    let mut newer = a.clone();
    newer.ack_up_to(Offset(9));
    let log = log_of(vec![b, data(1), encode_cursor("h", &a, 0), encode_cursor("g", &newer, 4)]);
    let Rebuilt { cursors: found, bad } = rebuild(&log);
    assert!(bad.is_empty());
    let g = &found["g"];
    assert_eq!((g.offset, &g.acks, g.seeks), (Offset(3), &newer, 4));
    let h = &found["h"];
    assert_eq!((h.offset, &h.acks, h.seeks), (Offset(2), &a, 0));
}

#[test]
fn garbage_cursor_records_are_refused() {
    assert!(matches!(decode_cursor(&[]), Err(CursorDecodeError::Garbage(_))));
    assert!(matches!(decode_cursor(&[9, 1, 2]), Err(CursorDecodeError::Garbage(_))));
    // Version 1 (no seek count) still decodes.
    let mut v1 = vec![1];
    v1.extend(postcard::to_allocvec(&(String::from("g"), AckSet::new(Offset(5)))).unwrap());
    let old = decode_cursor(&v1).unwrap();
    assert_eq!((old.group.as_str(), old.acks.prefix(), old.seeks), ("g", Offset(5), 0));
    // A non-canonical set: an individual ack below the prefix.
    let bad = (String::from("g"), (Offset(5), vec![Offset(2)]), 0u64);
    let mut value = vec![CURSOR_VERSION];
    value.extend(postcard::to_allocvec(&bad).unwrap());
    assert!(matches!(decode_cursor(&value), Err(CursorDecodeError::Invalid(_))));
    let two = RecordBatch { kind: BatchKind::Control, ..data(2) };
    assert!(matches!(cursor_of_batch(&two), Some(Err(CursorDecodeError::NotACursor(_)))));
    assert!(cursor_of_batch(&data(1)).is_none());
}

proptest! {
    /// Whatever bytes a control record holds, decoding answers without panicking.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_cursor(&bytes);
        let mut versioned = vec![CURSOR_VERSION];
        versioned.extend(&bytes);
        if let Ok(p) = decode_cursor(&versioned) {
            prop_assert!(p.acks.validate().is_ok());
        }
    }

    /// Random deals, acks, rejects, cumulative acks, expiries, dead letters,
    /// retention and views: invariants hold, an acked record is never delivered
    /// again, nor one retention removed, a leased record never goes to a second
    /// member, and key_shared keys stay with one member within a generation.
    #[test]
    fn deliveries_respect_acks_and_leases(
        ops in proptest::collection::vec((0u8..9, 1u64..4, 0u64..30, 1u64..50), 1..120),
        mode in 0u8..3,
    ) {
        let batch = |b: u64| RecordBatch::new((b * 5..b * 5 + 5).map(|i| Record::keyed(format!("k{}", i % 5), format!("v{i}"))).collect());
        let mut log = log_of((0..6).map(batch).collect());
        let hw = log.high_watermark();
        let mode = match mode { 0 => exclusive(), 1 => GroupMode::Shared, _ => GroupMode::KeyShared };
        let all = [(M1, 1), (M2, 2), (M3, 1)];
        let mut g = 1;
        let mut c = started(&view(M1, gen(g), mode, &all), &log);
        let mut now = 0;
        let mut acked = BTreeSet::new();
        let mut rejected = Vec::new();
        let mut key_owner: BTreeMap<(u32, Bytes), MemberId> = BTreeMap::new();
        for (op, m, o, dt) in ops {
            now += dt;
            let m = MemberId(m);
            match op {
                0 | 1 => {
                    let d = c.deal(&log, t(now), &room(&[(m, o as usize % 7 + 1), (M3, 2)]));
                    for (who, recs) in d {
                        for r in recs {
                            prop_assert!(!acked.contains(&r.offset.0), "acked offset {} delivered", r.offset);
                            prop_assert!(r.offset >= log.log_start(), "offset {} removed by retention delivered", r.offset);
                            prop_assert_eq!(c.leases().lease(r.offset).map(|l| l.member), Some(who));
                            if mode == GroupMode::KeyShared {
                                let k = (g, r.record.key.clone().unwrap());
                                let owner = *key_owner.entry(k).or_insert(who);
                                prop_assert_eq!(owner, who);
                            }
                        }
                    }
                }
                2 => {
                    let out = c.apply_acks(m, &[(Offset(o), AckKind::Ack)], None, hw, t(now));
                    if out.refused.is_empty() { acked.insert(o); }
                }
                3 => { c.apply_acks(m, &[(Offset(o), AckKind::Nack { delay: Duration::from_millis(dt) })], None, hw, t(now)); }
                4 => {
                    // Dead letters in flight (rejects) are acknowledged now too.
                    let due: Vec<Offset> = c.expire(t(now)).into_iter().map(|(o, _)| o).chain(std::mem::take(&mut rejected)).collect();
                    for o in due { c.dead_lettered(o); acked.insert(o.0); }
                }
                6 => {
                    let out = c.apply_acks(m, &[(Offset(o), AckKind::Reject)], None, hw, t(now));
                    rejected.extend(out.dead_letters.into_iter().map(|(o, _)| o));
                }
                7 => {
                    let out = c.apply_acks(m, &[], Some(Offset(o)), hw, t(now));
                    if out.refused.is_empty() { acked.extend(0..o); }
                }
                8 => log.advance_log_start(Offset(o)),
                _ => {
                    g += 1;
                    let members: Vec<(MemberId, u32)> = all.iter().copied().filter(|(x, _)| *x != MemberId(o % 3 + 1) || *x == M1).collect();
                    c.observe(&view(M1, gen(g), mode, &members), &log, t(now)).unwrap();
                }
            }
            c.check_invariants();
            for a in &acked {
                prop_assert!(c.acks().is_acked(Offset(*a)));
            }
        }
    }
}

/// The deal as it was before scan positions: every record from the prefix is
/// looked at, in offset order. [`Cursor::deal`] must do exactly what it does.
fn deal_by_full_scan(
    c: &mut Cursor,
    log: &PartitionLog,
    now: Instant,
    room: &BTreeMap<MemberId, usize>,
) -> BTreeMap<MemberId, Vec<DeliveredRecord>> {
    let mut out: BTreeMap<MemberId, Vec<DeliveredRecord>> = BTreeMap::new();
    if log.log_start() > c.acks.prefix() {
        c.settle_below(log.log_start());
    }
    let hw = log.high_watermark();
    let mut left: BTreeMap<MemberId, usize> = room.iter().filter(|(_, n)| **n > 0).map(|(m, n)| (*m, *n)).collect();
    let mut fold_to = c.acks.prefix();
    let mut folding = true;
    let mut scanned = 0usize;
    let start = c.acks.prefix();
    'batches: for b in log.batches_from(start) {
        for (o, r) in b.iter_with_offsets() {
            if o < start {
                continue;
            }
            if o >= hw || left.is_empty() || scanned >= MAX_SCAN {
                break 'batches;
            }
            scanned += 1;
            if c.acks.is_acked(o) || !c.for_group(b.kind, r) {
                if folding {
                    fold_to = o.next();
                }
                continue;
            }
            folding = false;
            if !c.leases.deliverable(o, now) || c.dead_lettering.contains_key(&o) {
                continue;
            }
            let to = match c.mode {
                GroupMode::KeyShared => match c.ring.member_for(r.key.as_deref().unwrap_or(&[])) {
                    Some(m) if left.contains_key(&m) => Some(m),
                    _ => None,
                },
                GroupMode::Exclusive(_) | GroupMode::Shared => {
                    if left.len() == 1 {
                        left.keys().next().copied()
                    } else {
                        c.wrr.next(|m| left.contains_key(&m))
                    }
                }
            };
            let Some(m) = to else { continue };
            let delivery = c.leases.deliver(o, m, now);
            out.entry(m).or_default().push(DeliveredRecord { offset: o, delivery, record: r.clone() });
            if let Some(n) = left.get_mut(&m) {
                *n -= 1;
                if *n == 0 {
                    left.remove(&m);
                }
            }
        }
    }
    if fold_to > c.acks.prefix() {
        c.settle_below(fold_to);
    }
    out
}

/// Asserts that two cursors hold the same delivery state.
fn assert_same_state(c: &Cursor, r: &Cursor) {
    assert_eq!(c.acks, r.acks);
    assert_eq!(c.leases, r.leases);
    assert_eq!(c.wrr, r.wrr);
    assert_eq!(c.dead_lettering, r.dead_lettering);
}

#[test]
fn a_deal_looks_no_further_than_max_scan_past_the_prefix() {
    let mut big = PartitionLog::new(TopicPartition::new("t", 0));
    for _ in 0..(MAX_SCAN / 1000 + 1) {
        big.append(data(1000), LeaderEpoch(1), 0);
    }
    big.mark_persisted(big.log_end());
    big.advance_high_watermark(big.log_end());
    let v = view(M1, gen(1), GroupMode::Shared, &[(M1, 1), (M2, 1)]);
    let mut c = started(&v, &big);
    let mut r = c.clone();
    // Offset 0 stays leased to M1; M2 then asks for everything.
    for (who, n) in [(M1, 1), (M2, usize::MAX)] {
        let d = c.deal(&big, t(0), &room(&[(who, n)]));
        assert_eq!(d, deal_by_full_scan(&mut r, &big, t(0), &room(&[(who, n)])));
        assert_same_state(&c, &r);
    }
    assert_eq!(c.held_by(M2), MAX_SCAN - 1, "offsets 1 to MAX_SCAN - 1");
    c.apply_acks(M1, &[(Offset(0), AckKind::Ack)], None, big.high_watermark(), t(1));
    r.apply_acks(M1, &[(Offset(0), AckKind::Ack)], None, big.high_watermark(), t(1));
    let d = c.deal(&big, t(1), &room(&[(M2, usize::MAX)]));
    assert_eq!(offsets(&d, M2), vec![MAX_SCAN as u64], "the window moved by one");
    assert_eq!(d, deal_by_full_scan(&mut r, &big, t(1), &room(&[(M2, usize::MAX)])));
}

proptest! {
    /// Dealing from scan positions hands out exactly what looking at every
    /// record from the prefix does (same records, members, order and delivery
    /// counts, same state after), through random deals, acks, nacks, rejects, dead
    /// letters that succeed or fail, expiries, cumulative acks, retention, appends,
    /// new views (members leaving, hence new key owners) and seeks.
    #[test]
    fn dealing_from_scan_positions_matches_a_full_scan(
        ops in proptest::collection::vec((0u8..12, 0u64..8, 0u64..60, 1u64..40), 1..150),
        mode in 0u8..3,
        filtered in any::<bool>(),
    ) {
        let mode = match mode { 0 => exclusive(), 1 => GroupMode::Shared, _ => GroupMode::KeyShared };
        let mut serial = 0u64;
        let mut batch = |n: u64| {
            let records = (0..n.max(1)).map(|_| {
                serial += 1;
                let mut r = Record::keyed(format!("k{}", serial * 7 % 11), format!("v{serial}"));
                if serial % 3 == 0 { r.tags = vec!["blue".into()]; }
                r
            }).collect();
            RecordBatch::new(records)
        };
        let mut log = log_of(vec![batch(5), batch(3)]);
        let all = [(M1, 1), (M2, 2), (M3, 1)];
        let mut g = 1;
        let mut v = view(M1, gen(g), mode, &all);
        if filtered { v.settings.filter = vec!["blue".into()]; }
        let mut c = started(&v, &log);
        let mut r = c.clone();
        let mut now = 0;
        let mut in_flight: Vec<Offset> = Vec::new();
        for (op, m, o, dt) in ops {
            now += dt;
            let member = MemberId(m % 3 + 1);
            let hw = log.high_watermark();
            let o = Offset(o);
            match op {
                0..=2 => {
                    let asking: Vec<(MemberId, usize)> = [M1, M2, M3].into_iter().enumerate()
                        .filter(|(i, _)| (m >> i) & 1 == 1 || *i as u64 == m % 3)
                        .map(|(i, x)| (x, ((dt + i as u64) % 6) as usize)).collect();
                    let d = c.deal(&log, t(now), &room(&asking));
                    prop_assert_eq!(d, deal_by_full_scan(&mut r, &log, t(now), &room(&asking)));
                }
                3 => {
                    let acks = [(o, AckKind::Ack)];
                    prop_assert_eq!(c.apply_acks(member, &acks, None, hw, t(now)), r.apply_acks(member, &acks, None, hw, t(now)));
                }
                4 => {
                    let acks = [(o, AckKind::Nack { delay: Duration::from_millis(dt) })];
                    let out = c.apply_acks(member, &acks, None, hw, t(now));
                    prop_assert_eq!(&out, &r.apply_acks(member, &acks, None, hw, t(now)));
                    in_flight.extend(out.dead_letters.iter().map(|(o, _)| *o));
                }
                5 => {
                    let acks = [(o, AckKind::Reject)];
                    let out = c.apply_acks(member, &acks, None, hw, t(now));
                    prop_assert_eq!(&out, &r.apply_acks(member, &acks, None, hw, t(now)));
                    in_flight.extend(out.dead_letters.iter().map(|(o, _)| *o));
                }
                6 => {
                    // Dead letters complete: some are written, some refused.
                    for (i, d) in std::mem::take(&mut in_flight).into_iter().enumerate() {
                        if (m >> (i % 3)) & 1 == 1 {
                            prop_assert_eq!(c.dead_lettered(d), r.dead_lettered(d));
                        } else {
                            c.dead_letter_failed(d);
                            r.dead_letter_failed(d);
                        }
                    }
                }
                7 => {
                    let dead = c.expire(t(now));
                    prop_assert_eq!(&dead, &r.expire(t(now)));
                    in_flight.extend(dead.iter().map(|(o, _)| *o));
                }
                8 => {
                    prop_assert_eq!(c.apply_acks(member, &[], Some(o), hw, t(now)), r.apply_acks(member, &[], Some(o), hw, t(now)));
                }
                9 => log.advance_log_start(o),
                10 => {
                    let b = if dt % 5 == 0 { encode_cursor("other", &AckSet::new(Offset(0)), 0) } else { batch(dt % 7) };
                    log.append(b, LeaderEpoch(1), 0);
                    log.mark_persisted(log.log_end());
                    log.advance_high_watermark(log.log_end());
                }
                _ if m < 4 => {
                    g += 1;
                    let members: Vec<(MemberId, u32)> = all.iter().copied().filter(|(x, _)| *x != MemberId(o.0 % 3 + 1) || *x == M1).collect();
                    let mut v = view(M1, gen(g), mode, &members);
                    if filtered { v.settings.filter = vec!["blue".into()]; }
                    prop_assert_eq!(c.observe(&v, &log, t(now)).unwrap(), r.observe(&v, &log, t(now)).unwrap());
                }
                _ => {
                    let to = Offset(o.0.clamp(log.log_start().0, hw.0));
                    c.seek(to);
                    r.seek(to);
                    in_flight.clear();
                }
            }
            c.check_invariants();
            assert_same_state(&c, &r);
        }
    }
}
