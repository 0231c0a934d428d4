//! `mq-sim shrink` (issue 9, docs/simulator.md "Shrinking"): reduce a failing
//! seed to a smaller run that breaks the same invariant.
//!
//! The seed's run is recorded as a [`Schedule`]: its options and every fault it
//! applied, as concrete decisions. The shrinker then tries smaller schedules, one
//! change at a time, and keeps a change when the run still breaks the same
//! invariant within no more events than the best so far (delta debugging, greedy):
//!
//! 1. keep only the faults that applied before the violation;
//! 2. a smaller system: one broker, voter, topic, partition, producer, group or
//!    member fewer, half the produce operations, half the safety or liveness phase;
//! 3. fewer faults: drop halves, quarters, ... and finally single faults;
//! 4. less noise: no message loss, duplication, tail latency or reordering, no slow
//!    fsyncs, no clock drift, no retention, no aimed faults, no BUGGIFY, no nacks or rejects,
//!    no authentication and adversaries;
//! 5. shorter faults: each crash, pause, partition or clog half as long.
//!
//! Once no candidate wins, each is tried again with the noise streams drawn from
//! three other seeds (a smaller system shifts every later draw, and the failure
//! may need only another draw to recur); a win goes back to the first pass.
//!
//! Every kept change makes the schedule strictly smaller in one of these measures,
//! so the search ends; `max_runs` bounds it too. Each candidate runs with an event
//! budget equal to the best run's events, so a candidate that cannot win stops
//! early. If the recorded faults do not reproduce the failure (an aimed fault of
//! the seed drew from the fault stream that a schedule no longer consumes), the
//! shrinker keeps the seed's random faults and shrinks everything else.

use crate::options::Options;
use crate::schedule::{Fault, Schedule, Timed};
use crate::{run_seed, Mutation, Report, SimConfig, VERSION};
use std::fmt;

/// The size of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Simulated events up to the violation.
    pub events: u64,
    /// Faults applied.
    pub faults: u64,
    /// Produce operations invoked.
    pub ops: u64,
}

impl Size {
    fn of(r: &Report) -> Size {
        Size { events: r.events, faults: r.faults.len() as u64, ops: r.counters.ops_invoked }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "events={} faults={} ops={}", self.events, self.faults, self.ops)
    }
}

/// What to shrink.
#[derive(Clone, Debug)]
pub struct ShrinkConfig {
    /// The failing seed.
    pub seed: u64,
    /// The deliberate bug it runs with.
    pub mutation: Mutation,
    /// Most runs to try (each candidate is one run).
    pub max_runs: u64,
}

/// The result.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The invariant the seed and the shrunk schedule break.
    pub invariant: String,
    /// What it says at the end.
    pub what: String,
    /// The seed's run.
    pub before: Size,
    /// The shrunk schedule's run.
    pub after: Size,
    /// The shrunk schedule.
    pub schedule: Schedule,
    /// Runs made.
    pub runs: u64,
    /// Changes kept.
    pub kept: u64,
}

/// One run of a candidate: its size and report when it breaks `invariant` within
/// `budget` events.
fn attempt(s: &Schedule, budget: u64, invariant: &str) -> Option<(Size, Report)> {
    // A run stuck past the budget reports `event_budget`, which is not the
    // invariant sought (unless it is: then the budget must stay as it was).
    let event_budget = if invariant == "event_budget" { crate::sim::EVENT_BUDGET } else { budget.max(1) };
    let cfg = SimConfig { event_budget, ..SimConfig::from_schedule(s.clone()) };
    let report = run_seed(&cfg);
    match &report.violation {
        Some(v) if v.invariant == invariant => Some((Size::of(&report), report)),
        _ => None,
    }
}

