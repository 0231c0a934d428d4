//! A seed's coverage marks (docs/simulator.md "Coverage marks") are summed over
//! every node incarnation: the marks a node counted before it crashed or stopped
//! stay in the seed's report after it restarts.

use mq_core::Mark;
use mq_sim::sim::Sim;
use mq_sim::{run_seed, SimConfig};

/// Seed 9 has three restarts (a controlled shutdown and aimed faults) and its
/// ended incarnations counted marks before they went.
const SEED_WITH_RESTARTS: u64 = 9;

#[test]
fn marks_of_ended_incarnations_stay_in_the_seed_report() {
    let mut sim = Sim::new(SimConfig::new(SEED_WITH_RESTARTS));
    sim.run();
    assert!(sim.counters.restarts > 0, "the seed restarts nodes");
    let ended = sim.ended_coverage().clone();
    assert!(!ended.is_empty(), "ended incarnations counted marks");
    let total = sim.coverage();
    for (mark, n) in ended.iter() {
        assert!(total.get(mark) >= n, "{}: {} in the total, {n} from ended incarnations", mark.name(), total.get(mark));
    }
    assert!(total.iter().any(|(m, n)| n > ended.get(m)), "the live nodes add their own marks");
    // The seed's report carries the same sum.
    let report = run_seed(&SimConfig::new(SEED_WITH_RESTARTS));
    assert_eq!(report.coverage, total);
}

#[test]
fn a_seed_with_a_controlled_shutdown_reports_it() {
    let report = run_seed(&SimConfig::new(SEED_WITH_RESTARTS));
    assert!(report.counters.shutdowns_started > 0);
    assert!(report.coverage.get(Mark::ControlledShutdown) > 0, "{}", mq_sim::coverage::seed_line(&report.coverage));
    assert!(report.coverage.get(Mark::ControllerActivated) > 0);
}
