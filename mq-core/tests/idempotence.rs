//! Idempotent producers (DESIGN.md section 5): producer ids from the controller,
//! per-partition sequences, duplicates answered with the original offset (also
//! after failover, since the state is rebuilt from the log), gaps refused.

mod support;

use bytes::Bytes;
use mq_core::harness::Harness;
use mq_core::wire::{Acks, ErrorCode, ProducerStamp, Record, RecordBatch, RequestBody, ResponseBody, TopicConfig};
use mq_core::{CorrelationId, Duration, Offset, PartitionId, ProducerEpoch, ProducerId, Sequence, TopicPartition};
use support::{err, ok, CLIENT};

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn init(h: &mut Harness, via: u32) -> ProducerId {
    let c = h.request(CLIENT, via, RequestBody::InitProducer);
    h.advance(Duration::from_millis(500));
    match ok(h, c) {
        ResponseBody::ProducerId { producer_id, producer_epoch } => {
            assert_eq!(producer_epoch, ProducerEpoch(0));
            producer_id
        }
        other => panic!("{other:?}"),
    }
}

fn stamped(pid: ProducerId, epoch: u16, seq: u32, vals: &[&str]) -> RecordBatch {
    RecordBatch {
        producer: Some(ProducerStamp {
            producer_id: pid,
            producer_epoch: ProducerEpoch(epoch),
            base_sequence: Sequence(seq),
        }),
        ..RecordBatch::new(vals.iter().map(|v| Record::from_value(Bytes::copy_from_slice(v.as_bytes()))).collect())
    }
}

fn send(h: &mut Harness, to: u32, batch: RecordBatch) -> CorrelationId {
    h.request(CLIENT, to, RequestBody::Produce { topic: "t".into(), partition: PartitionId(0), acks: Acks::All, batch })
}

fn offset_of(h: &mut Harness, c: CorrelationId) -> Offset {
    match ok(h, c) {
        ResponseBody::Produced { base_offset, .. } => base_offset,
        other => panic!("{other:?}"),
    }
}

fn leader(h: &Harness) -> u32 {
    support::leader_of(h, &tp()).expect("a leader")
}

fn log_len(h: &Harness, node: u32) -> u64 {
    h.node(node).log(&tp()).unwrap().log_end().0
}

fn cluster(n: u32, rf: u16) -> Harness {
    let mut h = Harness::new(n, 21, |c| c);
    h.wait_ready();
    let c = h.request(
        CLIENT,
        1,
        RequestBody::CreateTopic(TopicConfig { replication_factor: rf, ..TopicConfig::new("t", 1) }),
    );
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    h
}

#[test]
fn producer_ids_are_unique_across_brokers() {
    let mut h = cluster(3, 1);
    let ids: Vec<ProducerId> = [1, 2, 3, 1, 2].iter().map(|b| init(&mut h, *b)).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "{ids:?}");
}

#[test]
fn a_retried_batch_gets_its_original_offset_and_is_not_appended_twice() {
    let mut h = cluster(1, 1);
    let pid = init(&mut h, 1);
    let c = send(&mut h, 1, stamped(pid, 0, 0, &["a", "b"]));
    h.advance(Duration::from_millis(50));
    assert_eq!(offset_of(&mut h, c), Offset(0));
    let c = send(&mut h, 1, stamped(pid, 0, 2, &["c"]));
    h.advance(Duration::from_millis(50));
    assert_eq!(offset_of(&mut h, c), Offset(2));
    // The first batch again (a retry after a lost reply).
    let c = send(&mut h, 1, stamped(pid, 0, 0, &["a", "b"]));
    h.advance(Duration::from_millis(50));
    assert_eq!(offset_of(&mut h, c), Offset(0));
    assert_eq!(log_len(&h, 1), 3, "nothing appended twice");
}

#[test]
fn a_retry_while_the_original_is_still_in_flight_waits_for_it() {
    let mut h = cluster(1, 1);
    let pid = init(&mut h, 1);
    h.hold_persists(1, true);
    let first = send(&mut h, 1, stamped(pid, 0, 0, &["a"]));
    let retry = send(&mut h, 1, stamped(pid, 0, 0, &["a"]));
    assert!(h.take_response(CLIENT, retry).is_none(), "not acknowledged before the original commits");
    h.hold_persists(1, false);
    h.advance(Duration::from_millis(50));
    assert_eq!(offset_of(&mut h, first), Offset(0));
    assert_eq!(offset_of(&mut h, retry), Offset(0));
    assert_eq!(log_len(&h, 1), 1);
}