/// Shrinks `cfg.seed`; `progress` hears one line per kept change.
pub fn shrink(cfg: &ShrinkConfig, mut progress: impl FnMut(&str)) -> Result<Shrunk, String> {
    let base = run_seed(&SimConfig { mutation: cfg.mutation, ..SimConfig::new(cfg.seed) });
    let Some(v) = base.violation.clone() else {
        return Err(format!("seed {} passes (mutation {}): nothing to shrink", cfg.seed, cfg.mutation));
    };
    let invariant = v.invariant.to_string();
    let before = Size::of(&base);
    let mut schedule = Schedule {
        version: VERSION.to_owned(),
        seed: cfg.seed,
        mutation: cfg.mutation.to_string(),
        invariant: Some(invariant.clone()),
        options: base.options.clone(),
        random_faults: false,
        faults: base.faults.clone(),
        max_ops: Some(base.counters.ops_invoked.max(1)),
    };
    let mut runs = 1;
    let mut best = match attempt(&schedule, before.events, &invariant) {
        Some(found) => found,
        None => {
            progress("the recorded faults do not reproduce the failure; keeping the seed's random faults");
            schedule.random_faults = true;
            schedule.faults.clear();
            runs += 1;
            attempt(&schedule, u64::MAX, &invariant)
                .ok_or_else(|| "the seed's options alone do not reproduce the failure".to_owned())?
        }
    };
    runs += 1;
    let mut kept = 0;
    // Phase 1 tries each candidate on the schedule's own streams. Once none wins,
    // phase 2 tries them again with the noise streams drawn afresh: a smaller
    // system or one fault fewer shifts every later draw of the network and disks,
    // so a change that is fine in itself often loses only by the luck of those
    // draws. A win there goes back to phase 1.
    let mut rerolls = 0;
    'search: loop {
        let mut improved = false;
        for (what, candidate) in phase_candidates(&schedule, &best.1, rerolls) {
            if runs >= cfg.max_runs {
                progress(&format!("stopping after {runs} runs (--max-runs)"));
                break 'search;
            }
            runs += 1;
            if let Some((size, report)) = attempt(&candidate, best.0.events, &invariant) {
                // A redraw of the same schedule must be strictly shorter to count.
                let same_schedule = Schedule { seed: schedule.seed, ..candidate.clone() } == schedule;
                let better = size.events < best.0.events || (size.events == best.0.events && !same_schedule);
                if better {
                    schedule = candidate;
                    // Workload beyond the violation never ran: bound it there.
                    schedule.max_ops = Some(report.counters.ops_invoked.max(1));
                    kept += 1;
                    progress(&format!("run {runs}: {what}: {size}"));
                    best = (size, report);
                    improved = true;
                    break;
                }
            }
        }
        match (improved, rerolls) {
            (true, _) => rerolls = 0,
            (false, 0) => rerolls = REROLLS,
            (false, _) => break,
        }
    }
    let what = best.1.violation.as_ref().map(|v| v.what.clone()).unwrap_or_default();
    Ok(Shrunk { invariant, what, before, after: best.0, schedule, runs, kept })
}

/// How many fresh draws of the noise streams phase 2 tries per candidate.
const REROLLS: u64 = 3;

/// The candidates of one pass: [`candidates`] as they are (`rerolls == 0`), or
/// each with its noise streams drawn from `rerolls` other seeds, and last the
/// schedule itself on those seeds (kept only when strictly shorter).
fn phase_candidates(s: &Schedule, last: &Report, rerolls: u64) -> Vec<(String, Schedule)> {
    let base = candidates(s, last);
    if rerolls == 0 {
        return base;
    }
    let seeds: Vec<u64> = (1..=rerolls).map(|k| mq_core::Seed(s.seed).child("shrink-redraw", k).0).collect();
    let mut out = Vec::new();
    for (what, c) in base.iter().chain([(String::from("the same schedule"), s.clone())].iter()) {
        for &seed in &seeds {
            out.push((format!("{what}, streams of seed {seed}"), Schedule { seed, ..c.clone() }));
        }
    }
    out
}

