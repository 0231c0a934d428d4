//! Replication failure sequences from the record: Jepsen's 2013 Kafka analysis
//! ("the ISR shrinks to the leader alone"), KIP-279 (a follower whose last epoch
//! the new leader never had must truncate to where their epochs diverge), and
//! fencing of stale epochs. Each test names the sequence it replays.

mod support;

use bytes::Bytes;
use mq_core::harness::Harness;
use mq_core::wire::{Acks, ErrorCode, Record, RecordBatch, RequestBody, ResponseBody, TopicConfig};
use mq_core::{CorrelationId, Duration, Event, NodeId, Offset, PartitionId, TopicPartition};
use support::{err, ok, CLIENT};

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn cluster(seed: u64) -> Harness {
    let mut h = Harness::new(3, seed, |c| c);
    h.wait_ready();
    h
}

fn create(h: &mut Harness, config: TopicConfig) {
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(h, c), ResponseBody::TopicCreated);
}

fn leader(h: &Harness) -> Option<u32> {
    support::leader_of(h, &tp())
}

fn send(h: &mut Harness, to: u32, acks: Acks, v: &str) -> CorrelationId {
    let batch = RecordBatch::new(vec![Record::from_value(Bytes::copy_from_slice(v.as_bytes()))]);
    h.request(CLIENT, to, RequestBody::Produce { topic: "t".into(), partition: PartitionId(0), acks, batch })
}

fn produced(h: &mut Harness, c: CorrelationId) -> Offset {
    match ok(h, c) {
        ResponseBody::Produced { base_offset, .. } => base_offset,
        other => panic!("{other:?}"),
    }
}

fn values(h: &Harness, node: u32) -> Vec<String> {
    support::log_values(h, node, &tp())
}

/// Jepsen, "Kafka" (2013): with replication factor 3, partitioning the leader
/// from its followers shrinks the ISR to the leader alone, which then acknowledges
/// writes by itself. If the leader then dies and an out-of-sync follower is
/// elected, those acknowledged writes are lost. mq never elects outside the ISR
/// (unless the topic opts in), so the partition waits for the leader instead, and
/// nothing acknowledged is lost.
#[test]
fn jepsen_2013_isr_shrinks_to_the_leader_alone_then_the_leader_dies() {
    let mut h = cluster(11);
    create(&mut h, TopicConfig { replication_factor: 3, min_insync_replicas: 1, ..TopicConfig::new("t", 1) });
    let l = leader(&h).unwrap();
    let c = send(&mut h, l, Acks::All, "before");
    h.advance(Duration::from_millis(200));
    produced(&mut h, c);
    // The followers can no longer fetch from the leader; everyone still reaches
    // the controller.
    let followers: Vec<u32> = (1..=3).filter(|id| *id != l).collect();
    for f in &followers {
        h.block_fetches(*f, l);
    }
    h.advance(Duration::from_secs(8));
    assert_eq!(h.node(l).replica(&tp()).unwrap().isr, vec![NodeId(l)], "the ISR shrank to the leader");
    let c = send(&mut h, l, Acks::All, "acked-alone");
    h.advance(Duration::from_millis(200));
    let off = produced(&mut h, c);
    // The leader dies. Nobody else is in sync: no clean leader exists.
    h.crash(l);
    h.heal();
    h.advance(Duration::from_secs(10));
    assert_eq!(leader(&h), None, "an out-of-sync follower was elected");
    assert!(!h.events().iter().any(|(_, _, e)| matches!(e, Event::BecameLeader { unclean: true, .. })));
    // The leader returns and leads again with everything it acknowledged.
    h.restart(l);
    h.advance(Duration::from_secs(10));
    let back = leader(&h).expect("the last in-sync replica leads again");
    assert_eq!(back, l);
    assert_eq!(values(&h, l)[off.0 as usize], "acked-alone");
    // And the followers catch up to it.
    h.advance(Duration::from_secs(5));
    for f in followers {
        assert_eq!(values(&h, f), values(&h, l), "follower {f}");
    }
}

/// The same sequence with `min_insync_replicas = 2`: once the ISR is the leader
/// alone, `acks=all` is refused before anything is appended.
#[test]
fn jepsen_2013_with_min_isr_two_the_lone_leader_refuses_acks_all() {
    let mut h = cluster(12);
    create(&mut h, TopicConfig { replication_factor: 3, min_insync_replicas: 2, ..TopicConfig::new("t", 1) });
    let l = leader(&h).unwrap();
    for f in (1..=3).filter(|id| *id != l) {
        h.block_fetches(f, l);
    }
    h.advance(Duration::from_secs(8));
    assert_eq!(h.node(l).replica(&tp()).unwrap().isr, vec![NodeId(l)]);
    let c = send(&mut h, l, Acks::All, "refused");
    let (code, _) = err(&mut h, c);
    assert_eq!(code, ErrorCode::NotEnoughReplicas);
}

/// KIP-279: A leads epoch 1 and holds m2 that B never fetched; B leads epoch 2 and
/// writes m3 at the same offset; then A leads again (epoch 3, unclean here) and
/// writes m4. When B returns, its last epoch (2) is unknown to A: A answers with
/// the end of epoch 1, and B must truncate to where *its* epoch 1 ends (offset 1),
/// dropping m3, not just to A's end of epoch 1 (offset 2), which would keep m3
/// beside A's m2 at the same offset.
#[test]
fn kip_279_follower_truncates_to_where_the_epochs_diverge() {
    // Broker 3 is a voter but holds no replica: replicas are two of the three.
    let mut h = cluster(13);
    create(
        &mut h,
        TopicConfig {
            replication_factor: 2,
            min_insync_replicas: 1,
            unclean_leader_election: true,
            ..TopicConfig::new("t", 1)
        },
    );
    let a = leader(&h).unwrap();
    let replicas = h.node(a).replica(&tp()).unwrap().replicas.clone();
    let b = replicas.iter().map(|n| n.0).find(|n| *n != a).unwrap();
    let c = send(&mut h, a, Acks::All, "m1");
    h.advance(Duration::from_millis(300));
    produced(&mut h, c);
    // A writes m2 that B never fetches.
    h.cut(a, b);
    let c = send(&mut h, a, Acks::Leader, "m2");
    h.advance(Duration::from_millis(100));
    assert_eq!(produced(&mut h, c), Offset(1));
    h.crash(a);
    h.heal();
    h.advance(Duration::from_secs(10));
    assert_eq!(leader(&h), Some(b), "B leads epoch 2");
    let c = send(&mut h, b, Acks::Leader, "m3");
    h.advance(Duration::from_millis(100));
    assert_eq!(produced(&mut h, c), Offset(1));
    // B dies before A returns; A comes back and is elected (unclean: not in B's ISR).
    h.crash(b);
    h.restart(a);
    h.advance(Duration::from_secs(15));
    assert_eq!(leader(&h), Some(a), "A leads epoch 3");
    let c = send(&mut h, a, Acks::Leader, "m4");
    h.advance(Duration::from_millis(100));
    assert_eq!(produced(&mut h, c), Offset(2));
    h.restart(b);
    h.advance(Duration::from_secs(15));
    assert_eq!(values(&h, a), vec!["m1", "m2", "m4"]);
    assert_eq!(values(&h, b), vec!["m1", "m2", "m4"], "B dropped m3 and took m2, m4");
    assert!(h
        .events()
        .iter()
        .any(|(_, n, e)| *n == NodeId(b) && matches!(e, Event::Truncated { end: Offset(1), removed: 1, .. })));
}
