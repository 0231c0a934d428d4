//! BUGGIFY (docs/simulator.md "BUGGIFY"): with a seed in `NodeConfig::buggify`
//! the nodes take legal but rare paths at named points and count each firing as
//! a `buggify.*` coverage mark; without one (the default) no point ever fires.
//! Either way a replicated partition keeps every acknowledged record.

mod support;

use bytes::Bytes;
use mq_core::harness::Harness;
use mq_core::wire::{Acks, ErrorCode, Record, RecordBatch, RequestBody, ResponseBody, TopicConfig};
use mq_core::{Duration, Mark, PartitionId, TopicPartition};
use support::{ok, response, CLIENT};

const BUGGIFY_MARKS: [Mark; 4] = [
    Mark::BuggifyRaftShortAppend,
    Mark::BuggifyRaftEarlyElection,
    Mark::BuggifyReplicaSmallFetch,
    Mark::BuggifyProduceShortCommitWait,
];

/// Runs a three-broker cluster (BUGGIFY seed `buggify`), produces 40 acks=all
/// batches to `t/0` one after the other, and returns the records acknowledged,
/// the records the leader's committed log holds, and the BUGGIFY marks of all
/// nodes.
fn run(seed: u64, buggify: Option<u64>) -> (Vec<String>, Vec<String>, u64) {
    let mut h = Harness::new(3, seed, |c| mq_core::NodeConfig { buggify, ..c });
    h.wait_ready();
    let config = TopicConfig { replication_factor: 3, min_insync_replicas: 2, ..TopicConfig::new("t", 1) };
    let c = h.request(CLIENT, 1, RequestBody::CreateTopic(config));
    h.advance(Duration::from_millis(500));
    assert_eq!(ok(&mut h, c), ResponseBody::TopicCreated);
    let tp = TopicPartition::new("t", 0);
    let mut acked = Vec::new();
    for i in 0..40 {
        let leader = support::leader_of(&h, &tp).expect("a leader");
        let v = format!("v{i}");
        let batch = RecordBatch::new(vec![Record::from_value(Bytes::copy_from_slice(v.as_bytes()))]);
        let c = h.request(
            CLIENT,
            leader,
            RequestBody::Produce { topic: "t".into(), partition: PartitionId(0), acks: Acks::All, batch },
        );
        h.advance(Duration::from_millis(100));
        match response(&mut h, c).body {
            Ok(ResponseBody::Produced { .. }) => acked.push(v),
            // BUGGIFY's short commit wait: the outcome is unknown, not a failure.
            Err(e) if e.code == ErrorCode::Timeout => {}
            other => panic!("{other:?}"),
        }
    }
    h.advance(Duration::from_secs(2));
    let leader = support::leader_of(&h, &tp).expect("a leader");
    let committed = support::log_values(&h, leader, &tp);
    let marks = (1..=3).map(|n| BUGGIFY_MARKS.iter().map(|m| h.node(n).coverage().get(*m)).sum::<u64>()).sum();
    (acked, committed, marks)
}

#[test]
fn without_a_seed_no_point_fires() {
    let (acked, _, marks) = run(3, None);
    assert_eq!(marks, 0);
    assert_eq!(acked.len(), 40, "no produce times out without BUGGIFY");
}

#[test]
fn with_a_seed_points_fire_and_every_acknowledged_record_is_kept() {
    let mut fired = 0;
    for s in 0..6 {
        let (acked, committed, marks) = run(s, Some(100 + s));
        fired += marks;
        for v in &acked {
            assert!(committed.contains(v), "seed {s}: acknowledged {v} is not in the leader's log {committed:?}");
        }
        // A timed-out produce may still commit: the log holds every record once.
        let mut sorted = committed.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), committed.len(), "seed {s}: {committed:?}");
    }
    assert!(fired > 0, "no BUGGIFY point fired in six seeds");
}