#[test]
fn a_sequence_gap_is_refused_and_nothing_is_written() {
    let mut h = cluster(1, 1);
    let pid = init(&mut h, 1);
    let c = send(&mut h, 1, stamped(pid, 0, 0, &["a"]));
    h.advance(Duration::from_millis(50));
    offset_of(&mut h, c);
    let c = send(&mut h, 1, stamped(pid, 0, 5, &["gap"]));
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::OutOfOrderSequence);
    assert!(msg.contains("expected 1"), "{msg}");
    assert_eq!(log_len(&h, 1), 1);
}

#[test]
fn an_older_producer_epoch_is_fenced() {
    let mut h = cluster(1, 1);
    let pid = init(&mut h, 1);
    let c = send(&mut h, 1, stamped(pid, 3, 0, &["new"]));
    h.advance(Duration::from_millis(50));
    offset_of(&mut h, c);
    let c = send(&mut h, 1, stamped(pid, 2, 1, &["zombie"]));
    assert_eq!(err(&mut h, c).0, ErrorCode::ProducerFenced);
}

#[test]
fn deduplication_survives_failover_because_the_state_comes_from_the_log() {
    let mut h = cluster(3, 3);
    let pid = init(&mut h, 1);
    let l = leader(&h);
    let c = send(&mut h, l, stamped(pid, 0, 0, &["x", "y"]));
    h.advance(Duration::from_millis(300));
    assert_eq!(offset_of(&mut h, c), Offset(0));
    h.crash(l);
    h.advance(Duration::from_secs(10));
    let new = leader(&h);
    assert_ne!(new, l);
    // The producer never saw the reply and retries at the new leader.
    let c = send(&mut h, new, stamped(pid, 0, 0, &["x", "y"]));
    h.advance(Duration::from_millis(300));
    assert_eq!(offset_of(&mut h, c), Offset(0));
    assert_eq!(log_len(&h, new), 2, "the retry was recognised, not appended");
    let c = send(&mut h, new, stamped(pid, 0, 2, &["z"]));
    h.advance(Duration::from_millis(300));
    assert_eq!(offset_of(&mut h, c), Offset(2));
}

#[test]
fn a_retry_of_an_earlier_batch_waiting_behind_a_later_one_is_answered() {
    let mut h = cluster(3, 3);
    let pid = init(&mut h, 1);
    let l = leader(&h);
    // Followers stall: both batches wait for the HW, the retry of the first
    // queues behind the second.
    for f in (1..=3).filter(|id| *id != l) {
        h.block_fetches(f, l);
    }
    let first = send(&mut h, l, stamped(pid, 0, 0, &["a"]));
    let second = send(&mut h, l, stamped(pid, 0, 1, &["b"]));
    h.advance(Duration::from_millis(100));
    let retry = send(&mut h, l, stamped(pid, 0, 0, &["a"]));
    h.advance(Duration::from_millis(100));
    assert!(h.take_response(CLIENT, retry).is_none());
    h.heal();
    // Followers retry their lost fetches after the fetch deadline.
    h.advance(Duration::from_secs(5));
    assert_eq!(offset_of(&mut h, first), Offset(0));
    assert_eq!(offset_of(&mut h, second), Offset(1));
    assert_eq!(offset_of(&mut h, retry), Offset(0));
}

