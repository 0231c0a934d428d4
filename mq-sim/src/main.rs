//! The `mq-sim` binary: seed campaigns and single-seed replays (docs/simulator.md).
//! Its command line and output lines are an interface other tools rely on.

use clap::{Parser, Subcommand};
use mq_sim::campaign::{End, Header, Line, SeedResult, Shard, Summary};
use mq_sim::{install_quiet_panic_hook, run_seed, Mutation, Report, SimConfig, VERSION};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

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
        /// Run one shard of the range: `I/N` runs the seeds at offsets I, I+N,
        /// I+2N, ... of `--start-seed`..`--start-seed + --seeds` (`merge` adds the
        /// shards' `--json` files up).
        #[arg(long, default_value = "0/1")]
        shard: Shard,
        /// Write one JSON line per seed to this file (docs/simulator.md).
        #[arg(long)]
        json: Option<PathBuf>,
        /// Print every counter in the summary line and every coverage mark.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Combine the `--json` files of a campaign's shards (or directories of
    /// `*.json` files) into one summary, as one run over all the seeds prints it.
    Merge {
        /// The files (or directories).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print every counter and every coverage mark.
        #[arg(long, short)]
        verbose: bool,
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
        #[arg(long, default_value_t = 3000)]
        max_runs: u64,
        /// A deliberate bug (see `run`).
        #[arg(long, default_value = "none")]
        mutation: Mutation,
        /// Start from the seed's own draw of faults (what the shrinker falls back
        /// to when the recorded faults do not reproduce the failure).
        #[arg(long)]
        from_seed_draw: bool,
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

/// Exit codes: 0 all seeds passed, 1 a safety violation, 2 only liveness violations
/// (3 a usage or input error; 130 and 143 a campaign stopped by SIGINT or SIGTERM).
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
        Cmd::Run { seeds, start_seed, jobs, check_determinism, fail_fast, mutation, shard, json, verbose } => {
            ExitCode::from(campaign(RunArgs {
                start: start_seed,
                count: seeds,
                shard,
                jobs: jobs.max(1),
                check_determinism,
                fail_fast,
                mutation,
                json,
                verbose,
            }))
        }
        Cmd::Merge { files, verbose } => ExitCode::from(merge(&files, verbose)),
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
        Cmd::Shrink { seed, out, max_runs, mutation, from_seed_draw } => {
            ExitCode::from(shrink(seed, out, max_runs, mutation, from_seed_draw))
        }
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

/// What `mq-sim run` was asked for.
struct RunArgs {
    start: u64,
    count: u64,
    shard: Shard,
    jobs: usize,
    check_determinism: bool,
    fail_fast: bool,
    mutation: Mutation,
    json: Option<PathBuf>,
    verbose: bool,
}

/// How often a campaign that is not on a terminal prints a `progress:` line at
/// the least.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

fn signal_name(signal: usize) -> &'static str {
    if signal == SIGTERM as usize {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

fn campaign(a: RunArgs) -> u8 {
    // A first SIGINT or SIGTERM stops the campaign and prints what finished; a
    // second one ends the process at once.
    let signal = Arc::new(AtomicUsize::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        let registered = signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&stopping))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stopping)))
            .and_then(|_| signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize));
        if let Err(e) = registered {
            eprintln!("mq-sim: cannot handle {}: {e}", signal_name(sig as usize));
        }
    }
    let (start, shard) = (a.start, a.shard);
    let count = shard.len(a.count);
    println!(
        "mq-sim {VERSION} run seeds={start}..{}{} jobs={} check_determinism={}{}",
        start.saturating_add(a.count),
        if shard == Shard::WHOLE { String::new() } else { format!(" shard={shard} ({count} seeds)") },
        a.jobs,
        a.check_determinism,
        if a.mutation == Mutation::None { String::new() } else { format!(" mutation={}", a.mutation) }
    );
    let _ = std::io::stdout().flush();
    let mut json = match a.json.as_deref().map(JsonOut::create).transpose() {
        Ok(json) => json,
        Err(e) => {
            eprintln!("mq-sim: {e}");
            return 3;
        }
    };
    if let Some(j) = &mut json {
        j.line(&Line::Campaign(Header {
            version: VERSION.to_owned(),
            start_seed: start,
            seeds: a.count,
            shard,
            mutation: a.mutation.to_string(),
            check_determinism: a.check_determinism,
        }));
    }
    // Wall time measures the simulator's speed and paces progress lines only; it
    // never influences a run. (The clippy ban on clocks protects determinism, not this.)
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
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
    let mut summary = Summary::default();
    let mut rerun_events = 0u64;
    let (jobs, mutation, check_determinism, fail_fast) = (a.jobs, a.mutation, a.check_determinism, a.fail_fast);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count || stop.load(Ordering::Relaxed) {
                    break;
                }
                let seed = shard.seed(start, k);
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
        let mut last_progress = started;
        let mut interrupted = None;
        loop {
            let received = rx.recv_timeout(std::time::Duration::from_millis(200));
            let sig = signal.load(Ordering::Relaxed);
            if sig != 0 {
                interrupted = Some(signal_name(sig));
                break;
            }
            let (mut report, second) = match received {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    progress(&bar, started, &mut last_progress, &summary, count, false);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
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
                let text = format!("{line}\n  replay: {}", report.replay_command());
                match &bar {
                    Some(b) => b.println(text),
                    None => println!("{text}"),
                }
            }
            let result = SeedResult::from_report(&report);
            summary.add(&result);
            if let Some(j) = &mut json {
                j.line(&Line::Seed(result));
            }
            let tenth = count >= 10 && summary.seeds % (count / 10) == 0;
            progress(&bar, started, &mut last_progress, &summary, count, tenth);
        }
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        if let Some(sig) = interrupted {
            // The seeds still running are abandoned: the summary and the JSON
            // hold the seeds that finished. Exit without waiting for them.
            stop.store(true, Ordering::Relaxed);
            // Seeds handed out but not reported: still running (or finished after the signal).
            let abandoned = next.load(Ordering::Relaxed).min(count).saturating_sub(summary.seeds);
            println!(
                "interrupted by {sig}: {} of {count} seeds finished, {abandoned} running seeds abandoned",
                summary.seeds
            );
            finish(&summary, started, rerun_events, check_determinism, a.verbose, json.as_mut(), Some(sig));
            std::process::exit(if sig == "SIGTERM" { 143 } else { 130 });
        }
    });
    finish(&summary, started, rerun_events, check_determinism, a.verbose, json.as_mut(), None)
}

