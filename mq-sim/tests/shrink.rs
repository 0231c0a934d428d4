//! `mq-sim shrink` (issue 9): a failing run shrinks to a schedule at least five
//! times smaller in events that still breaks the same invariant, and the written
//! schedule replays to that failure.

use mq_sim::shrink::{shrink, ShrinkConfig};
use mq_sim::{run_seed, Mutation, Schedule, SimConfig};

#[test]
fn a_lying_disk_failure_shrinks_five_fold_and_replays() {
    // Seed 6 with a lying disk breaks metadata_commit_protected after about 4,400
    // events.
    let cfg = ShrinkConfig { seed: 6, mutation: Mutation::LyingDisk, max_runs: 200, from_seed_draw: false };
    let shrunk = shrink(&cfg, |_| {}).expect("seed 6 fails with a lying disk");
    assert!(
        shrunk.after.events * 5 <= shrunk.before.events,
        "only {} -> {} events",
        shrunk.before.events,
        shrunk.after.events
    );
    assert!(shrunk.kept > 0 && shrunk.runs > shrunk.kept);
    assert!(shrunk.after.total() * 5 <= shrunk.before.total(), "{} -> {}", shrunk.before, shrunk.after);
    assert!(!shrunk.fell_back, "the recorded faults reproduce this one");

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
fn from_the_seeds_own_draw_the_options_and_then_the_frozen_faults_shrink() {
    // What the shrinker falls back to when the recorded faults do not reproduce
    // the failure: the faults drawn from the seed's streams again.
    let cfg = ShrinkConfig { seed: 6, mutation: Mutation::LyingDisk, max_runs: 200, from_seed_draw: true };
    let shrunk = shrink(&cfg, |_| {}).expect("seed 6 fails with a lying disk");
    assert!(shrunk.fell_back);
    assert!(shrunk.after.total() * 5 <= shrunk.before.total(), "{} -> {}", shrunk.before, shrunk.after);
    assert!(shrunk.after.brokers <= shrunk.before.brokers && shrunk.after.clients < shrunk.before.clients);
    // The drawn faults were frozen into a list the passes could prune.
    assert!(!shrunk.schedule.random_faults, "the faults of the best run were recorded");
    let report = run_seed(&SimConfig::from_schedule(shrunk.schedule.clone()));
    assert_eq!(report.violation.expect("still fails").invariant, shrunk.invariant);
    assert_eq!(report.events, shrunk.after.events);
}

#[test]
fn a_silenced_consumer_keeps_every_other_client_as_it_was() {
    // Seed 17: two brokers, plain consumers; silencing the consumers leaves the
    // producers' ids and streams alone, so their first operations are the same.
    let base = run_seed(&SimConfig { keep_trace: true, ..SimConfig::new(17) });
    let mut options = base.options.clone();
    let consumers = if options.consumer_per_partition { options.topics * options.partitions } else { options.topics };
    assert!(consumers > 0);
    options.silent_consumers = (0..consumers).collect();
    let schedule = Schedule {
        version: "test".into(),
        seed: 17,
        mutation: "none".into(),
        invariant: None,
        options,
        random_faults: true,
        faults: Vec::new(),
        max_ops: None,
    };
    let quiet = run_seed(&SimConfig { keep_trace: true, ..SimConfig::from_schedule(schedule) });
    let first = 2 + u64::from(base.options.producers); // the admin is c1, producers c2..
    let lines = |r: &mq_sim::Report| r.trace.clone().expect("kept");
    let consumer_ids: Vec<String> = (first..first + u64::from(consumers)).map(|c| format!(" c{c} ")).collect();
    let (loud, silent) = (lines(&base), lines(&quiet));
    assert!(loud.iter().any(|l| consumer_ids.iter().any(|c| l.contains(c.as_str()))), "the consumers run in the seed");
    assert!(
        !silent.iter().any(|l| consumer_ids.iter().any(|c| l.split(' ').nth(1) == Some(c.trim()))),
        "a silenced consumer does nothing"
    );
    let invokes = |ls: &[String]| ls.iter().filter(|l| l.contains(" invoke op ")).take(5).cloned().collect::<Vec<_>>();
    let (a, b) = (invokes(&loud), invokes(&silent));
    assert_eq!(a.len(), 5);
    let what = |l: &String| l.split_once(' ').map(|(_, rest)| rest.to_owned());
    assert_eq!(
        a.iter().map(what).collect::<Vec<_>>(),
        b.iter().map(what).collect::<Vec<_>>(),
        "the same first produce operations"
    );
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
