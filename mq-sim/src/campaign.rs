//! Campaigns as data (docs/simulator.md "Running a campaign" and "Campaigns on
//! many machines"): how `mq-sim run --shard I/N` splits a seed range, the
//! `--json` lines a run writes (one per seed), and the summary both `run` and
//! `merge` print from those lines. A single run and the merge of its shards go
//! through the same [`Summary`], so they print the same lines for the same seeds.

use crate::checker::INVARIANTS;
use crate::coverage::CoverageTally;
use crate::{Counters, Report};
use mq_core::{Coverage, Mark};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// One shard of a campaign: the seed at offset `i` of the range (seed
/// `start + i`) belongs to shard `i mod count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u64,
    /// How many shards the range is split into.
    pub count: u64,
}

impl Shard {
    /// The whole range (one shard).
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// How many of a range of `seeds` seeds fall in this shard.
    pub fn len(&self, seeds: u64) -> u64 {
        if seeds > self.index {
            (seeds - self.index - 1) / self.count + 1
        } else {
            0
        }
    }

    /// Whether no seed of a range of `seeds` seeds falls in this shard.
    pub fn is_empty(&self, seeds: u64) -> bool {
        self.len(seeds) == 0
    }

    /// The `k`-th seed of this shard in the range that starts at `start`.
    pub fn seed(&self, start: u64, k: u64) -> u64 {
        start.wrapping_add(k * self.count + self.index)
    }

    /// Every seed of this shard in `start..start + seeds`, in order.
    pub fn seeds(&self, start: u64, seeds: u64) -> impl Iterator<Item = u64> + '_ {
        let shard = *self;
        (0..self.len(seeds)).map(move |k| shard.seed(start, k))
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("{s:?} is not I/N (e.g. 0/4)"))?;
        let index: u64 = i.trim().parse().map_err(|_| format!("shard index {i:?} is not a number"))?;
        let count: u64 = n.trim().parse().map_err(|_| format!("shard count {n:?} is not a number"))?;
        if count == 0 {
            return Err("the shard count must be at least 1".to_owned());
        }
        if index >= count {
            return Err(format!("shard index {index} must be below the shard count {count} (0..{count})"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The first line of a `--json` file: which campaign (or shard of one) wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The code version (`mq-sim --version`).
    pub version: String,
    /// The first seed of the whole range.
    pub start_seed: u64,
    /// How many seeds the whole range has (all shards together).
    pub seeds: u64,
    /// The shard this file holds.
    pub shard: Shard,
    /// The mutation the seeds ran with (`none` for the real system).
    pub mutation: String,
    /// Whether every seed ran twice (`--check-determinism`).
    pub check_determinism: bool,
}

/// One seed's line of a `--json` file: its verdict and everything the summary
/// adds up, so that `merge` rebuilds the summary without running anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// `pass` or `fail`.
    pub verdict: String,
    /// The broken invariant of a failing seed.
    pub invariant: Option<String>,
    /// Whether that is a liveness invariant (exit code 2 rather than 1).
    pub liveness: bool,
    /// What the checker saw (a failing seed's `FAIL` line without its prefix).
    pub what: Option<String>,
    /// Events simulated.
    pub events: u64,
    /// Simulated time at the end, in nanoseconds.
    pub sim_nanos: u64,
    /// xxh3 of the seed's options serialized as JSON, in hex: seeds with the same
    /// digest ran the same configuration.
    pub options_digest: String,
    /// How many faults the run injected (`replay` lists them).
    pub faults: u64,
    /// The hash of the whole trace, in hex (as `replay` prints it).
    pub trace_hash: String,
    /// Every counter of [`Counters`] by name.
    pub counters: BTreeMap<String, u64>,
    /// The coverage marks the seed hit, by name (marks it missed are left out).
    pub coverage: BTreeMap<String, u64>,
}

impl SeedResult {
    /// The line of `report`.
    pub fn from_report(report: &Report) -> SeedResult {
        let options = serde_json::to_string(&report.options).expect("options serialize");
        let v = report.violation.as_ref();
        SeedResult {
            seed: report.seed,
            verdict: if v.is_none() { "pass" } else { "fail" }.to_owned(),
            invariant: v.map(|v| v.invariant.to_owned()),
            liveness: v.is_some_and(|v| v.liveness),
            what: v.map(|v| v.what.clone()),
            events: report.events,
            sim_nanos: report.sim_nanos,
            options_digest: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(options.as_bytes())),
            faults: report.faults.len() as u64,
            trace_hash: format!("{:016x}", report.trace_hash),
            counters: report.counters.fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            coverage: report.coverage.hit_marks().map(|(m, n)| (m.name().to_owned(), n)).collect(),
        }
    }

    /// Whether the seed passed.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// The seed's counters; names this build does not know are returned apart.
    pub fn counters(&self) -> (Counters, Vec<String>) {
        let mut c = Counters::default();
        let unknown = self.counters.iter().filter(|(k, v)| !c.set(k, **v)).map(|(k, _)| k.clone()).collect();
        (c, unknown)
    }

    /// The seed's coverage marks; names this build does not know are returned apart.
    pub fn coverage(&self) -> (Coverage, Vec<String>) {
        let mut c = Coverage::default();
        let mut unknown = Vec::new();
        for (name, n) in &self.coverage {
            match Mark::ALL.iter().find(|m| m.name() == name) {
                Some(m) => c.hit_n(*m, *n),
                None => unknown.push(name.clone()),
            }
        }
        (c, unknown)
    }
}

