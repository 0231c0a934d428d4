//! The `mq-sim` binary: seed campaigns and single-seed replays (docs/simulator.md).
//! Its command line and output lines are an interface other tools rely on.

use clap::{Parser, Subcommand};
use mq_sim::{install_quiet_panic_hook, run_seed, Counters, Mutation, Report, SimConfig, VERSION};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

#[derive(Parser)]
#[command(name = "mq-sim", version = VERSION, about = "mq's deterministic simulator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a campaign of seeds.
    Run {
        /// How many seeds.
        #[arg(long)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        start_seed: u64,
        /// Worker threads (results do not depend on it).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Run every seed twice and fail on a differing trace hash.
        #[arg(long)]
        check_determinism: bool,
        /// Stop handing out seeds after the first failure (for mutants).
        #[arg(long)]
        fail_fast: bool,
        /// A deliberate bug to prove the checker catches it (for tests and mutants).
        #[arg(long, hide = true, default_value = "none")]
        mutation: Mutation,
    },
    /// Rerun one seed (or a recorded schedule) and print its verdict and trace hash.
    Replay {
        /// The seed.
        #[arg(long, required_unless_present = "schedule", conflicts_with = "schedule")]
        seed: Option<u64>,
        /// A schedule written by `shrink` (its seed, options and faults).
        #[arg(long)]
        schedule: Option<PathBuf>,
        /// Write the whole trace to this file (`-` for stdout).
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write an HTML timeline of the run (a space-time diagram, self-contained)
        /// to this file.
        #[arg(long)]
        timeline: Option<PathBuf>,
        /// A deliberate bug (see `run`).
        #[arg(long, hide = true, default_value = "none")]
        mutation: Mutation,
    },
    /// Reduce a failing seed to a smaller schedule that breaks the same invariant.
    Shrink {
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Where to write the shrunk schedule (default `shrunk-<seed>.json`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Most candidate runs.
        #[arg(long, default_value_t = 1000)]
        max_runs: u64,
        /// A deliberate bug (see `run`).
        #[arg(long, default_value = "none")]
        mutation: Mutation,
    },
    /// Search for schedules that reach rare coverage marks (docs/simulator.md
    /// "Exploring"): keeps runs that reach new marks or pairs of marks and derives
    /// new runs from them, until the budget is spent.
    Explore {
        /// Wall-clock budget in seconds.
        #[arg(long)]
        budget_secs: u64,
        /// The first seed of the initial plain runs.
        #[arg(long, default_value_t = 0)]
        start_seed: u64,
        /// Plain seeds run before any derivation.
        #[arg(long, default_value_t = 16)]
        initial: u64,
        /// The seed of the exploration's own choices.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (a batch of this many runs at a time).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Where failing runs' schedules are written.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
}

/// Exit codes: 0 all seeds passed, 1 a safety violation, 2 only liveness violations.
fn exit_code(reports: &[&Report]) -> u8 {
    let mut code = 0;
    for r in reports {
        match &r.violation {
            Some(v) if !v.liveness => return 1,
            Some(_) => code = 2,
            None => {}
        }
    }
    code
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_quiet_panic_hook();
    match cli.cmd {
        Cmd::Run { seeds, start_seed, jobs, check_determinism, fail_fast, mutation } => {
            ExitCode::from(campaign(start_seed, seeds, jobs.max(1), check_determinism, fail_fast, mutation))
        }
        Cmd::Replay { seed, schedule, trace, timeline, mutation } => {
            let keep_trace = trace.is_some() || timeline.is_some();
            let cfg = match (seed, schedule) {
                (Some(seed), _) => config(seed, mutation, keep_trace),
                (None, Some(path)) => match read_schedule(&path) {
                    Ok(s) => SimConfig { keep_trace, ..SimConfig::from_schedule(s) },
                    Err(e) => {
                        eprintln!("mq-sim: {e}");
                        return ExitCode::from(3);
                    }
                },
                (None, None) => unreachable!("clap requires --seed or --schedule"),
            };
            ExitCode::from(replay(cfg, trace, timeline))
        }
        Cmd::Shrink { seed, out, max_runs, mutation } => ExitCode::from(shrink(seed, out, max_runs, mutation)),
        Cmd::Explore { budget_secs, start_seed, initial, seed, jobs, out_dir } => {
            ExitCode::from(explore(budget_secs, start_seed, initial, seed, jobs.max(1), &out_dir))
        }
    }
}

fn config(seed: u64, mutation: Mutation, keep_trace: bool) -> SimConfig {
    SimConfig { keep_trace, mutation, ..SimConfig::new(seed) }
}

fn read_schedule(path: &std::path::Path) -> Result<mq_sim::Schedule, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    mq_sim::Schedule::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn replay(cfg: SimConfig, trace: Option<PathBuf>, timeline: Option<PathBuf>) -> u8 {
    let (seed, mutation) = (cfg.seed, cfg.mutation);
    println!("mq-sim {VERSION}");
    println!("seed={seed} mutation={mutation}");
    if let Some(s) = &cfg.schedule {
        let faults = if s.random_faults { "drawn from the seed".to_owned() } else { s.faults.len().to_string() };
        let ops = s.max_ops.map_or("unbounded".to_owned(), |m| m.to_string());
        println!("schedule: written by {} faults={faults} max_ops={ops}", s.version);
    }
    println!("{}", cfg.options());
    let mut report = run_seed(&cfg);
    if let (Some(path), Some(events)) = (&timeline, report.trace_events.take()) {
        // On stderr: stdout's lines are an interface (see the module docs).
        let page = mq_sim::timeline::Timeline::build(&report, &events);
        match std::fs::write(path, page.html()) {
            Ok(()) => eprintln!(
                "mq-sim: timeline of {} messages and {} marks written to {}",
                page.arrows.len(),
                page.marks.len(),
                path.display()
            ),
            Err(e) => eprintln!("mq-sim: cannot write the timeline to {}: {e}", path.display()),
        }
    }
    if let (Some(path), Some(lines)) = (trace, report.trace.take()) {
        let text = lines.join("\n") + "\n";
        if path.as_os_str() == "-" {
            print!("{text}");
        } else if let Err(e) = std::fs::write(&path, text) {
            eprintln!("mq-sim: cannot write the trace to {}: {e}", path.display());
        }
    }
    match report.fail_line() {
        Some(line) => println!("{line}"),
        None => println!("PASS seed={seed}"),
    }
    println!("events={} sim_secs={:.3} {}", report.events, report.sim_nanos as f64 / 1e9, report.counters);
    println!("{}", mq_sim::coverage::seed_line(&report.coverage));
    println!("trace-hash={:016x}", report.trace_hash);
    exit_code(&[&report])
}

fn campaign(start: u64, count: u64, jobs: usize, check_determinism: bool, fail_fast: bool, mutation: Mutation) -> u8 {
    println!(
        "mq-sim {VERSION} run seeds={start}..{} jobs={jobs} check_determinism={check_determinism}{}",
        start.saturating_add(count),
        if mutation == Mutation::None { String::new() } else { format!(" mutation={mutation}") }
    );
    // Wall time measures the simulator's speed for the summary only; it never
    // influences a run. (The clippy ban on clocks protects determinism, not this.)
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let next = AtomicU64::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    // (report, trace hash and events of the second run under --check-determinism)
    let (tx, rx) = mpsc::channel::<(Report, Option<(u64, u64)>)>();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(count);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds {msg} [{elapsed_precise}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut reports: BTreeMap<u64, Report> = BTreeMap::new();
    let mut rerun_events = 0u64;
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || stop.load(Ordering::Relaxed) {
                    break;
                }
                let seed = start.wrapping_add(i);
                let report = run_seed(&config(seed, mutation, false));
                if fail_fast && !report.passed() {
                    stop.store(true, Ordering::Relaxed);
                }
                let second = check_determinism.then(|| {
                    let again = run_seed(&config(seed, mutation, false));
                    (again.trace_hash, again.events)
                });
                if tx.send((report, second)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut done = 0u64;
        let mut failed = 0u64;
        for (mut report, second) in rx {
            done += 1;
            if let Some((h, events)) = second {
                rerun_events += events;
                if h != report.trace_hash && report.violation.is_none() {
                    report.violation = Some(mq_sim::Violation {
                        invariant: "determinism",
                        what: format!("trace hash {:016x} then {h:016x}", report.trace_hash),
                        liveness: false,
                    });
                }
            }
            if let Some(line) = report.fail_line() {
                failed += 1;
                let text = format!("{line}\n  replay: {}", report.replay_command());
                match &bar {
                    Some(b) => b.println(text),
                    None => println!("{text}"),
                }
            }
            match &bar {
                Some(b) => {
                    b.set_position(done);
                    b.set_message(format!("{failed} failed"));
                }
                None if count >= 10 && done % (count / 10) == 0 => {
                    println!("progress: {done}/{count} seeds, {failed} failed");
                }
                None => {}
            }
            reports.insert(report.seed, report);
        }
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let mut total = Counters::default();
    let mut coverage = mq_sim::coverage::CoverageTally::default();
    let (mut events, mut sim_nanos) = (0u64, 0u64);
    for r in reports.values() {
        total.add(&r.counters);
        coverage.add_seed(&r.coverage);
        events += r.events;
        sim_nanos += r.sim_nanos;
    }
    let failed = reports.values().filter(|r| !r.passed()).count();
    println!(
        "summary: seeds={} failed={failed} events={events} sim_secs={:.1} wall_secs={wall:.2} events_per_sec={:.0} {total}",
        reports.len(),
        sim_nanos as f64 / 1e9,
        // Speed counts every simulated event, including the reruns of --check-determinism.
        (events + rerun_events) as f64 / wall.max(1e-9)
    );
    // After the summary line, which tools parse: the coverage report.
    for line in coverage.lines() {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    exit_code(&reports.values().collect::<Vec<_>>())
}

fn shrink(seed: u64, out: Option<PathBuf>, max_runs: u64, mutation: Mutation) -> u8 {
    println!("mq-sim {VERSION}");
    println!("shrink seed={seed} mutation={mutation}");
    let cfg = mq_sim::shrink::ShrinkConfig { seed, mutation, max_runs };
    let result = mq_sim::shrink::shrink(&cfg, |line| {
        println!("  {line}");
        let _ = std::io::stdout().flush();
    });
    let shrunk = match result {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mq-sim: {e}");
            return 3;
        }
    };
    let path = out.unwrap_or_else(|| PathBuf::from(format!("shrunk-{seed}.json")));
    if let Err(e) = std::fs::write(&path, shrunk.schedule.to_json() + "\n") {
        eprintln!("mq-sim: cannot write {}: {e}", path.display());
        return 3;
    }
    let (b, a) = (shrunk.before, shrunk.after);
    println!("invariant={}: {}", shrunk.invariant, shrunk.what);
    println!("before: {b}");
    println!("after: {a}");
    println!(
        "smaller: {:.1}x in events, {} changes kept in {} runs",
        b.events as f64 / a.events.max(1) as f64,
        shrunk.kept,
        shrunk.runs
    );
    println!("schedule: {} (replay: mq-sim replay --schedule {})", path.display(), path.display());
    0
}

fn explore(budget_secs: u64, start_seed: u64, initial: u64, seed: u64, jobs: usize, out_dir: &std::path::Path) -> u8 {
    use mq_sim::explore::Explorer;
    println!("mq-sim {VERSION} explore budget_secs={budget_secs} start_seed={start_seed} initial={initial} seed={seed} jobs={jobs}");
    // The budget is the only use of the wall clock; the runs and the derivations
    // never read it.
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let mut x = Explorer::new(seed, start_seed, initial);
    let mut failed = 0u64;
    while started.elapsed().as_secs() < budget_secs {
        let batch = x.candidates(jobs);
        let reports: Vec<Report> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|c| {
                    let cfg = SimConfig::from_schedule(c.schedule.clone());
                    scope.spawn(move || run_seed(&cfg))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("run_seed catches panics")).collect()
        });
        let secs = started.elapsed().as_secs_f64();
        let results: Vec<_> = batch.into_iter().zip(reports).collect();
        for (c, r) in &results {
            if let Some(line) = r.fail_line() {
                failed += 1;
                let path = out_dir.join(format!("explore-{seed}-{}.json", c.index));
                let schedule = Explorer::failure_schedule(c, r);
                match std::fs::write(&path, schedule.to_json() + "\n") {
                    Ok(()) => println!(
                        "{line}\n  run {} ({}); replay: mq-sim replay --schedule {}",
                        c.index,
                        c.derivation.name(),
                        path.display()
                    ),
                    Err(e) => println!(
                        "{line}\n  run {} ({}); cannot write {}: {e}",
                        c.index,
                        c.derivation.name(),
                        path.display()
                    ),
                }
            }
        }
        let labels: Vec<(u64, &str)> = results.iter().map(|(c, _)| (c.index, c.derivation.name())).collect();
        for ((index, how), outcome) in labels.into_iter().zip(x.integrate(results)) {
            for m in &outcome.new_marks {
                println!("explore: run {index} ({how}) reached {} at {secs:.1}s", m.name());
            }
        }
        let _ = std::io::stdout().flush();
    }
    let missing: Vec<&str> = x.not_reached().iter().map(|m| m.name()).collect();
    println!(
        "explore: runs={} kept={} failed={failed} marks={} reached={} wall_secs={:.1}",
        x.handed_out(),
        x.kept(),
        mq_core::Mark::ALL.len(),
        mq_core::Mark::ALL.len() - missing.len(),
        started.elapsed().as_secs_f64()
    );
    println!("explore: not reached: {}", if missing.is_empty() { "none".to_owned() } else { missing.join(" ") });
    u8::from(failed > 0)
}
