//! `mq-sim shrink` (issue 9): a failing run shrinks to a schedule at least five
//! times smaller in events that still breaks the same invariant, and the written
//! schedule replays to that failure.

use mq_sim::shrink::{shrink, ShrinkConfig};
use mq_sim::{run_seed, Mutation, Schedule, SimConfig};

#[test]
fn a_lying_disk_failure_shrinks_five_fold_and_replays() {
    // Seed 6 with a lying disk breaks metadata_commit_protected after about 4,400
    // events.
    let cfg = ShrinkConfig { seed: 6, mutation: Mutation::LyingDisk, max_runs: 200 };
    let shrunk = shrink(&cfg, |_| {}).expect("seed 6 fails with a lying disk");
    assert!(
        shrunk.after.events * 5 <= shrunk.before.events,
        "only {} -> {} events",
        shrunk.before.events,
        shrunk.after.events
    );
    assert!(shrunk.kept > 0 && shrunk.runs > shrunk.kept);

    // The schedule survives its JSON form and fails the same way when replayed.
    let text = shrunk.schedule.to_json();
    let schedule = Schedule::from_json(&text).expect("a written schedule reads back");
    assert_eq!(schedule, shrunk.schedule);
    let report = run_seed(&SimConfig::from_schedule(schedule));
    let v = report.violation.expect("the shrunk schedule still fails");
    assert_eq!(v.invariant, shrunk.invariant);
    assert_eq!(report.events, shrunk.after.events);
}

#[test]
fn a_schedule_with_a_node_outside_the_cluster_is_refused() {
    let mut schedule = Schedule {
        version: "test".into(),
        seed: 1,
        mutation: "none".into(),
        invariant: None,
        options: mq_sim::Options::draw(1),
        random_faults: false,
        faults: vec![mq_sim::schedule::Timed {
            at_ns: 1_000,
            fault: mq_sim::schedule::Fault::Pause { node: 9, for_ns: 1_000 },
        }],
        max_ops: None,
    };
    let err = Schedule::from_json(&schedule.to_json()).expect_err("node 9 is not in the cluster");
    assert!(err.contains("outside the cluster"), "{err}");
    schedule.faults.clear();
    schedule.options.cluster_size = 0;
    let err = Schedule::from_json(&schedule.to_json()).expect_err("no brokers");
    assert!(err.contains("cluster_size"), "{err}");
}