/// The last line of a `--json` file, written when the run ends (also on a
/// signal); a file without one was cut short.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// Seeds written.
    pub seeds: u64,
    /// Wall-clock seconds the run took.
    pub wall_secs: f64,
    /// Events of the second runs of `--check-determinism` (they count for speed).
    pub rerun_events: u64,
    /// `SIGINT` or `SIGTERM` when a signal stopped the run.
    pub interrupted: Option<String>,
}

/// A line of a `--json` file, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Line {
    /// The first line.
    Campaign(Header),
    /// One per seed, in the order the seeds finished.
    Seed(SeedResult),
    /// The last line.
    End(End),
}

impl Line {
    /// The line as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a line serializes")
    }
}

/// What a campaign found, added up from its seeds' lines. `run` and `merge`
/// both print it with [`Summary::lines`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Seeds added.
    pub seeds: u64,
    /// Of which failed.
    pub failed: u64,
    /// Events simulated.
    pub events: u64,
    /// Simulated nanoseconds.
    pub sim_nanos: u64,
    /// Every seed's counters, summed.
    pub counters: Counters,
    /// The coverage report.
    pub coverage: CoverageTally,
    /// Per broken invariant: whether it is a liveness one and the seeds that broke it.
    pub failures: BTreeMap<String, (bool, BTreeSet<u64>)>,
    /// Counter or mark names of the lines that this build does not know (the
    /// lines came from another version).
    pub unknown_names: BTreeSet<String>,
}

/// How many failing seeds of one invariant the summary names.
const SEEDS_NAMED: usize = 10;

impl Summary {
    /// Adds one seed.
    pub fn add(&mut self, r: &SeedResult) {
        let (counters, unknown_counters) = r.counters();
        let (coverage, unknown_marks) = r.coverage();
        self.unknown_names.extend(unknown_counters.into_iter().chain(unknown_marks));
        self.seeds += 1;
        self.events += r.events;
        self.sim_nanos += r.sim_nanos;
        self.counters.add(&counters);
        self.coverage.add_seed(&coverage);
        if !r.passed() {
            self.failed += 1;
            let invariant = r.invariant.clone().unwrap_or_else(|| "unknown".to_owned());
            let entry = self.failures.entry(invariant).or_insert((r.liveness, BTreeSet::new()));
            entry.1.insert(r.seed);
        }
    }

