//! The `mq-sim` binary's campaign tooling end to end (docs/simulator.md "Campaigns
//! on many machines"): a campaign split into 4 shards and merged gives the summary
//! of one process over the same seeds, counter for counter; a SIGTERM still prints
//! the summary and ends the `--json` file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mq-sim");
/// Few seeds: the test binary is a debug build.
const SEEDS: &str = "6";
const START: &str = "30";

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn mq_sim(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().expect("mq-sim runs");
    assert!(out.status.code().is_some(), "mq-sim was killed: {out:?}");
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

/// The report lines (summary, invariants, coverage) without the speed figures,
/// which are wall-clock measures.
fn report(text: &str) -> Vec<String> {
    let start = text.lines().position(|l| l.starts_with("summary: ")).unwrap_or_else(|| panic!("no summary:\n{text}"));
    text.lines()
        .skip(start)
        .map(|l| {
            l.split(' ')
                .filter(|w| !w.starts_with("wall_secs=") && !w.starts_with("events_per_sec="))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The seed lines of a `--json` file, sorted.
fn seed_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("json written");
    let mut lines: Vec<String> =
        text.lines().filter(|l| l.starts_with("{\"kind\":\"seed\"")).map(str::to_owned).collect();
    lines.sort();
    lines
}

#[test]
fn four_shards_merged_equal_one_run_counter_for_counter() {
    let dir = scratch("shards");
    let whole = dir.join("whole.json");
    let one = mq_sim(&["run", "--seeds", SEEDS, "--start-seed", START, "--verbose", "--json", whole.to_str().unwrap()]);
    let mut shard_files = Vec::new();
    for i in 0..4 {
        let file = dir.join(format!("shard-{i}.json"));
        let shard = format!("{i}/4");
        let out = mq_sim(&[
            "run",
            "--seeds",
            SEEDS,
            "--start-seed",
            START,
            "--shard",
            &shard,
            "--json",
            file.to_str().unwrap(),
        ]);
        assert!(stdout(&out).contains(&format!("shard={shard}")), "{}", stdout(&out));
        shard_files.push(file);
    }
    let mut args = vec!["merge", "--verbose"];
    args.extend(shard_files.iter().map(|f| f.to_str().unwrap()));
    let merged = mq_sim(&args);
    let (one_text, merged_text) = (stdout(&one), stdout(&merged));
    assert!(!merged_text.contains("problem:"), "{merged_text}");
    assert_eq!(report(&merged_text), report(&one_text), "merged:\n{merged_text}\none run:\n{one_text}");
    assert_eq!(merged.status.code(), one.status.code());
    let summary = &report(&one_text)[0];
    assert!(summary.starts_with(&format!("summary: seeds={SEEDS} ")), "{summary}");
    assert!(summary.contains(" crashes=") && summary.contains(" records_committed="), "verbose: {summary}");

    // The shards ran exactly the seeds of the one run, each with the same result.
    let mut from_shards: Vec<String> = shard_files.iter().flat_map(|f| seed_lines(f)).collect();
    from_shards.sort();
    assert_eq!(from_shards, seed_lines(&whole));

    // A shard missing and one given twice: merge says so and exits 3 (or the
    // failures' code).
    let partial = mq_sim(&["merge", shard_files[0].to_str().unwrap(), shard_files[0].to_str().unwrap()]);
    let text = stdout(&partial);
    assert!(text.contains("problem: no file of shard 1/4, 2/4, 3/4"), "{text}");
    assert!(text.contains("problem: 4 seeds of the range are missing: 31 32 33 35"), "{text}");
    assert!(text.contains("problem: seed 30 appears 2 times (identical, counted once)"), "{text}");
    assert!(text.contains("summary: seeds=2 "), "{text}");
    assert_eq!(partial.status.code(), Some(if one.status.code() == Some(0) { 3 } else { one.status.code().unwrap() }));

    // A directory merges its *.json files.
    let dir_merge = mq_sim(&["merge", "--verbose", dir.join("shard-0.json").parent().unwrap().to_str().unwrap()]);
    assert!(stdout(&dir_merge).contains("problem: seed 30 appears 2 times"), "whole.json and shard-0.json overlap");
}

#[test]
fn a_shard_index_outside_the_count_is_refused() {
    let out = mq_sim(&["run", "--seeds", "4", "--shard", "4/4"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("shard index 4 must be below the shard count 4"), "{err}");
}

#[test]
fn sigterm_prints_the_summary_and_exits_143() {
    let dir = scratch("signal");
    let json = dir.join("cut.json");
    let mut child = Command::new(BIN)
        .args(["run", "--seeds", "100000", "--json", json.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mq-sim runs");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut header = String::new();
    out.read_line(&mut header).expect("the first line");
    // The handlers are in place before the first line is printed.
    assert!(header.contains("run seeds=0..100000"), "{header}");
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(kill.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("the rest");
    let status = child.wait().expect("exits");
    assert_eq!(status.code(), Some(143), "{rest}");
    assert!(rest.contains("interrupted by SIGTERM: "), "{rest}");
    let summary = rest.lines().find(|l| l.starts_with("summary: seeds=")).unwrap_or_else(|| panic!("{rest}"));
    let text = std::fs::read_to_string(&json).expect("json written");
    let last = text.lines().last().expect("lines");
    assert!(last.starts_with("{\"kind\":\"end\"") && last.contains("\"interrupted\":\"SIGTERM\""), "{last}");
    let seeds = text.lines().filter(|l| l.starts_with("{\"kind\":\"seed\"")).count();
    assert!(summary.starts_with(&format!("summary: seeds={seeds} ")), "{summary} vs {seeds} seed lines");
    let merged = mq_sim(&["merge", json.to_str().unwrap()]);
    assert!(stdout(&merged).contains("the run was interrupted by SIGTERM"), "{}", stdout(&merged));
    assert_eq!(merged.status.code(), Some(3));
}
