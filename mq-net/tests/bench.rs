//! `mq bench` end to end (issue 10): the built `mq` binary measures an `mq broker`
//! process on loopback with small runs. The tests check what the JSON line says
//! (counts, settings, numbers present and positive, percentiles in order) and how
//! bad input fails; they never assert a speed.

mod common;

use common::{mq_with_env, BrokerProcess};
use serde_json::Value;
use std::process::Command;

/// Runs `mq bench ARGS --json` against `addr` and parses its one stdout line.
fn bench_json(addr: &str, args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--bootstrap", addr, "--json"]);
    let (ok, out, err) = mq_with_env(&all, &[], None);
    assert!(ok, "mq {all:?} failed: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one JSON line on stdout: {out:?}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}): {}", lines[0]))
}

/// Checks the schema's fields and that every number is present and positive.
fn check_result(v: &Value, mode: &str, records: u64, producers: u64, consumers: u64, partitions: u64, acks: &str) {
    assert_eq!(v["tool"], "mq");
    assert_eq!(v["mode"], mode);
    assert_eq!(v["records"].as_u64(), Some(records), "{v}");
    assert_eq!(v["record_size"].as_u64(), Some(100), "{v}");
    assert_eq!(v["producers"].as_u64(), Some(producers), "{v}");
    assert_eq!(v["consumers"].as_u64(), Some(consumers), "{v}");
    assert_eq!(v["partitions"].as_u64(), Some(partitions), "{v}");
    assert_eq!(v["acks"], acks);
    for field in ["secs", "records_per_sec", "mb_per_sec"] {
        let x = v[field].as_f64().unwrap_or_else(|| panic!("{field} is a number: {v}"));
        assert!(x > 0.0 && x.is_finite(), "{field} = {x}");
    }
    // records_per_sec is records / secs, and MB are 2^20 bytes.
    let (secs, rps, mbps) =
        (v["secs"].as_f64().unwrap(), v["records_per_sec"].as_f64().unwrap(), v["mb_per_sec"].as_f64().unwrap());
    assert!((rps * secs - records as f64).abs() <= records as f64 * 0.01 + 1.0, "{v}");
    assert!((mbps - rps * 100.0 / 1048576.0).abs() <= 0.01, "{v}");
    let lat = &v["latency_us"];
    let p: Vec<u64> = ["p50", "p99", "p999", "max"]
        .iter()
        .map(|k| lat[k].as_u64().unwrap_or_else(|| panic!("latency_us.{k} is an integer: {v}")))
        .collect();
    assert!(p[3] > 0, "a run over TCP takes at least a microsecond: {v}");
    assert!(p.windows(2).all(|w| w[0] <= w[1]), "percentiles in order: {v}");
}

#[test]
fn bench_produce_then_consume_reports_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let common = ["--topic", "b", "--records", "2000", "--record-size", "100", "--warmup", "200"];
    let produce = [&common[..], &["--producers", "2", "--partitions", "3", "--acks", "1"]].concat();
    let v = bench_json(&broker.addr, &[&["produce"][..], &produce].concat());
    check_result(&v, "produce", 2000, 2, 0, 3, "1");

    // The warm-up was stored too: 2,200 records are there to read.
    let v = bench_json(&broker.addr, &[&["consume"][..], &common, &["--consumers", "2"]].concat());
    check_result(&v, "consume", 2000, 0, 2, 3, "all");

    let (ok, out, err) =
        mq_with_env(&["bench", "consume", "--topic", "b", "--records", "2201", "--bootstrap", &broker.addr], &[], None);
    assert!(!ok && out.is_empty());
    assert!(err.contains("holds 2200 record(s), fewer than the 2201 to read"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bench_e2e_and_group_consume_count_only_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let args = ["--topic", "e", "--records", "1000", "--record-size", "100", "--partitions", "2"];
    let v = bench_json(&broker.addr, &[&["e2e"][..], &args, &["--consumers", "2", "--warmup", "100"]].concat());
    check_result(&v, "e2e", 1000, 1, 2, 2, "all");
    // A second run skips the first run's records (its consumers start at the end,
    // and the run id differs).
    let v = bench_json(&broker.addr, &[&["e2e"][..], &args, &["--producers", "2", "--acks", "0"]].concat());
    check_result(&v, "e2e", 1000, 2, 1, 2, "0");

    // As a consumer group, from the start of the topic (2,100 records by now).
    let v = bench_json(&broker.addr, &[&["consume"][..], &args, &["--group", "g"]].concat());
    check_result(&v, "consume", 1000, 0, 1, 2, "all");
}

#[test]
fn bench_refuses_bad_input_with_a_message_and_never_panics() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mq")).arg("bench").args(args).output().expect("mq runs");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "nothing on stdout: {:?}", String::from_utf8_lossy(&out.stdout));
        (out.status.code(), err)
    };
    let (code, err) = run(&["e2e", "--record-size", "8"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--record-size must be at least 16"), "{err}");
    let (code, err) = run(&["produce", "--records", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--records must be at least 1"), "{err}");
    let (code, err) = run(&["produce", "--rate", "-3"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&["produce", "--acks", "2"]);
    assert_eq!(code, Some(2), "clap refuses it: {err}");

    let port = common::free_ports(1)[0];
    let (code, err) = run(&["produce", "--bootstrap", &format!("127.0.0.1:{port}"), "--json"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no mq broker reachable"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let (code, err) = run(&["consume", "--topic", "missing", "--bootstrap", &broker.addr]);
    assert_eq!(code, Some(1));
    assert!(err.contains("topic missing does not exist; fill it first"), "{err}");
}

#[test]
fn a_broker_with_interval_fsync_keeps_acknowledged_records_across_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args =
        ["broker", "--listen", "127.0.0.1:0", "--data-dir", data, "--fsync", "interval", "--fsync-interval-ms", "50"];
    let mut broker = BrokerProcess::start_with(&args);
    let v = bench_json(
        &broker.addr,
        &["produce", "--topic", "f", "--records", "3000", "--acks", "all", "--producers", "2"],
    );
    check_result(&v, "produce", 3000, 2, 0, 1, "all");
    // SIGTERM: the storage thread fsyncs what the interval had not yet.
    assert!(broker.terminate().success());
    let broker = BrokerProcess::start_with(&args);
    let v = bench_json(&broker.addr, &["consume", "--topic", "f", "--records", "3000"]);
    check_result(&v, "consume", 3000, 0, 1, 1, "all");
}

#[test]
fn mq_broker_refuses_bad_fsync_settings_with_exit_code_2() {
    for (flags, expected) in [
        (&["--fsync", "sometimes"][..], "fsync must be \"always\" or \"interval\", not \"sometimes\""),
        (&["--fsync", "interval", "--fsync-interval-ms", "0"][..], "fsync_interval_ms 0 must be from 1 to"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_mq"))
            .args(["broker", "--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()])
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{flags:?}: {err}");
        assert!(out.stdout.is_empty(), "no readiness line");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mq.toml");
    std::fs::write(&config, "fsync = \"hourly\"\n").unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_mq")).args(["broker", "--config", config.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hourly") && err.contains("`always` or `interval`"), "{err}");
}