/// A one-broker cluster whose topic `t` keeps records for 2 s, checked every
/// 500 ms.
fn retained_cluster() -> Harness {
    let mut h =
        Harness::new(1, 21, |c| mq_core::NodeConfig { retention_check_interval: Duration::from_millis(500), ..c });
    h.wait_ready();
    let config = TopicConfig { retention_time: Some(Duration::from_secs(2)), ..TopicConfig::new("t", 1) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    h
}

fn log_start(h: &Harness, node: u32) -> Offset {
    h.node(node).log(&tp()).unwrap().log_start()
}

/// `pid` writes its one batch `a, b` at offset 0, and retention then removes it
/// (the log start moves to 2).
fn write_then_retain(h: &mut Harness, pid: ProducerId) {
    let c = send(h, 1, stamped(pid, 0, 0, &["a", "b"]));
    h.advance(Duration::from_millis(50));
    assert_eq!(offset_of(h, c), Offset(0));
    h.advance(Duration::from_secs(4));
    assert_eq!(log_start(h, 1), Offset(2), "retention removed the producer's only batch");
}

#[test]
fn after_retention_an_unknown_producer_still_starts_at_sequence_0() {
    let mut h = retained_cluster();
    let old = init(&mut h, 1);
    write_then_retain(&mut h, old);
    // A new producer's second batch overtakes its first on the network: the
    // leader must not take it ahead of sequence 0.
    let pid = init(&mut h, 1);
    let c = send(&mut h, 1, stamped(pid, 0, 2, &["y"]));
    let (code, msg) = err(&mut h, c);
    assert_eq!(code, ErrorCode::UnknownProducerId);
    assert!(msg.contains("sequence 0") && msg.contains("nothing was written"), "{msg}");
    assert_eq!(log_len(&h, 1), 2);
    let first = send(&mut h, 1, stamped(pid, 0, 0, &["w", "x"]));
    h.advance(Duration::from_millis(50));
    let second = send(&mut h, 1, stamped(pid, 0, 2, &["y"]));
    h.advance(Duration::from_millis(50));
    assert_eq!((offset_of(&mut h, first), offset_of(&mut h, second)), (Offset(2), Offset(4)), "in sequence order");
}

#[test]
fn a_retry_whose_original_retention_removed_is_recognised_across_a_restart() {
    let mut h = retained_cluster();
    let pid = init(&mut h, 1);
    write_then_retain(&mut h, pid);
    // The leader rebuilds its producer state from the stored log on restart.
    h.crash(1);
    h.restart(1);
    h.wait_ready();
    h.advance(Duration::from_secs(2));
    // The reply was lost and the producer retries: sequence 0 of a known
    // producer, not a new one, so it is not appended again.
    let c = send(&mut h, 1, stamped(pid, 0, 0, &["a", "b"]));
    h.advance(Duration::from_millis(50));
    assert_eq!(offset_of(&mut h, c), Offset(0), "answered with the original offset");
    assert_eq!(log_len(&h, 1), 2, "nothing appended twice");
    let c = send(&mut h, 1, stamped(pid, 0, 2, &["c"]));
    h.advance(Duration::from_millis(50));
    assert_eq!(offset_of(&mut h, c), Offset(2), "the numbering goes on");
}

/// Producers that ask for ids together are all answered, however small the
/// broker's block: it asks the controller for another block while some still
/// wait. With blocks of one id, the second and third waited until a later
/// `InitProducer` asked again, past their request timeouts, and every retry
/// queued behind them (simulator seed 1000561: no produce in the whole run).
#[test]
fn producers_asking_together_all_get_ids_with_a_block_of_one() {
    let mut h = Harness::new(1, 16, |c| mq_core::NodeConfig { producer_id_block: 1, ..c });
    h.wait_ready();
    let asks: Vec<(u64, CorrelationId)> =
        (0..3).map(|i| (CLIENT + i, h.request(CLIENT + i, 1, RequestBody::InitProducer))).collect();
    h.advance(Duration::from_millis(500));
    let mut ids = Vec::new();
    for (client, c) in asks {
        match h.take_response(client, c).map(|r| r.body) {
            Some(Ok(ResponseBody::ProducerId { producer_id, .. })) => ids.push(producer_id),
            other => panic!("client {client}: {other:?}"),
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every producer got its own id: {ids:?}");
}

/// A follower that restarts at its leader's log start takes the leader's
/// producer state with it: a batch retention removed before the follower ever
/// held it is still known when the follower leads, so the producer's retry is
/// answered with the original offset, not appended again (simulator seed
/// 1600630, `no_duplicates_idempotent`).
#[test]
fn a_follower_reset_to_the_leaders_log_start_keeps_the_leaders_producer_state() {
    let mut h =
        Harness::new(3, 22, |c| mq_core::NodeConfig { retention_check_interval: Duration::from_millis(500), ..c });
    h.wait_ready();
    let config =
        TopicConfig { replication_factor: 2, retention_time: Some(Duration::from_secs(2)), ..TopicConfig::new("t", 1) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    let pid = init(&mut h, 1);
    let l = leader(&h);
    let f = *h.node(l).replica(&tp()).unwrap().replicas.iter().find(|r| r.0 != l).expect("a follower");
    // The follower is down while the batch is written, committed (the ISR
    // shrinks to the leader) and removed by retention.
    h.crash(f.0);
    let c = send(&mut h, l, stamped(pid, 0, 0, &["a", "b"]));
    h.advance(Duration::from_secs(20));
    assert_eq!(offset_of(&mut h, c), Offset(0));
    assert_eq!(log_start(&h, l), Offset(2), "retention removed the batch");
    // Back, it is behind the leader's log start: it restarts there and rejoins.
    h.restart(f.0);
    h.advance(Duration::from_secs(20));
    assert_eq!(log_start(&h, f.0), Offset(2), "the follower restarted at the leader's log start");
    assert!(h.node(l).replica(&tp()).unwrap().isr.contains(&f), "the follower rejoined the ISR");
    h.crash(l);
    h.advance(Duration::from_secs(20));
    assert_eq!(leader(&h), f.0);
    // The producer never saw its answer and retries at the new leader.
    let c = send(&mut h, f.0, stamped(pid, 0, 0, &["a", "b"]));
    h.advance(Duration::from_millis(300));
    assert_eq!(offset_of(&mut h, c), Offset(0), "answered with the original offset");
    assert_eq!(log_len(&h, f.0), 2, "nothing appended twice");
}
