//! `mq-sim shrink` (issue 9, docs/simulator.md "Shrinking"): reduce a failing
//! seed to a smaller run that breaks the same invariant.
//!
//! The seed's run is recorded as a [`Schedule`]: its options and every fault it
//! applied, as concrete decisions. The shrinker then tries smaller schedules and
//! keeps a change when the run still breaks the same invariant with a [`Size`] no
//! larger than the best so far. It works in passes, each over one kind of change:
//!
//! 1. fewer faults, by delta debugging (Zeller's ddmin): every fault of one kind
//!    or on one node at once, then halves, quarters, ... and single faults;
//! 2. a smaller system: one broker, voter, topic, partition, producer, group or
//!    member fewer, half the produce operations, half the safety or liveness phase;
//! 3. less noise: no message loss, duplication, tail latency or reordering, no slow
//!    fsyncs, no clock drift, no retention, no aimed faults, no BUGGIFY, no nacks or rejects,
//!    no authentication and adversaries;
//! 4. shorter faults: each crash, pause, partition or clog half as long;
//! 5. sooner and sparser: faults earlier, slower pacing.
//!
//! A pass that keeps a change goes on from where it was (it does not start over),
//! and the passes repeat until a round of all of them keeps nothing. Then each
//! candidate is tried again with the noise streams drawn from three other seeds (a
//! smaller system shifts every later draw, and the failure may need only another
//! draw to recur); a win goes back to the plain rounds.
//!
//! When the recorded faults do not reproduce the failure (an aimed fault of the
//! seed drew from the fault stream that a schedule no longer consumes), the
//! shrinker falls back to the seed's own draw: the faults are drawn from the
//! seed's streams as in the campaign, and the passes shrink the options (fewer
//! brokers and clients, fault kinds switched off by their weights, sparser faults);
//! each round tries to freeze the faults of the best run into a recorded list,
//! after which the faults themselves shrink too.
//!
//! Every kept change makes the schedule's size smaller or keeps it and moves one
//! measure of the schedule one way only, so the search ends; `max_runs` bounds it
//! too. Each candidate runs with an event budget derived from the best size, so a
//! candidate that cannot win stops early.

use crate::options::Options;
use crate::schedule::{Fault, Schedule, Timed};
use crate::{run_seed, Mutation, Report, SimConfig, VERSION};
use std::fmt;

/// The size of a run, the measure the shrinker reduces: `total` = events up to
/// the violation + faults applied + brokers + clients (docs/simulator.md
/// "Shrinking"). Events dominate; a fault, broker or client fewer counts as one
/// event less, so a simpler story wins over an equally short one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    /// Simulated events up to the violation.
    pub events: u64,
    /// Faults applied.
    pub faults: u64,
    /// Brokers.
    pub brokers: u64,
    /// Clients: the admin, producers, consumers, group members and adversaries.
    pub clients: u64,
    /// Produce operations invoked (not part of the total: events count them).
    pub ops: u64,
}

impl Size {
    fn of(r: &Report) -> Size {
        Size {
            events: r.events,
            faults: r.faults.len() as u64,
            brokers: u64::from(r.options.cluster_size),
            clients: clients_of(&r.options),
            ops: r.counters.ops_invoked,
        }
    }

    /// The measure compared: events + faults + brokers + clients.
    pub fn total(&self) -> u64 {
        self.events + self.faults + self.brokers + self.clients
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "size={} (events={} faults={} brokers={} clients={}) ops={}",
            self.total(),
            self.events,
            self.faults,
            self.brokers,
            self.clients,
            self.ops
        )
    }
}

/// The clients a run with options `o` has (as `Sim::new` builds them).
fn clients_of(o: &Options) -> u64 {
    let consumers = consumers_of(o);
    let silent = (0..consumers).filter(|i| o.silent_consumers.contains(&(*i as u32))).count() as u64;
    let members: u64 = o.groups.iter().map(|g| u64::from(g.members)).sum();
    let adversaries = if o.auth && !o.silent_adversaries { 2 } else { 0 };
    1 + u64::from(o.producers) + consumers - silent + members + adversaries
}