/// The changes to try on `s` (whose run is `last`), most promising first. Each
/// moves one measure of `s` one way only (smaller, or for the pacing options larger
/// up to a cap), so keeping changes terminates.
fn candidates(s: &Schedule, last: &Report) -> Vec<(String, Schedule)> {
    let mut out: Vec<(String, Schedule)> = Vec::new();
    let with = |f: &dyn Fn(&mut Schedule)| {
        let mut c = s.clone();
        f(&mut c);
        c
    };
    let mut push = |what: String, c: Schedule| {
        if c != *s && c.options.validate().is_ok() {
            out.push((what, c));
        }
    };
    // 1. Only the faults that applied.
    if !s.random_faults && last.faults.len() < s.faults.len() {
        push("keep only the faults that applied".into(), with(&|c| c.faults = last.faults.clone()));
    }
    // 2. A smaller system.
    let o = &s.options;
    if o.cluster_size > 1 {
        push(format!("{} brokers", o.cluster_size - 1), with(&|c| fewer_brokers(c)));
    }
    if o.voters.len() > 1 {
        push(
            format!("{} voters", o.voters.len() - 1),
            with(&|c| {
                c.options.voters.pop();
            }),
        );
    }
    if o.topics > 1 {
        push(format!("{} topics", o.topics - 1), with(&|c| c.options.topics -= 1));
    }
    if o.partitions > 1 {
        push(format!("{} partitions", o.partitions - 1), with(&|c| c.options.partitions -= 1));
    }
    if o.producers > 1 {
        push(format!("{} producers", o.producers - 1), with(&|c| c.options.producers -= 1));
    }
    if !o.groups.is_empty() {
        push(
            format!("{} groups", o.groups.len() - 1),
            with(&|c| {
                c.options.groups.pop();
            }),
        );
    }
    for (g, go) in o.groups.iter().enumerate() {
        if go.members > 1 {
            push(
                format!("group {g}: {} members", go.members - 1),
                with(&|c| {
                    c.options.groups[g].members -= 1;
                    c.options.groups[g].weights.pop();
                }),
            );
        }
    }
    if o.consumer_per_partition {
        push("one consumer".into(), with(&|c| c.options.consumer_per_partition = false));
    }
    if let Some(max) = s.max_ops.filter(|m| *m > 1) {
        push(format!("{} produce operations", max / 2), with(&|c| c.max_ops = Some(max / 2)));
    }
    if o.safety_ms > 100 {
        push(format!("safety phase {} ms", o.safety_ms / 2), with(&|c| c.options.safety_ms /= 2));
    }
    if o.liveness_ms > 1_000 {
        push(format!("liveness phase {} ms", o.liveness_ms / 2), with(&|c| c.options.liveness_ms /= 2));
    }
    if o.batch_max_records > 1 {
        push("one record per batch".into(), with(&|c| c.options.batch_max_records = 1));
    }
    // 3. Fewer faults: halves, quarters, ..., single faults.
    if !s.random_faults {
        let n = s.faults.len();
        let mut chunks = 2;
        while n > 0 && chunks / 2 < n {
            let size = n.div_ceil(chunks);
            for start in (0..n).step_by(size) {
                let end = (start + size).min(n);
                push(
                    format!("without faults {start}..{end}"),
                    with(&|c| {
                        c.faults = s
                            .faults
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i < start || *i >= end)
                            .map(|(_, t)| t.clone())
                            .collect();
                    }),
                );
            }
            chunks *= 2;
        }
    }
    // 4. Less noise.
    let quiet: [Quieting; 15] = [
        ("no message loss", o.loss_prob > 0.0, |o| o.loss_prob = 0.0),
        ("no duplicated messages", o.dup_prob > 0.0, |o| o.dup_prob = 0.0),
        ("no tail latency", o.delay_tail_prob > 0.0, |o| o.delay_tail_prob = 0.0),
        ("no reordering", o.reorder, |o| o.reorder = false),
        ("no slow fsyncs", o.fsync_slow_prob > 0.0, |o| o.fsync_slow_prob = 0.0),
        ("no clock drift", o.drift_max_ppm > 0, |o| o.drift_max_ppm = 0),
        ("no retention", o.retention_bytes.is_some() || o.retention_ms.is_some(), |o| {
            o.retention_bytes = None;
            o.retention_ms = None;
        }),
        ("no aimed controller crashes", o.crash_new_controller_prob > 0.0, |o| o.crash_new_controller_prob = 0.0),
        ("no figure-8 script", o.figure8, |o| o.figure8 = false),
        ("no aimed faults at protocol moments", s.random_faults && o.aimed.any(), |o| {
            o.aimed = crate::aimed::AimedOptions::off()
        }),
        ("no BUGGIFY", o.buggify, |o| o.buggify = false),
        ("no torn writes", o.torn_prob > 0.0, |o| o.torn_prob = 0.0),
        (
            "no nacks, rejects or forgotten records",
            o.groups.iter().any(|g| g.nack_prob + g.reject_prob + g.forget_prob > 0.0),
            |o| {
                for g in &mut o.groups {
                    g.nack_prob = 0.0;
                    g.reject_prob = 0.0;
                    g.forget_prob = 0.0;
                }
            },
        ),
        ("no random faults", s.random_faults && fault_weights(o) > 0, |o| {
            o.w_crash = 0;
            o.w_pause = 0;
            o.w_partition = 0;
            o.w_clog = 0;
            o.w_clock_step = 0;
            o.w_crash_controller = 0;
            o.w_member = 0;
            o.w_shutdown = 0;
        }),
        ("no authentication (and no adversaries)", o.auth, |o| o.auth = false),
    ];
    for (what, applies, change) in quiet {
        if applies {
            push(what.into(), with(&|c| change(&mut c.options)));
        }
    }
    // Without authentication the producers start at once instead of after the
    // login: keep their start where it was, among the faults.
    if let Some(ready) = last.security_ready_ns.filter(|_| o.auth) {
        let start = ready.div_ceil(1_000_000);
        push(
            format!("no authentication, producers from {start} ms"),
            with(&|c| {
                c.options.auth = false;
                c.options.workload_start_ms = c.options.workload_start_ms.max(start);
            }),
        );
    }
    // 5. Shorter faults.
    if !s.random_faults {
        for (i, t) in s.faults.iter().enumerate() {
            if let Some(d) = t.fault.duration_ns().filter(|d| *d > 1_000_000) {
                push(
                    format!("fault {i} lasts {} ms", d / 2_000_000),
                    with(&|c| {
                        c.faults[i] = Timed { at_ns: t.at_ns, fault: t.fault.with_duration(d / 2) };
                    }),
                );
            }
        }
    }
    // 6. Sooner and sparser: the same story in fewer events. Faults earlier (all,
    // then one at a time: sums of fault times only shrink), and slower pacing
    // (heartbeats follow the election timeout, a tenth of it; a producer that
    // ticks less often draws fewer idle ticks). The pacing options only grow, up
    // to a cap, so no pair of changes undoes each other.
    if !s.random_faults && s.faults.iter().any(|t| t.at_ns > 1_000_000) {
        push("faults at half their times".into(), with(&|c| c.faults.iter_mut().for_each(|t| t.at_ns /= 2)));
        for (i, t) in s.faults.iter().enumerate().filter(|(_, t)| t.at_ns > 1_000_000) {
            push(format!("fault {i} at {} ms", t.at_ns / 2_000_000), with(&|c| c.faults[i].at_ns /= 2));
        }
    }
    if o.election_timeout_ms < MAX_ELECTION_TIMEOUT_MS {
        let longer = (o.election_timeout_ms * 2).min(MAX_ELECTION_TIMEOUT_MS);
        push(format!("election timeout {longer} ms"), with(&|c| c.options.election_timeout_ms = longer));
    }
    if o.produce_interval_us < MAX_PRODUCE_INTERVAL_US {
        let slower = (o.produce_interval_us * 2).min(MAX_PRODUCE_INTERVAL_US);
        push(format!("produce interval {slower} us"), with(&|c| c.options.produce_interval_us = slower));
    }
    if o.auth && o.attack_interval_ms < MAX_ATTACK_INTERVAL_MS {
        let sparser = (o.attack_interval_ms * 2).min(MAX_ATTACK_INTERVAL_MS);
        push(format!("attacks every {sparser} ms"), with(&|c| c.options.attack_interval_ms = sparser));
    }
    out
}

