//! The checker can fail: a broker whose disk acknowledges a Persist before the
//! writes are durable (so it acks records a crash then loses) must be caught within
//! 200 seeds. The same bug as a patch to mq-core lives in
//! `tests/mutants/ack_before_persist.patch` (run by `tests/mutants/run.sh`).

//!
//! The seeds are single-node clusters: there the local disk is all that protects an
//! acknowledged record, so a lying disk must show. With replication, losing an
//! `acks=all` record also needs every in-sync replica to crash before it persisted,
//! which makes the bug rarer per seed and multi-node seeds far slower in a debug
//! build; the replication mutants of `tests/mutants/` cover those clusters.

use mq_sim::{run_seed, Mutation, Options, SimConfig};

#[test]
fn a_lying_disk_is_caught_within_200_seeds() {
    let single_node = (0..).filter(|seed| Options::draw(*seed).cluster_size == 1).take(200);
    let caught = single_node.into_iter().find_map(|seed| {
        let report = run_seed(&SimConfig { mutation: Mutation::LyingDisk, ..SimConfig::new(seed) });
        report.violation.filter(|v| !v.liveness).map(|v| (seed, v))
    });
    let (seed, v) = caught.expect("200 seeds with a lying disk and no safety violation: the checker is blind");
    assert!(
        matches!(
            v.invariant,
            "acked_not_lost"
                | "committed_stable"
                | "hw_monotonic"
                | "acked_at_offset"
                | "log_matching"
                | "metadata_committed_stable"
                | "metadata_commit_protected"
        ),
        "seed {seed} failed for another reason: {} {}",
        v.invariant,
        v.what
    );
}

#[test]
fn a_panic_is_that_seeds_failure_not_a_crash_of_the_campaign() {
    let report = run_seed(&SimConfig { mutation: Mutation::Panic, ..SimConfig::new(1) });
    let v = report.violation.expect("the injected panic is reported");
    assert_eq!(v.invariant, "core_panic");
    assert!(v.what.contains("injected panic"), "{}", v.what);
    assert!(report.events > 0, "counters of the run up to the panic are kept");
}

mod auth {
    //! `auth_not_bypassed` and `auth_refused` (docs/invariants.md) judge effects
    //! and answers, not the broker's word: fed a history where an adversarial
    //! value was read, committed or appended, or a hostile request was answered
    //! OK, the checker fails.

    use bytes::Bytes;
    use mq_core::log::PartitionLog;
    use mq_core::wire::{Acks, Record, RecordBatch};
    use mq_core::{Instant, LeaderEpoch, NodeId, Offset, TopicPartition};
    use mq_sim::checker::Checker;
    use mq_sim::history::History;

    fn invariant(c: &Checker) -> Option<&'static str> {
        c.violation().map(|v| v.invariant)
    }

    #[test]
    fn a_consumer_reading_an_adversarial_value_fails_auth_not_bypassed() {
        let mut c = Checker::single_node();
        let mut h = History::default();
        let tp = TopicPartition::new("t0", 0);
        let op = h.invoke(1, tp.clone(), Acks::All, 1, Instant::ZERO);
        let mut log = PartitionLog::new(tp.clone());
        // An honest record, then one an adversary slipped in (attack 3).
        let honest = h.ops[op as usize].values[0].clone();
        let hostile = Bytes::from_static(b"x3.0");
        log.append(RecordBatch::new(vec![Record::from_value(honest)]), LeaderEpoch(0), 0);
        log.append(RecordBatch::new(vec![Record::from_value(hostile.clone())]), LeaderEpoch(0), 0);
        log.mark_persisted(Offset(2));
        c.on_high_watermark(1, &tp, LeaderEpoch(0), Offset(1), &log, &h);
        assert_eq!(invariant(&c), None, "the honest prefix passes");
        c.on_read(9, &tp, Offset(1), &hostile, &h);
        assert_eq!(invariant(&c), Some("auth_not_bypassed"), "{:?}", c.violation());
    }

    #[test]
    fn an_adversarial_value_committed_fails_auth_not_bypassed() {
        let mut c = Checker::single_node();
        let h = History::default();
        let tp = TopicPartition::new("t0", 0);
        let mut log = PartitionLog::new(tp.clone());
        let batch = RecordBatch::new(vec![Record::from_value(&b"x0.0"[..]), Record::from_value(&b"x0.1"[..])]);
        log.append(batch, LeaderEpoch(0), 0);
        log.mark_persisted(Offset(2));
        c.on_high_watermark(1, &tp, LeaderEpoch(0), Offset(2), &log, &h);
        assert_eq!(invariant(&c), Some("auth_not_bypassed"), "{:?}", c.violation());
    }

    #[test]
    fn an_adversarial_append_or_an_ok_answer_fails() {
        let mut c = Checker::single_node();
        c.on_adversarial_append(NodeId(2), &TopicPartition::new("t0", 1), &Bytes::from_static(b"x7.1"));
        assert_eq!(invariant(&c), Some("auth_not_bypassed"));
        let mut c = Checker::single_node();
        c.on_attack_accepted(12, 40, "produce t0/1 acks=All records=3 to n1", "Produced");
        assert_eq!(invariant(&c), Some("auth_refused"));
    }
}

/// `duplicates_bounded`: a network that delivers every produce request twice
/// appends records of non-idempotent sends (acks=0, acks=1, acks=all without
/// idempotence) more often than any producer sent them. The checker counts every
/// request that carried a record, so the extra copies are caught. Idempotent
/// sends are not safe from such a transport either: a copy's refusal can reach
/// the producer before the original's success (the producer takes the first
/// answer and sends the records again), which `no_duplicates_idempotent` catches
/// (seed 1 since 8fa30f8). Every safety failure must be one of the two, and
/// `duplicates_bounded` must be among them.
#[test]
fn requests_duplicated_behind_the_client_fail_duplicates_bounded() {
    let mut bounded = None;
    for seed in 0..20 {
        let report = run_seed(&SimConfig { mutation: Mutation::DuplicateRequests, ..SimConfig::new(seed) });
        let Some(v) = report.violation.filter(|v| !v.liveness) else { continue };
        assert!(
            ["duplicates_bounded", "no_duplicates_idempotent"].contains(&v.invariant),
            "seed {seed}: {} ({})",
            v.invariant,
            v.what
        );
        if v.invariant == "duplicates_bounded" {
            bounded = Some(seed);
            break;
        }
    }
    assert!(bounded.is_some(), "20 seeds with duplicated produce requests and no duplicates_bounded violation");
}