/// The plain consumers a run with options `o` has: one per partition, or one per
/// topic.
fn consumers_of(o: &Options) -> u64 {
    if o.consumer_per_partition {
        u64::from(o.topics) * u64::from(o.partitions)
    } else {
        u64::from(o.topics)
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
    /// Start from the seed's own draw of faults even when the recorded faults
    /// reproduce the failure (what the shrinker falls back to when they do not).
    pub from_seed_draw: bool,
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
    /// The recorded faults did not reproduce the failure: the shrinker started
    /// from the seed's own draw of faults.
    pub fell_back: bool,
}

impl Shrunk {
    /// How many times smaller the shrunk run is, by [`Size::total`].
    pub fn factor(&self) -> f64 {
        self.before.total() as f64 / self.after.total().max(1) as f64
    }
}

/// One run of a candidate: its size and report when it breaks `invariant` with
/// a size of at most `limit`.
fn attempt(s: &Schedule, limit: u64, invariant: &str) -> Option<(Size, Report)> {
    // A run stuck past the budget reports `event_budget`, which is not the
    // invariant sought (unless it is: then the budget must stay as it was).
    let structure = u64::from(s.options.cluster_size) + clients_of(&s.options);
    let event_budget =
        if invariant == "event_budget" { crate::sim::EVENT_BUDGET } else { limit.saturating_sub(structure).max(1) };
    let cfg = SimConfig { event_budget, ..SimConfig::from_schedule(s.clone()) };
    let report = run_seed(&cfg);
    match &report.violation {
        Some(v) if v.invariant == invariant => Some((Size::of(&report), report)),
        _ => None,
    }
}

/// The search's state: the best schedule, its run, and the bookkeeping.
struct Search<'a, P: FnMut(&str)> {
    invariant: String,
    schedule: Schedule,
    best: (Size, Report),
    runs: u64,
    max_runs: u64,
    kept: u64,
    progress: &'a mut P,
}

/// The search ran out of runs.
struct OutOfRuns;