/// The sparsest adversary pacing the shrinker moves to (20 times the sparsest drawn).
const MAX_ATTACK_INTERVAL_MS: u64 = 2_000;
/// The longest election timeout the shrinker moves to (the largest drawn one).
const MAX_ELECTION_TIMEOUT_MS: u64 = 1_000;
/// The slowest producer pacing the shrinker moves to (20 times the slowest drawn).
const MAX_PRODUCE_INTERVAL_US: u64 = 100_000;

/// A change that removes a source of noise: what it says, whether it applies, and
/// the change.
type Quieting = (&'static str, bool, fn(&mut Options));

fn fault_weights(o: &Options) -> u32 {
    o.w_crash + o.w_pause + o.w_partition + o.w_clog + o.w_clock_step + o.w_crash_controller + o.w_member + o.w_shutdown
}

/// One broker fewer: the last one goes, with the faults that name it.
fn fewer_brokers(c: &mut Schedule) {
    let o = &mut c.options;
    o.cluster_size -= 1;
    o.voters.retain(|v| *v <= o.cluster_size);
    if o.voters.is_empty() {
        o.voters.push(1);
    }
    o.replication_factor = o.replication_factor.min(o.cluster_size as u16);
    o.min_insync_replicas = o.min_insync_replicas.min(o.replication_factor);
    let nodes = o.cluster_size as usize;
    for t in &mut c.faults {
        if let Fault::Partition { side, .. } = &mut t.fault {
            side.retain(|p| !matches!(p, mq_core::Peer::Node(id) if id.0 as usize > nodes));
        }
    }
    c.faults.retain(|t| t.fault.fits(nodes, usize::MAX));
    if nodes == 1 {
        // A lone broker has no one to hand its leaderships to (drawn runs never
        // shut one down either).
        o.w_shutdown = 0;
        c.faults.retain(|t| !matches!(t.fault, Fault::Shutdown { .. }));
    }
}
