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