impl<P: FnMut(&str)> Search<'_, P> {
    /// Tries `candidate` (on its own streams, or on each of `seeds`' when given)
    /// and keeps it if it wins. Returns whether it was kept.
    fn try_keep(&mut self, what: &str, candidate: &Schedule, seeds: &[u64]) -> Result<bool, OutOfRuns> {
        let own = [candidate.seed];
        let seeds = if seeds.is_empty() { &own[..] } else { seeds };
        for &seed in seeds {
            if self.runs >= self.max_runs {
                return Err(OutOfRuns);
            }
            self.runs += 1;
            let c = Schedule { seed, ..candidate.clone() };
            let Some((size, report)) = attempt(&c, self.best.0.total(), &self.invariant) else { continue };
            // A redraw of the same schedule must be strictly smaller to count; any
            // other change may keep the size (it moved one measure one way).
            let same_schedule = Schedule { seed: self.schedule.seed, ..c.clone() } == self.schedule;
            let better = size.total() < self.best.0.total() || (size.total() == self.best.0.total() && !same_schedule);
            if better {
                let redrawn = if seed == candidate.seed { String::new() } else { format!(", streams of seed {seed}") };
                self.schedule = c;
                // Workload beyond the violation never ran: bound it there.
                self.schedule.max_ops = Some(report.counters.ops_invoked.max(1));
                self.kept += 1;
                (self.progress)(&format!("run {}: {what}{redrawn}: {size}", self.runs));
                self.best = (size, report);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One pass over the candidates `gen` makes of the current schedule: after a
    /// win the list is made again and the pass goes on at the same position (the
    /// candidate kept is gone from it). Returns whether anything was kept.
    fn pass(
        &mut self,
        seeds: &[u64],
        gen: fn(&Schedule, &Report) -> Vec<(String, Schedule)>,
    ) -> Result<bool, OutOfRuns> {
        let mut any = false;
        let mut i = 0;
        loop {
            let list = gen(&self.schedule, &self.best.1);
            let Some((what, c)) = list.into_iter().nth(i) else { return Ok(any) };
            if self.try_keep(&what, &c, seeds)? {
                any = true;
            } else {
                i += 1;
            }
        }
    }

    /// Delta debugging over the recorded faults (Zeller's ddmin): the faults of
    /// one kind, or naming one node, at once; then the list in `n` chunks, each
    /// kept alone and each removed, `n` doubling while nothing wins. Returns
    /// whether anything was kept.
    fn ddmin(&mut self, seeds: &[u64]) -> Result<bool, OutOfRuns> {
        if self.schedule.random_faults {
            return Ok(false);
        }
        let mut any = false;
        // Groups that are not contiguous in time: a kind, a node.
        let mut i = 0;
        loop {
            let groups = fault_groups(&self.schedule.faults);
            let Some((what, keep)) = groups.into_iter().nth(i) else { break };
            let c = Schedule { faults: keep, ..self.schedule.clone() };
            if self.try_keep(&what, &c, seeds)? {
                any = true;
            } else {
                i += 1;
            }
        }
        let mut n = 2;
        loop {
            let faults = self.schedule.faults.clone();
            let len = faults.len();
            if len == 0 {
                break;
            }
            let n_now = n.min(len);
            let size = len.div_ceil(n_now);
            let chunks: Vec<(usize, usize)> = (0..len).step_by(size).map(|s| (s, (s + size).min(len))).collect();
            let mut won = false;
            // Subsets first (a big step when the failure needs few faults), then
            // complements; with two chunks the two are the same.
            if chunks.len() > 2 {
                for &(s, e) in &chunks {
                    let c = Schedule { faults: faults[s..e].to_vec(), ..self.schedule.clone() };
                    if self.try_keep(&format!("only faults {s}..{e} of {len}"), &c, seeds)? {
                        won = true;
                        n = 2;
                        break;
                    }
                }
            }
            if !won {
                for &(s, e) in &chunks {
                    let rest: Vec<Timed> = faults[..s].iter().chain(&faults[e..]).cloned().collect();
                    let c = Schedule { faults: rest, ..self.schedule.clone() };
                    if self.try_keep(&format!("without faults {s}..{e} of {len}"), &c, seeds)? {
                        won = true;
                        n = (n_now - 1).max(2);
                        break;
                    }
                }
            }
            if won {
                any = true;
            } else if n_now >= len {
                break;
            } else {
                n = (n_now * 2).min(len);
            }
        }
        Ok(any)
    }

    /// One round: every pass once. Returns whether anything was kept.
    fn round(&mut self, seeds: &[u64]) -> Result<bool, OutOfRuns> {
        let mut any = false;
        if self.schedule.random_faults {
            any |= self.pass(seeds, freeze_candidates)?;
        }
        any |= self.ddmin(seeds)?;
        for gen in [system_candidates, noise_candidates, duration_candidates, pacing_candidates] {
            any |= self.pass(seeds, gen)?;
        }
        if !seeds.is_empty() {
            // Last, the schedule itself on other streams (kept only when smaller).
            let same = self.schedule.clone();
            any |= self.try_keep("the same schedule", &same, seeds)?;
        }
        Ok(any)
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
    let mut fell_back = false;
    runs += u64::from(!cfg.from_seed_draw);
    let recorded = if cfg.from_seed_draw { None } else { attempt(&schedule, before.total(), &invariant) };
    let best = match recorded {
        Some(found) => found,
        None => {
            // The seed's own draw: its faults come from its streams again.
            if !cfg.from_seed_draw {
                progress(
                    "the recorded faults do not reproduce the failure; shrinking from the seed's own draw of faults",
                );
            }
            fell_back = true;
            schedule.random_faults = true;
            schedule.faults.clear();
            runs += 1;
            match attempt(&schedule, u64::MAX, &invariant) {
                Some(found) => found,
                None => {
                    // Without the workload bound, exactly the seed's run.
                    schedule.max_ops = None;
                    runs += 1;
                    attempt(&schedule, u64::MAX, &invariant)
                        .ok_or_else(|| "the seed's own draw does not reproduce the failure as a schedule".to_owned())?
                }
            }
        }
    };
    let mut search =
        Search { invariant, schedule, best, runs, max_runs: cfg.max_runs, kept: 0, progress: &mut progress };
    let redraws: Vec<u64> = (1..=REROLLS).map(|k| mq_core::Seed(cfg.seed).child("shrink-redraw", k).0).collect();
    let mut seeds: &[u64] = &[];
    loop {
        match search.round(seeds) {
            Err(OutOfRuns) => {
                let runs = search.runs;
                (search.progress)(&format!("stopping after {runs} runs (--max-runs)"));
                break;
            }
            Ok(true) => seeds = &[],
            Ok(false) if seeds.is_empty() => seeds = &redraws,
            Ok(false) => break,
        }
    }
    let Search { invariant, schedule, best, runs, kept, .. } = search;
    let what = best.1.violation.as_ref().map(|v| v.what.clone()).unwrap_or_default();
    Ok(Shrunk { invariant, what, before, after: best.0, schedule, runs, kept, fell_back })
}

/// How many fresh draws of the noise streams the redraw rounds try per candidate.
const REROLLS: u64 = 6;

/// Groups of recorded faults that are not contiguous in time, each as the faults
/// left without it: every fault of one kind, every fault naming one node (only
/// groups that are neither empty nor everything).
fn fault_groups(faults: &[Timed]) -> Vec<(String, Vec<Timed>)> {
    let kind = |f: &Fault| match f {
        Fault::Aimed { .. } => "aimed",
        Fault::Crash { .. } => "crash",
        Fault::CrashController { .. } => "controller crash",
        Fault::Pause { .. } => "pause",
        Fault::Partition { .. } => "partition",
        Fault::Clog { .. } => "clog",
        Fault::ClockStep { .. } => "clock step",
        Fault::Shutdown { .. } => "shutdown",
        Fault::DiskStall { .. } => "disk stall",
        Fault::Member { .. } => "member fault",
    };
    fn node(f: &Fault) -> Option<usize> {
        match f {
            Fault::Crash { node, .. }
            | Fault::Pause { node, .. }
            | Fault::Clog { node, .. }
            | Fault::ClockStep { node, .. }
            | Fault::DiskStall { node, .. }
            | Fault::Shutdown { node } => Some(*node),
            Fault::Aimed { fault, .. } => node(fault),
            _ => None,
        }
    }
    let mut out = Vec::new();
    let mut push = |what: String, keep: Vec<Timed>| {
        if !keep.is_empty() && keep.len() < faults.len() && !out.iter().any(|(_, k)| *k == keep) {
            out.push((what, keep));
        }
    };
    let kinds: std::collections::BTreeSet<&str> = faults.iter().map(|t| kind(&t.fault)).collect();
    for k in &kinds {
        push(format!("no {k} faults"), faults.iter().filter(|t| kind(&t.fault) != *k).cloned().collect());
    }
    let nodes: std::collections::BTreeSet<usize> = faults.iter().filter_map(|t| node(&t.fault)).collect();
    for n in &nodes {
        push(
            format!("no faults on n{}", n + 1),
            faults.iter().filter(|t| node(&t.fault) != Some(*n)).cloned().collect(),
        );
    }
    out
}

/// A schedule drawing its faults from the seed: the faults its best run applied,
/// recorded (then they shrink one by one), or fault kinds switched off and the
/// faults sparser.
fn freeze_candidates(s: &Schedule, last: &Report) -> Vec<(String, Schedule)> {
    let mut out = Vec::new();
    let mut push = |what: &str, c: Schedule| {
        if c != *s && c.options.validate().is_ok() {
            out.push((what.to_owned(), c));
        }
    };
    push("record the drawn faults", Schedule { random_faults: false, faults: last.faults.clone(), ..s.clone() });
    let kinds: [(&str, Weight); 8] = [
        ("no drawn crashes", |o| &mut o.w_crash),
        ("no drawn pauses", |o| &mut o.w_pause),
        ("no drawn partitions", |o| &mut o.w_partition),
        ("no drawn clogs", |o| &mut o.w_clog),
        ("no drawn clock steps", |o| &mut o.w_clock_step),
        ("no drawn controller crashes", |o| &mut o.w_crash_controller),
        ("no drawn member faults", |o| &mut o.w_member),
        ("no drawn shutdowns", |o| &mut o.w_shutdown),
    ];
    for (what, weight) in kinds {
        let mut c = s.clone();
        let w = weight(&mut c.options);
        if *w > 0 {
            *w = 0;
            push(what, c);
        }
    }
    if s.options.fault_interval_ms < MAX_FAULT_INTERVAL_MS {
        let mut c = s.clone();
        c.options.fault_interval_ms = (c.options.fault_interval_ms * 2).min(MAX_FAULT_INTERVAL_MS);
        push("drawn faults half as often", c);
    }
    out
}

/// The weight of one kind of drawn fault, in the options.
type Weight = fn(&mut Options) -> &mut u32;

/// The sparsest drawn faults the shrinker moves to (twice the sparsest drawn).
const MAX_FAULT_INTERVAL_MS: u64 = 2_000;

/// A smaller system (and only the faults that applied).
fn system_candidates(s: &Schedule, last: &Report) -> Vec<(String, Schedule)> {
    candidates(s, last, Part::System)
}

/// Less noise.
fn noise_candidates(s: &Schedule, last: &Report) -> Vec<(String, Schedule)> {
    candidates(s, last, Part::Noise)
}

/// Shorter faults.
fn duration_candidates(s: &Schedule, last: &Report) -> Vec<(String, Schedule)> {
    candidates(s, last, Part::Durations)
}

/// Sooner and sparser.
fn pacing_candidates(s: &Schedule, last: &Report) -> Vec<(String, Schedule)> {
    candidates(s, last, Part::Pacing)
}

/// The kinds of changes [`candidates`] makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    System,
    Noise,
    Durations,
    Pacing,
}

/// The changes of one `part` to try on `s` (whose run is `last`), most promising
/// first. Each moves one measure of `s` one way only (smaller, or for the pacing
/// options larger up to a cap), so keeping changes terminates.
fn candidates(s: &Schedule, last: &Report, part: Part) -> Vec<(String, Schedule)> {
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
    if part == Part::System && !s.random_faults && last.faults.len() < s.faults.len() {
        push("keep only the faults that applied".into(), with(&|c| c.faults = last.faults.clone()));
    }
    let o = &s.options;
    // 2. A smaller system.
    if part == Part::System {
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
        // Consumers and adversaries silenced in their slots: every other client
        // keeps its id and streams, so the rest of the run changes least.
        let consumers = consumers_of(o) as u32;
        let talking: Vec<u32> = (0..consumers).filter(|i| !o.silent_consumers.contains(i)).collect();
        if talking.len() > 1 {
            push("no consumers (silenced)".into(), with(&|c| c.options.silent_consumers = (0..consumers).collect()));
        }
        for i in &talking {
            push(format!("consumer {i} silenced"), with(&|c| c.options.silent_consumers.push(*i)));
        }
        if o.auth && !o.silent_adversaries {
            push("adversaries silenced".into(), with(&|c| c.options.silent_adversaries = true));
        }
        if let Some(max) = s.max_ops.filter(|m| *m > 1) {
            push(format!("{} produce operations", max / 2), with(&|c| c.max_ops = Some(max / 2)));
        }
        if o.safety_ms > 100 {
            push(format!("safety phase {} ms", o.safety_ms / 2), with(&|c| c.options.safety_ms /= 2));
        }
        // A liveness failure keeps its liveness phase: a shorter one would only
        // leave less time to recover, a failure of its own.
        let liveness = last.violation.as_ref().is_some_and(|v| v.liveness);
        if o.liveness_ms > 1_000 && !liveness {
            push(format!("liveness phase {} ms", o.liveness_ms / 2), with(&|c| c.options.liveness_ms /= 2));
        }
        if o.batch_max_records > 1 {
            push("one record per batch".into(), with(&|c| c.options.batch_max_records = 1));
        }
    }
    // 3. Less noise.
    if part == Part::Noise {
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
                "no nacks, rejects, forgotten records or seeks",
                o.groups.iter().any(|g| g.nack_prob + g.reject_prob + g.forget_prob + g.seek_prob > 0.0),
                |o| {
                    for g in &mut o.groups {
                        g.nack_prob = 0.0;
                        g.reject_prob = 0.0;
                        g.forget_prob = 0.0;
                        g.seek_prob = 0.0;
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
    }
    // 4. Shorter faults.
    if part == Part::Durations && !s.random_faults {
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
    if part != Part::Pacing {
        return out;
    }
    // 5. Sooner and sparser: the same story in fewer events. Faults earlier (all,
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

#[cfg(test)]
mod tests {
    use super::*;
    use mq_core::{NodeId, Peer};

    fn at(ms: u64, fault: Fault) -> Timed {
        Timed { at_ns: ms * 1_000_000, fault }
    }

    #[test]
    fn fault_groups_are_kinds_and_nodes_and_never_all_or_nothing() {
        let faults = vec![
            at(1, Fault::Crash { node: 0, disconnect: true, down_ns: 5 }),
            at(2, Fault::Pause { node: 1, for_ns: 5 }),
            at(3, Fault::Crash { node: 1, disconnect: false, down_ns: 5 }),
            at(4, Fault::Partition { side: vec![Peer::Node(NodeId(1))], one_way: false, for_ns: 5 }),
        ];
        let groups = fault_groups(&faults);
        let names: Vec<&str> = groups.iter().map(|(w, _)| w.as_str()).collect();
        assert_eq!(
            names,
            ["no crash faults", "no partition faults", "no pause faults", "no faults on n1", "no faults on n2"]
        );
        let kept = |what: &str| groups.iter().find(|(w, _)| w == what).map(|(_, k)| k.len()).unwrap_or(99);
        assert_eq!(kept("no crash faults"), 2);
        assert_eq!(kept("no faults on n2"), 2, "the pause and crash of node slot 1 go");
        // One kind only: removing it would remove everything, which ddmin tries itself.
        let crashes = vec![faults[0].clone(), faults[2].clone()];
        assert_eq!(
            fault_groups(&crashes).iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(),
            ["no faults on n1", "no faults on n2"]
        );
        assert!(fault_groups(&crashes[..1]).is_empty());
    }

    #[test]
    fn the_size_counts_events_faults_brokers_and_clients() {
        let mut o = Options::draw(1);
        o.topics = 2;
        o.partitions = 3;
        o.producers = 2;
        o.groups.clear();
        o.auth = false;
        o.consumer_per_partition = true;
        assert_eq!(clients_of(&o), 1 + 2 + 6);
        o.silent_consumers = vec![0, 4];
        assert_eq!(clients_of(&o), 1 + 2 + 4);
        o.consumer_per_partition = false;
        assert_eq!(clients_of(&o), 1 + 2 + 1, "consumer 4 no longer exists");
        o.auth = true;
        assert_eq!(clients_of(&o), 1 + 2 + 1 + 2);
        o.silent_adversaries = true;
        assert_eq!(clients_of(&o), 1 + 2 + 1);
        let s = Size { events: 100, faults: 3, brokers: 2, clients: 4, ops: 50 };
        assert_eq!(s.total(), 109);
    }
}