    /// The exit code of the campaign: `0` every seed passed, `1` a safety
    /// violation, `2` only liveness violations.
    pub fn exit_code(&self) -> u8 {
        if self.failures.values().any(|(liveness, _)| !liveness) {
            1
        } else if self.failures.is_empty() {
            0
        } else {
            2
        }
    }

    /// The invariants a campaign checks: every row of docs/invariants.md, and
    /// `determinism` only under `--check-determinism`.
    pub fn checked(check_determinism: bool) -> Vec<&'static str> {
        INVARIANTS.iter().copied().filter(|i| check_determinism || *i != "determinism").collect()
    }

    /// The lines `run` and `merge` print at the end: the `summary:` line (the one
    /// tools parse; every counter in it only when `verbose`), the invariants
    /// checked and failed, and the coverage report (every mark's line only when
    /// `verbose`). `wall_secs` and `rerun_events` are for the speed figures only.
    pub fn lines(&self, wall_secs: f64, rerun_events: u64, check_determinism: bool, verbose: bool) -> Vec<String> {
        let counters = if verbose {
            self.counters.to_string()
        } else {
            let c = &self.counters;
            format!("crashes={} records_acked={} records_committed={}", c.crashes, c.records_acked, c.records_committed)
        };
        let mut lines = vec![format!(
            "summary: seeds={} failed={} events={} sim_secs={:.1} wall_secs={wall_secs:.2} events_per_sec={:.0} {counters}",
            self.seeds,
            self.failed,
            self.events,
            self.sim_nanos as f64 / 1e9,
            // Speed counts every simulated event, including the reruns of --check-determinism.
            (self.events + rerun_events) as f64 / wall_secs.max(1e-9)
        )];
        let checked = Self::checked(check_determinism);
        lines.push(format!("invariants checked ({}): {}", checked.len(), checked.join(" ")));
        lines.push(format!("invariants failed: {}", self.failed_text()));
        let coverage = self.coverage.lines();
        match coverage.split_first() {
            Some((header, rest)) if !verbose => {
                lines.push(header.clone());
                lines.extend(rest.last().cloned());
            }
            _ => lines.extend(coverage),
        }
        lines
    }

    fn failed_text(&self) -> String {
        if self.failures.is_empty() {
            return "none".to_owned();
        }
        let parts: Vec<String> = self
            .failures
            .iter()
            .map(|(invariant, (liveness, seeds))| {
                let mut named: Vec<String> = seeds.iter().take(SEEDS_NAMED).map(u64::to_string).collect();
                if seeds.len() > SEEDS_NAMED {
                    named.push("...".to_owned());
                }
                let kind = if *liveness { "liveness, " } else { "" };
                let n = seeds.len();
                format!("{invariant} ({kind}{n} seed{}: {})", if n == 1 { "" } else { "s" }, named.join(" "))
            })
            .collect();
        parts.join("; ")
    }
}

/// The merge of several `--json` files.
#[derive(Debug, Default)]
pub struct Merged {
    /// Every distinct seed's line, added up.
    pub summary: Summary,
    /// The campaign the files belong to (the first file's header).
    pub header: Option<Header>,
    /// The shards' wall-clock seconds, summed (machine time, not elapsed time).
    pub wall_secs: f64,
    /// The shards' `--check-determinism` rerun events, summed.
    pub rerun_events: u64,
    /// What is wrong with the inputs: missing or duplicated seeds, files of
    /// another campaign, unreadable lines, runs cut short. Empty when the files
    /// are exactly the campaign's seeds.
    pub problems: Vec<String>,
}

impl Merged {
    /// The exit code: the campaign's (`0`, `1` or `2`), or `3` when it would be
    /// `0` but the inputs have problems.
    pub fn exit_code(&self) -> u8 {
        match self.summary.exit_code() {
            0 if !self.problems.is_empty() => 3,
            code => code,
        }
    }
}