/// A `progress:` line when not on a terminal (at every tenth of the seeds, or
/// when `PROGRESS_EVERY` passed since the last one), or the terminal's bar.
fn progress(
    bar: &Option<indicatif::ProgressBar>,
    started: std::time::Instant,
    last: &mut std::time::Instant,
    summary: &Summary,
    count: u64,
    tenth: bool,
) {
    if let Some(b) = bar {
        b.set_position(summary.seeds);
        b.set_message(format!("{} failed", summary.failed));
        return;
    }
    #[allow(clippy::disallowed_methods)]
    let now = std::time::Instant::now();
    if tenth || now.duration_since(*last) >= PROGRESS_EVERY {
        *last = now;
        let secs = now.duration_since(started).as_secs();
        println!("progress: {}/{count} seeds, {} failed, {secs} s", summary.seeds, summary.failed);
    }
}

/// Prints the summary, ends the JSON file and returns the exit code.
fn finish(
    summary: &Summary,
    started: std::time::Instant,
    rerun_events: u64,
    check_determinism: bool,
    verbose: bool,
    json: Option<&mut JsonOut>,
    interrupted: Option<&str>,
) -> u8 {
    let wall = started.elapsed().as_secs_f64();
    for line in summary.lines(wall, rerun_events, check_determinism, verbose) {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    if let Some(j) = json {
        j.line(&Line::End(End {
            seeds: summary.seeds,
            wall_secs: wall,
            rerun_events,
            interrupted: interrupted.map(str::to_owned),
        }));
    }
    summary.exit_code()
}

/// A `--json` file, flushed after every line so a killed run leaves whole lines.
struct JsonOut {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    failed: bool,
}

impl JsonOut {
    fn create(path: &std::path::Path) -> Result<JsonOut, String> {
        let file = std::fs::File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(JsonOut { path: path.to_owned(), out: std::io::BufWriter::new(file), failed: false })
    }

    fn line(&mut self, line: &Line) {
        let written = writeln!(self.out, "{}", line.to_json()).and_then(|_| self.out.flush());
        if let Err(e) = written {
            if !self.failed {
                eprintln!("mq-sim: cannot write {}: {e}", self.path.display());
            }
            self.failed = true;
        }
    }
}

/// `mq-sim merge`: one summary of several `--json` files (or directories of them).
fn merge(inputs: &[PathBuf], verbose: bool) -> u8 {
    let mut files = Vec::new();
    for input in inputs {
        let paths = if input.is_dir() {
            let entries = match std::fs::read_dir(input) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("mq-sim: cannot read {}: {e}", input.display());
                    return 3;
                }
            };
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            paths.sort();
            paths
        } else {
            vec![input.clone()]
        };
        for path in paths {
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((path.display().to_string(), text)),
                Err(e) => {
                    eprintln!("mq-sim: cannot read {}: {e}", path.display());
                    return 3;
                }
            }
        }
    }
    let merged = mq_sim::campaign::merge(&files);
    let check_determinism = merged.header.as_ref().is_some_and(|h| h.check_determinism);
    match &merged.header {
        Some(h) => println!(
            "mq-sim {VERSION} merge of {} files: seeds={}..{} shards={} (written by {}){}",
            files.len(),
            h.start_seed,
            h.start_seed.saturating_add(h.seeds),
            h.shard.count,
            h.version,
            if h.mutation == "none" { String::new() } else { format!(" mutation={}", h.mutation) }
        ),
        None => println!("mq-sim {VERSION} merge of {} files", files.len()),
    }
    for problem in &merged.problems {
        println!("problem: {problem}");
    }
    for line in merged.summary.lines(merged.wall_secs, merged.rerun_events, check_determinism, verbose) {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    merged.exit_code()
}

fn shrink(seed: u64, out: Option<PathBuf>, max_runs: u64, mutation: Mutation, from_seed_draw: bool) -> u8 {
    println!("mq-sim {VERSION}");
    println!("shrink seed={seed} mutation={mutation}");
    let cfg = mq_sim::shrink::ShrinkConfig { seed, mutation, max_runs, from_seed_draw };
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
        "smaller: {:.1}x in size ({:.1}x in events), {} changes kept in {} runs{}",
        shrunk.factor(),
        b.events as f64 / a.events.max(1) as f64,
        shrunk.kept,
        shrunk.runs,
        if shrunk.fell_back { ", from the seed's own draw of faults" } else { "" }
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
