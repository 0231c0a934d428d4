//! Coverage-guided exploration (docs/simulator.md "Exploring"): `mq-sim explore`
//! treats runs as a fuzzer treats inputs. It keeps every schedule that reached a
//! coverage mark, or a pair of marks, that no kept schedule had reached before (or
//! a mark fewer than [`RARE_SEEDS`] kept runs reached), and derives new candidates
//! from the kept ones, favouring those that hit the rarest marks:
//!
//! - **reseed**: the same options under another seed (network, disks, clocks,
//!   workload and faults drawn anew);
//! - **splice**: one to three options replaced by another seed's draw of them
//!   (other knob values around a schedule that reached something rare);
//! - **intensify**: the parent's own faults, pinned, plus copies of some of them
//!   shifted a little in time (more faults near the moments that got it there);
//! - **trim**: the parent's pinned faults less one.
//!
//! Everything is drawn from one seeded stream, so an exploration is a function of
//! its seed, its start and the batches it was given: [`Explorer::candidates`]
//! hands out a batch, the caller runs it (in parallel if it likes) and gives the
//! reports back to [`Explorer::integrate`] in the same order. The binary stops on a
//! wall-clock budget; nothing here reads a clock.

use crate::coverage::CoverageTally;
use crate::options::Options;
use crate::schedule::{Schedule, Timed};
use crate::{Report, VERSION};
use mq_core::{Coverage, Mark, Seed};
use rand::Rng as _;
use std::collections::BTreeSet;

/// A mark reached by fewer kept runs than this still makes a run worth keeping.
pub const RARE_SEEDS: u64 = 3;

/// How a candidate was made from its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Derivation {
    /// A plain seed of the initial range.
    Seed,
    /// The parent's options under another seed.
    Reseed,
    /// Some of the parent's options replaced by another seed's draw.
    Splice,
    /// The parent's faults pinned, with time-shifted copies of some of them.
    Intensify,
    /// The parent's faults pinned, less one.
    Trim,
}

impl Derivation {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Derivation::Seed => "seed",
            Derivation::Reseed => "reseed",
            Derivation::Splice => "splice",
            Derivation::Intensify => "intensify",
            Derivation::Trim => "trim",
        }
    }
}

/// A run to make.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its number in the exploration (0-based, in the order handed out).
    pub index: u64,
    /// How it was made.
    pub derivation: Derivation,
    /// What to run.
    pub schedule: Schedule,
}

/// A kept run.
#[derive(Clone, Debug)]
struct Entry {
    schedule: Schedule,
    /// The faults the run injected (pinned by `intensify` and `trim`).
    faults: Vec<Timed>,
    coverage: Coverage,
}

/// What integrating one report did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Marks no earlier run had reached.
    pub new_marks: Vec<Mark>,
    /// Pairs of marks no earlier run had reached together.
    pub new_pairs: usize,
    /// Whether the run was kept as a parent.
    pub kept: bool,
}

/// The state of an exploration.
pub struct Explorer {
    rng: mq_core::Rng,
    start_seed: u64,
    initial: u64,
    handed_out: u64,
    corpus: Vec<Entry>,
    tally: CoverageTally,
    pairs: BTreeSet<(usize, usize)>,
    /// Per mark (in [`Mark::ALL`] order), the candidate that first reached it.
    first_reached: Vec<Option<u64>>,
    failures: Vec<(Candidate, Report)>,
}

impl Explorer {
    /// An exploration whose first `initial` candidates are the plain seeds from
    /// `start_seed`, and whose derivations draw from `seed`.
    pub fn new(seed: u64, start_seed: u64, initial: u64) -> Self {
        Explorer {
            rng: Seed(seed).stream("explore"),
            start_seed,
            initial: initial.max(1),
            handed_out: 0,
            corpus: Vec::new(),
            tally: CoverageTally::default(),
            pairs: BTreeSet::new(),
            first_reached: vec![None; Mark::ALL.len()],
            failures: Vec::new(),
        }
    }