/// Merges `--json` files given as (name, text) pairs: the seeds of every file
/// are added up once each, and everything that does not make up exactly the one
/// campaign's range (missing seeds, a seed twice, files of another campaign) is
/// listed in [`Merged::problems`].
pub fn merge(files: &[(String, String)]) -> Merged {
    let mut m = Merged::default();
    let mut seen: BTreeMap<u64, SeedResult> = BTreeMap::new();
    let mut repeats: BTreeMap<u64, (u64, bool)> = BTreeMap::new();
    let mut shards: BTreeSet<u64> = BTreeSet::new();
    for (name, text) in files {
        let mut has_header = false;
        let mut has_end = false;
        for (i, raw) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let line = match serde_json::from_str::<Line>(raw) {
                Ok(line) => line,
                Err(e) => {
                    m.problems.push(format!("{name}:{}: not a line of mq-sim run --json ({e})", i + 1));
                    continue;
                }
            };
            match line {
                Line::Campaign(h) => {
                    has_header = true;
                    shards.insert(h.shard.index);
                    match &m.header {
                        None => m.header = Some(h),
                        Some(first) => {
                            let same = (first.start_seed, first.seeds, first.shard.count, &first.mutation)
                                == (h.start_seed, h.seeds, h.shard.count, &h.mutation);
                            if !same {
                                m.problems.push(format!(
                                    "{name} is of another campaign: seeds {}..{} shards of {} mutation {} (the first file: seeds {}..{} shards of {} mutation {})",
                                    h.start_seed,
                                    h.start_seed.saturating_add(h.seeds),
                                    h.shard.count,
                                    h.mutation,
                                    first.start_seed,
                                    first.start_seed.saturating_add(first.seeds),
                                    first.shard.count,
                                    first.mutation
                                ));
                            }
                            if first.version != h.version {
                                m.problems.push(format!(
                                    "{name} was written by {}, the first file by {}",
                                    h.version, first.version
                                ));
                            }
                        }
                    }
                }
                Line::Seed(r) => match seen.get(&r.seed) {
                    Some(prev) => {
                        let e = repeats.entry(r.seed).or_insert((1, false));
                        e.0 += 1;
                        e.1 |= *prev != r;
                    }
                    None => {
                        m.summary.add(&r);
                        seen.insert(r.seed, r);
                    }
                },
                Line::End(end) => {
                    has_end = true;
                    m.wall_secs += end.wall_secs;
                    m.rerun_events += end.rerun_events;
                    if let Some(sig) = end.interrupted {
                        m.problems.push(format!("{name}: the run was interrupted by {sig}"));
                    }
                }
            }
        }
        if !has_header {
            m.problems.push(format!("{name}: no campaign line (not written by mq-sim run --json?)"));
        }
        if !has_end {
            m.problems.push(format!("{name}: no end line (the run was cut short or is still running)"));
        }
    }
    for (seed, (times, differ)) in &repeats {
        let how = if *differ { "with different results" } else { "identical, counted once" };
        m.problems.push(format!("seed {seed} appears {times} times ({how})"));
    }
    if let Some(h) = &m.header {
        let absent: Vec<u64> = (0..h.shard.count).filter(|i| !shards.contains(i)).collect();
        if !absent.is_empty() {
            let names: Vec<String> = absent.iter().map(|i| format!("{i}/{}", h.shard.count)).collect();
            m.problems.push(format!("no file of shard {}", names.join(", ")));
        }
        let mut missing = 0u64;
        let mut first = Vec::new();
        for seed in Shard::WHOLE.seeds(h.start_seed, h.seeds) {
            if !seen.contains_key(&seed) {
                missing += 1;
                if first.len() < SEEDS_NAMED {
                    first.push(seed.to_string());
                }
            }
        }
        if missing > 0 {
            let more = if missing > first.len() as u64 { " ..." } else { "" };
            m.problems.push(format!("{missing} seeds of the range are missing: {}{more}", first.join(" ")));
        }
        let end = h.start_seed.wrapping_add(h.seeds);
        let outside: Vec<String> = seen
            .keys()
            .filter(|s| s.wrapping_sub(h.start_seed) >= h.seeds)
            .take(SEEDS_NAMED)
            .map(u64::to_string)
            .collect();
        if !outside.is_empty() {
            m.problems.push(format!("seeds outside the range {}..{end}: {}", h.start_seed, outside.join(" ")));
        }
    }
    if !m.summary.unknown_names.is_empty() {
        let names: Vec<&str> = m.summary.unknown_names.iter().map(String::as_str).collect();
        m.problems.push(format!("counters or marks this build does not know (ignored): {}", names.join(" ")));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(seed: u64, invariant: Option<(&str, bool)>, crashes: u64) -> SeedResult {
        let counters = Counters { crashes, records_acked: 10 * seed, ..Counters::default() };
        let mut coverage = Coverage::default();
        coverage.hit_n(Mark::IsrShrink, seed);
        SeedResult {
            seed,
            verdict: if invariant.is_none() { "pass" } else { "fail" }.to_owned(),
            invariant: invariant.map(|(i, _)| i.to_owned()),
            liveness: invariant.is_some_and(|(_, l)| l),
            what: invariant.map(|_| "seen".to_owned()),
            events: 100 + seed,
            sim_nanos: 1_000_000_000,
            options_digest: "0".repeat(16),
            faults: crashes,
            trace_hash: format!("{seed:016x}"),
            counters: counters.fields().into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            coverage: coverage.hit_marks().map(|(m, n)| (m.name().to_owned(), n)).collect(),
        }
    }

    fn file(shard: Shard, start: u64, seeds: u64, results: &[SeedResult], end: bool) -> String {
        let header = Header {
            version: "test".to_owned(),
            start_seed: start,
            seeds,
            shard,
            mutation: "none".to_owned(),
            check_determinism: false,
        };
        let mut lines = vec![Line::Campaign(header).to_json()];
        lines.extend(results.iter().map(|r| Line::Seed(r.clone()).to_json()));
        if end {
            let end = End { seeds: results.len() as u64, wall_secs: 1.5, rerun_events: 0, interrupted: None };
            lines.push(Line::End(end).to_json());
        }
        lines.join("\n") + "\n"
    }

    fn all(start: u64, seeds: u64) -> Vec<SeedResult> {
        (start..start + seeds)
            .map(|s| match s % 5 {
                3 => result(s, Some(("acked_not_lost", false)), 2),
                4 => result(s, Some(("liveness_progress", true)), 0),
                _ => result(s, None, s % 3),
            })
            .collect()
    }

    #[test]
    fn shards_split_a_range_into_disjoint_parts_that_cover_it() {
        for count in 1..6u64 {
            for seeds in 0..13u64 {
                let mut got: Vec<u64> =
                    (0..count).flat_map(|index| Shard { index, count }.seeds(40, seeds).collect::<Vec<_>>()).collect();
                assert_eq!(got.len() as u64, seeds, "{count} shards of {seeds} seeds");
                got.sort_unstable();
                assert_eq!(got, (40..40 + seeds).collect::<Vec<_>>());
            }
        }
        let s: Shard = "1/4".parse().expect("valid");
        assert_eq!(s.seeds(10, 10).collect::<Vec<_>>(), vec![11, 15, 19]);
        assert_eq!(s.to_string(), "1/4");
        assert!("4/4".parse::<Shard>().unwrap_err().contains("below the shard count"));
        assert!("0/0".parse::<Shard>().is_err());
        assert!("1".parse::<Shard>().is_err());
        assert!("a/2".parse::<Shard>().is_err());
    }

    #[test]
    fn lines_round_trip_through_json() {
        let r = result(7, Some(("acked_not_lost", false)), 3);
        let text = Line::Seed(r.clone()).to_json();
        assert!(text.starts_with("{\"kind\":\"seed\",\"seed\":7,\"verdict\":\"fail\""), "{text}");
        assert_eq!(serde_json::from_str::<Line>(&text).expect("parses"), Line::Seed(r.clone()));
        let (c, unknown) = r.counters();
        assert!(unknown.is_empty());
        assert_eq!((c.crashes, c.records_acked), (3, 70));
        let (cov, unknown) = r.coverage();
        assert!(unknown.is_empty());
        assert_eq!(cov.get(Mark::IsrShrink), 7);
    }

    #[test]
    fn merged_shards_equal_the_whole_and_problems_are_named() {
        let results = all(20, 23);
        let mut whole = Summary::default();
        results.iter().for_each(|r| whole.add(r));
        assert_eq!((whole.seeds, whole.failed, whole.exit_code()), (23, 8, 1));
        let files: Vec<(String, String)> = (0..4)
            .map(|index| {
                let shard = Shard { index, count: 4 };
                let mine: Vec<SeedResult> =
                    results.iter().filter(|r| shard.seeds(20, 23).any(|s| s == r.seed)).cloned().collect();
                (format!("shard-{index}.json"), file(shard, 20, 23, &mine, true))
            })
            .collect();
        let m = merge(&files);
        assert!(m.problems.is_empty(), "{:?}", m.problems);
        assert_eq!(m.summary, whole);
        assert_eq!(m.exit_code(), 1);
        assert_eq!(m.wall_secs, 6.0);
        let lines = whole.lines(1.0, 0, false, false);
        assert!(lines[2].starts_with("invariants failed: acked_not_lost (4 seeds: 23 28 33 38); "), "{lines:?}");
        assert!(lines[2].ends_with("liveness_progress (liveness, 4 seeds: 24 29 34 39)"), "{lines:?}");

        // Shard 2 missing, shard 0 given twice, a line cut in half.
        let mut bad = vec![files[0].clone(), files[1].clone(), files[3].clone(), files[0].clone()];
        bad[2].1.push_str("{\"kind\":\"seed\",\"se\n");
        let m = merge(&bad);
        let text = m.problems.join("\n");
        assert!(text.contains("no file of shard 2/4"), "{text}");
        assert!(text.contains("6 seeds of the range are missing: 22 26 30 34 38 42"), "{text}");
        assert!(text.contains("seed 20 appears 2 times (identical, counted once)"), "{text}");
        assert!(text.contains("shard-3.json:8: not a line of mq-sim run --json"), "{text}");
        assert_eq!(m.summary.seeds, 17);

        // Only passing seeds, but one missing and the file cut short: exit 3.
        let passing: Vec<SeedResult> = all(0, 3).into_iter().filter(SeedResult::passed).collect();
        let m = merge(&[("a".to_owned(), file(Shard::WHOLE, 0, 4, &passing, false))]);
        assert_eq!(m.summary.exit_code(), 0);
        assert_eq!(m.exit_code(), 3, "{:?}", m.problems);
        assert!(m.problems.iter().any(|p| p.contains("no end line")), "{:?}", m.problems);

        // A duplicate that differs is called out.
        let mut changed = passing[0].clone();
        changed.trace_hash = "f".repeat(16);
        let two = [
            ("a".to_owned(), file(Shard::WHOLE, 0, 3, &passing, true)),
            ("b".to_owned(), file(Shard::WHOLE, 0, 3, &[changed], true)),
        ];
        let m = merge(&two);
        assert!(m.problems.iter().any(|p| p == "seed 0 appears 2 times (with different results)"), "{:?}", m.problems);
        assert_eq!(m.exit_code(), 3);
    }

    #[test]
    fn the_invariants_checked_are_the_rows_of_invariants_md() {
        let doc = include_str!("../../docs/invariants.md");
        let rows: Vec<&str> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once('`'))
            .map(|(name, _)| name)
            .collect();
        assert_eq!(INVARIANTS, rows.as_slice(), "checker::INVARIANTS must list docs/invariants.md's rows in order");
        assert!(!Summary::checked(false).contains(&"determinism"));
        assert!(Summary::checked(true).contains(&"determinism"));
    }
}
