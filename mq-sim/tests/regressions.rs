//! The regression corpus (`tests/seeds/corpus.txt`, docs/simulator.md "Regression
//! corpus"): every seed that ever found a bug, replayed under today's code and
//! options; each must pass.
//!
//! - default: the entries marked `test` (quick enough for the debug test profile);
//! - `MQ_SIM_CORPUS=all`: every entry, `campaign` ones included (use `--release`);
//! - `MQ_SIM_CORPUS=397,443`: only those seeds.
//!
//! Each replay's wall time goes to stderr (`--nocapture` shows it), to keep the
//! `test`/`campaign` split honest.

use mq_sim::{run_seed, SimConfig};

const CORPUS: &str = include_str!("../../tests/seeds/corpus.txt");

/// Where an entry is replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replay {
    /// In `cargo test`.
    Test,
    /// Only when asked (`MQ_SIM_CORPUS=all`) and by the campaigns.
    Campaign,
}

#[derive(Debug)]
struct Entry {
    seed: u64,
    found_at: String,
    fixed_in: String,
    invariant: String,
    replay: Replay,
    what: String,
}

fn corpus() -> Vec<Entry> {
    let mut out = Vec::new();
    for (n, line) in CORPUS.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let mut next = |what: &str| f.next().unwrap_or_else(|| panic!("corpus.txt:{}: no {what}", n + 1)).to_owned();
        let seed = next("seed").parse().unwrap_or_else(|e| panic!("corpus.txt:{}: seed: {e}", n + 1));
        let (found_at, fixed_in, invariant) = (next("found_at"), next("fixed_in"), next("invariant"));
        let replay = match next("replay").as_str() {
            "test" => Replay::Test,
            "campaign" => Replay::Campaign,
            other => panic!("corpus.txt:{}: replay is `test` or `campaign`, not {other:?}", n + 1),
        };
        let what = f.collect::<Vec<_>>().join(" ");
        out.push(Entry { seed, found_at, fixed_in, invariant, replay, what });
    }
    out
}

#[test]
fn every_corpus_entry_names_its_seed_commits_invariant_and_bug() {
    let entries = corpus();
    assert!(entries.len() >= 10, "the corpus lost entries: {}", entries.len());
    let invariants = include_str!("../../docs/invariants.md");
    let mut seeds = std::collections::BTreeSet::new();
    for e in &entries {
        assert!(seeds.insert(e.seed), "seed {} is listed twice", e.seed);
        for c in [&e.found_at, &e.fixed_in] {
            assert!(c.len() >= 7 && c.chars().all(|c| c.is_ascii_hexdigit()), "seed {}: {c:?} is no commit", e.seed);
        }
        // Invariants are rows of docs/invariants.md, or the simulator's own verdicts.
        let own = ["core_panic", "vacuous", "event_budget", "determinism"];
        assert!(
            own.contains(&e.invariant.as_str()) || invariants.contains(&format!("`{}`", e.invariant)),
            "seed {}: invariant {} is not in docs/invariants.md",
            e.seed,
            e.invariant
        );
        assert!(e.what.split_whitespace().count() >= 4, "seed {}: say what the bug was", e.seed);
    }
}

#[test]
fn every_seed_that_found_a_bug_passes_now() {
    let only = std::env::var("MQ_SIM_CORPUS").unwrap_or_default();
    let wanted = |e: &Entry| match only.trim() {
        "" => e.replay == Replay::Test,
        "all" => true,
        list => list.split(',').any(|s| s.trim().parse() == Ok(e.seed)),
    };
    let entries: Vec<Entry> = corpus().into_iter().filter(|e| wanted(e)).collect();
    // The replays are independent: share them out over a few threads.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(e) = entries.get(i) else { break };
                // Timing for the test/campaign split only; never feeds the run.
                #[allow(clippy::disallowed_methods)]
                let started = std::time::Instant::now();
                let report = run_seed(&SimConfig::new(e.seed));
                eprintln!(
                    "corpus seed {} ({} events): {:.1} s{}",
                    e.seed,
                    report.events,
                    started.elapsed().as_secs_f64(),
                    report.fail_line().map_or(String::new(), |l| format!(" {l}"))
                );
                if let Some(line) = report.fail_line() {
                    let what = format!(
                        "{line}\n  found at {} ({}), fixed in {}: {}\n  replay: {}",
                        e.found_at,
                        e.invariant,
                        e.fixed_in,
                        e.what,
                        report.replay_command()
                    );
                    failures.lock().expect("no replay panics holding the lock").push(what);
                }
            });
        }
    });
    let ran = entries.len();
    let failures = failures.into_inner().expect("the replays are done");
    assert!(ran > 0 || !only.is_empty(), "no corpus entry is replayed in cargo test");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