    /// The next `n` candidates.
    pub fn candidates(&mut self, n: usize) -> Vec<Candidate> {
        (0..n).map(|_| self.next_candidate()).collect()
    }

    fn next_candidate(&mut self) -> Candidate {
        let index = self.handed_out;
        self.handed_out += 1;
        if index < self.initial || self.corpus.is_empty() {
            let seed = self.start_seed.wrapping_add(index);
            return Candidate { index, derivation: Derivation::Seed, schedule: plain(seed, Options::draw(seed)) };
        }
        let parent = self.pick_parent();
        let (derivation, schedule) = match self.rng.random_range(0..4) {
            0 => (Derivation::Reseed, None),
            1 => (Derivation::Splice, self.splice(parent)),
            2 => (Derivation::Intensify, self.intensify(parent)),
            _ => (Derivation::Trim, self.trim(parent)),
        };
        // A derivation that cannot apply (no faults to pin, no valid splice)
        // falls back to a reseed of the same parent.
        let (derivation, schedule) = match schedule {
            Some(s) => (derivation, s),
            None => (Derivation::Reseed, plain(self.rng.random(), self.corpus[parent].schedule.options.clone())),
        };
        Candidate { index, derivation, schedule }
    }

    /// A kept run, drawn with weight the sum over the marks it hit of
    /// `1 / (1 + kept runs that hit the mark)`: rare marks pull hardest.
    fn pick_parent(&mut self) -> usize {
        let weights: Vec<f64> = self
            .corpus
            .iter()
            .map(|e| e.coverage.hit_marks().map(|(m, _)| 1.0 / (1.0 + self.tally.seeds_hitting(m) as f64)).sum::<f64>())
            .map(|w: f64| w.max(1e-6))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut x = self.rng.random_range(0.0..total);
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    fn splice(&mut self, parent: usize) -> Option<Schedule> {
        let donor = Options::draw(self.rng.random());
        let mut mine = serde_json::to_value(&self.corpus[parent].schedule.options).ok()?;
        let theirs = serde_json::to_value(&donor).ok()?;
        let (mine_obj, theirs_obj) = (mine.as_object_mut()?, theirs.as_object()?);
        let keys: Vec<String> = theirs_obj.keys().cloned().collect();
        for _ in 0..self.rng.random_range(1..=3) {
            let k = &keys[self.rng.random_range(0..keys.len())];
            mine_obj.insert(k.clone(), theirs_obj[k].clone());
        }
        let options: Options = serde_json::from_value(mine).ok()?;
        options.validate().ok()?;
        // The groups' member slots must match the options the faults were drawn
        // for; a splice draws its faults anew.
        Some(plain(self.rng.random(), options))
    }

    fn intensify(&mut self, parent: usize) -> Option<Schedule> {
        let e = &self.corpus[parent];
        if e.faults.is_empty() {
            return None;
        }
        let mut faults = e.faults.clone();
        for _ in 0..self.rng.random_range(1..=3) {
            let mut copy = faults[self.rng.random_range(0..faults.len())].clone();
            let shift = self.rng.random_range(-200_000_000i64..=200_000_000);
            copy.at_ns = copy.at_ns.saturating_add_signed(shift);
            faults.push(copy);
        }
        faults.sort_by_key(|t| t.at_ns);
        Some(pinned(&e.schedule, faults))
    }

    fn trim(&mut self, parent: usize) -> Option<Schedule> {
        let e = &self.corpus[parent];
        if e.faults.is_empty() {
            return None;
        }
        let mut faults = e.faults.clone();
        faults.remove(self.rng.random_range(0..faults.len()));
        Some(pinned(&e.schedule, faults))
    }

    /// Takes the reports of the candidates handed out last, in their order.
    pub fn integrate(&mut self, results: Vec<(Candidate, Report)>) -> Vec<Outcome> {
        results.into_iter().map(|(c, r)| self.integrate_one(c, r)).collect()
    }

    fn integrate_one(&mut self, candidate: Candidate, report: Report) -> Outcome {
        let hit: Vec<usize> = report.coverage.iter().enumerate().filter(|(_, (_, n))| *n > 0).map(|(i, _)| i).collect();
        let mut out = Outcome::default();
        for &i in &hit {
            if self.first_reached[i].is_none() {
                self.first_reached[i] = Some(candidate.index);
                out.new_marks.push(Mark::ALL[i]);
            }
        }
        for (a, &i) in hit.iter().enumerate() {
            for &j in &hit[a + 1..] {
                out.new_pairs += usize::from(self.pairs.insert((i, j)));
            }
        }
        let rare = hit.iter().any(|&i| self.tally.seeds_hitting(Mark::ALL[i]) < RARE_SEEDS);
        out.kept = !out.new_marks.is_empty() || out.new_pairs > 0 || rare;
        if out.kept {
            self.tally.add_seed(&report.coverage);
            self.corpus.push(Entry {
                schedule: candidate.schedule.clone(),
                faults: report.faults.clone(),
                coverage: report.coverage.clone(),
            });
        }
        if !report.passed() {
            self.failures.push((candidate, report));
        }
        out
    }

    /// Runs kept as parents.
    pub fn kept(&self) -> usize {
        self.corpus.len()
    }

    /// Candidates handed out.
    pub fn handed_out(&self) -> u64 {
        self.handed_out
    }

    /// Per mark, the candidate that first reached it (`None`: not reached).
    pub fn first_reached(&self) -> impl Iterator<Item = (Mark, Option<u64>)> + '_ {
        Mark::ALL.iter().copied().zip(self.first_reached.iter().copied())
    }

