//! Aimed faults at protocol moments (issue 18; docs/simulator.md "Aimed faults"):
//! they fire in seeds that switch them on, are recorded in the run's schedule
//! as `Fault::Aimed`, and a replay of that schedule (which watches for no
//! moment) injects the same faults at the same instants.

use mq_sim::aimed::{AimedKind, AimedOptions};
use mq_sim::schedule::{Fault, Timed};
use mq_sim::{run_seed, Options, Schedule, SimConfig};

fn aimed(faults: &[Timed]) -> Vec<Timed> {
    faults.iter().filter(|t| matches!(t.fault, Fault::Aimed { .. })).cloned().collect()
}

fn aimed_counters(r: &mq_sim::Report) -> [u64; 8] {
    let c = &r.counters;
    [
        c.aimed_vote,
        c.aimed_vote_rivals,
        c.aimed_isr_commit,
        c.aimed_follower_fsync,
        c.aimed_first_fetch,
        c.aimed_first_commit,
        c.aimed_rebalance,
        c.aimed_deposed,
    ]
}

/// Seed 6 draws first-fetch aimed faults (and no aimed controller crash, whose
/// faults are not recorded).
const SEED: u64 = 6;

#[test]
fn aimed_faults_are_recorded_and_a_schedule_replays_them() {
    let o = Options::draw(SEED);
    assert!(o.aimed.first_fetch > 0.0 && o.crash_new_controller_prob == 0.0, "{o}");
    let report = run_seed(&SimConfig::new(SEED));
    assert!(report.violation.is_none(), "{:?}", report.violation);
    let recorded = aimed(&report.faults);
    assert!(!recorded.is_empty(), "seed {SEED} injects aimed faults");
    let fired: u64 = aimed_counters(&report).iter().sum();
    assert_eq!(fired as usize, recorded.len(), "each recorded aimed fault is counted once");
    assert!(recorded.iter().any(|t| matches!(t.fault, Fault::Aimed { kind: AimedKind::FirstFetch, .. })));

    let schedule = Schedule {
        version: "test".into(),
        seed: SEED,
        mutation: "none".into(),
        invariant: None,
        options: report.options.clone(),
        random_faults: false,
        faults: report.faults.clone(),
        max_ops: None,
    };
    let schedule = Schedule::from_json(&schedule.to_json()).expect("aimed faults survive the JSON form");
    let replay = run_seed(&SimConfig::from_schedule(schedule));
    assert_eq!(aimed(&replay.faults), recorded, "the replay injects the same aimed faults at the same instants");
    assert_eq!(aimed_counters(&replay), aimed_counters(&report));
}

#[test]
fn schedules_without_aimed_options_read_them_as_off() {
    // A schedule written before aimed faults and BUGGIFY existed has neither field.
    let mut v = serde_json::to_value(Options::draw(1)).expect("options serialize");
    let m = v.as_object_mut().expect("an object");
    m.remove("aimed");
    m.remove("buggify");
    let o: Options = serde_json::from_value(v).expect("old options still read");
    assert_eq!(o.aimed, AimedOptions::off());
    assert!(!o.aimed.any() && !o.buggify);
}

#[test]
fn kinds_that_cannot_happen_in_a_seed_are_drawn_off() {
    for seed in 0..200 {
        let o = Options::draw(seed);
        if o.voters.len() < 2 || o.figure8 {
            assert_eq!(o.aimed.vote, 0.0, "seed {seed}");
        }
        if o.replication_factor < 2 {
            assert_eq!(o.aimed.isr_commit + o.aimed.follower_fsync + o.aimed.first_fetch, 0.0, "seed {seed}");
        }
        if o.groups.is_empty() {
            assert_eq!(o.aimed.rebalance, 0.0, "seed {seed}");
        }
        if o.voters.len() < 3 || o.figure8 {
            assert_eq!(o.aimed.admin_commit, 0.0, "seed {seed}");
        }
        if o.replication_factor < 2 {
            assert_eq!(o.aimed.first_commit, 0.0, "seed {seed}");
        }
    }
    // And every kind is on in some seed.
    for k in AimedKind::ALL {
        assert!((0..200).any(|s| Options::draw(s).aimed.prob(k) > 0.0), "{k:?} is never on");
    }
}