    /// Marks no run has reached yet.
    pub fn not_reached(&self) -> Vec<Mark> {
        self.first_reached().filter(|(_, f)| f.is_none()).map(|(m, _)| m).collect()
    }

    /// The failing runs, with what made them.
    pub fn failures(&self) -> &[(Candidate, Report)] {
        &self.failures
    }

    /// A failing run as a schedule `mq-sim replay --schedule` replays: its own
    /// faults pinned, whatever its derivation drew them from.
    pub fn failure_schedule(candidate: &Candidate, report: &Report) -> Schedule {
        let mut s = pinned(&candidate.schedule, report.faults.clone());
        s.invariant = report.violation.as_ref().map(|v| v.invariant.to_owned());
        s
    }
}

/// `options` under `seed`, faults drawn from the seed.
fn plain(seed: u64, options: Options) -> Schedule {
    Schedule {
        version: VERSION.to_owned(),
        seed,
        mutation: "none".to_owned(),
        invariant: None,
        options,
        random_faults: true,
        faults: Vec::new(),
        max_ops: None,
    }
}

/// `base` with exactly `faults`.
fn pinned(base: &Schedule, faults: Vec<Timed>) -> Schedule {
    Schedule { random_faults: false, faults, version: VERSION.to_owned(), ..base.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Counters, Mutation};

    fn report(seed: u64, marks: &[Mark], faults: Vec<Timed>) -> Report {
        let mut coverage = Coverage::default();
        for m in marks {
            coverage.hit(*m);
        }
        Report {
            seed,
            mutation: Mutation::None,
            options: Options::draw(seed),
            violation: None,
            counters: Counters::default(),
            coverage,
            events: 1,
            sim_nanos: 1,
            trace_hash: 0,
            trace: None,
            faults,
            trace_events: None,
            security_ready_ns: None,
        }
    }

    fn crash(at_ns: u64) -> Timed {
        Timed { at_ns, fault: crate::schedule::Fault::Crash { node: 0, disconnect: true, down_ns: 1_000 } }
    }

    #[test]
    fn the_initial_candidates_are_the_plain_seeds() {
        let mut x = Explorer::new(1, 500, 3);
        let c = x.candidates(3);
        assert_eq!(c.iter().map(|c| c.schedule.seed).collect::<Vec<_>>(), vec![500, 501, 502]);
        assert!(c.iter().all(|c| c.derivation == Derivation::Seed && c.schedule.random_faults));
        assert_eq!(c[1].schedule.options, Options::draw(501));
    }

    #[test]
    fn a_run_is_kept_for_a_new_mark_or_pair_and_dropped_when_it_adds_nothing() {
        let mut x = Explorer::new(1, 0, 8);
        let c = x.candidates(5);
        let mut it = c.into_iter();
        let a = x.integrate(vec![(it.next().unwrap(), report(0, &[Mark::IsrShrink], vec![]))]);
        assert_eq!(a[0].new_marks, vec![Mark::IsrShrink]);
        assert!(a[0].kept);
        // The same single mark again: no new mark or pair, but still rare.
        let b = x.integrate(vec![(it.next().unwrap(), report(1, &[Mark::IsrShrink], vec![]))]);
        assert!(b[0].new_marks.is_empty() && b[0].new_pairs == 0 && b[0].kept);
        let b = x.integrate(vec![(it.next().unwrap(), report(2, &[Mark::IsrShrink], vec![]))]);
        assert!(b[0].kept, "two kept runs hit it, below RARE_SEEDS");
        // Now RARE_SEEDS kept runs hit it: a fourth adds nothing.
        let d = x.integrate(vec![(it.next().unwrap(), report(3, &[Mark::IsrShrink], vec![]))]);
        assert!(!d[0].kept, "{d:?}");
        // A known mark together with a new one: a new mark and a new pair.
        let e = x.integrate(vec![(it.next().unwrap(), report(4, &[Mark::IsrShrink, Mark::IsrExpand], vec![]))]);
        assert_eq!(e[0].new_marks, vec![Mark::IsrExpand]);
        assert_eq!(e[0].new_pairs, 1);
        assert_eq!(x.kept(), 4);
        let first: Vec<_> = x.first_reached().filter(|(_, f)| f.is_some()).collect();
        assert_eq!(first, vec![(Mark::IsrShrink, Some(0)), (Mark::IsrExpand, Some(4))]);
        assert!(!x.not_reached().contains(&Mark::IsrShrink));
    }

    #[test]
    fn derived_candidates_pin_or_vary_what_their_parents_ran() {
        let mut x = Explorer::new(7, 0, 1);
        let first = x.candidates(1).remove(0);
        x.integrate(vec![(first, report(0, &[Mark::IsrShrink], vec![crash(5_000_000), crash(900_000_000)]))]);
        let batch = x.candidates(200);
        let kinds: BTreeSet<&str> = batch.iter().map(|c| c.derivation.name()).collect();
        assert_eq!(kinds, ["intensify", "reseed", "splice", "trim"].into_iter().collect(), "every derivation is drawn");
        for c in &batch {
            assert!(c.schedule.options.validate().is_ok(), "{:?}", c.derivation);
            match c.derivation {
                Derivation::Intensify => {
                    assert!(!c.schedule.random_faults && c.schedule.faults.len() > 2);
                    assert!(c.schedule.faults.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
                }
                Derivation::Trim => assert_eq!(c.schedule.faults.len(), 1),
                Derivation::Reseed => assert_eq!(c.schedule.options, Options::draw(0)),
                Derivation::Splice => assert!(c.schedule.random_faults),
                Derivation::Seed => panic!("only one initial seed"),
            }
        }
        // Deterministic: the same exploration hands out the same candidates.
        let mut y = Explorer::new(7, 0, 1);
        let first = y.candidates(1).remove(0);
        y.integrate(vec![(first, report(0, &[Mark::IsrShrink], vec![crash(5_000_000), crash(900_000_000)]))]);
        let again = y.candidates(200);
        assert!(batch.iter().zip(&again).all(|(a, b)| a.schedule == b.schedule));
    }
}
