//! Multi-process tests of the `mq` binary: SIGKILL in the middle of producing loses
//! no acknowledged record; SIGTERM shuts down cleanly (exit 0) with nothing acked
//! lost; the CLI commands work end to end.

mod common;

use common::{client, client_with_timeout, read_everything, BrokerProcess, WAIT};
use mq_net::{Acks, NewTopic, Record};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Produces single-record batches round robin with acks=all from several tasks
/// until the broker goes away; returns what was acknowledged.
async fn produce_until_error(
    addr: &str,
    topic: &str,
    partitions: u32,
    stop_after_acks: usize,
) -> Vec<((u32, u64), String)> {
    let c = client_with_timeout(addr, Duration::from_secs(1)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for w in 0..4u32 {
        let c = c.clone();
        let tx = tx.clone();
        let topic = topic.to_owned();
        // Producers keep going after we stop counting: the shutdown happens under load.
        tokio::spawn(async move {
            for i in 0u32.. {
                let p = (w + i) % partitions;
                let value = format!("w{w}-{i}");
                match c.produce(&topic, p, Acks::All, vec![Record::from_value(value.clone())]).await {
                    Ok(d) => {
                        if tx.send(((p, d.offset.0), value)).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    }
    drop(tx);
    let mut acked = Vec::new();
    while acked.len() < stop_after_acks {
        let a = tokio::time::timeout(WAIT, rx.recv()).await.expect("acks arrive").expect("producers alive");
        acked.push(a);
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_produce_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path());
    let addr = broker.addr.clone();
    client(&addr).await.create_topic(NewTopic::new("orders", 3)).await.unwrap();

    // Keep producing while the broker is killed; collect every acknowledgement
    // received before and after the kill. The producers stop once retries ran out.
    let c = client_with_timeout(&addr, Duration::from_secs(1)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for w in 0..4u32 {
        let c = c.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0u32.. {
                let p = (w + i) % 3;
                let value = format!("w{w}-{i}");
                match c.produce("orders", p, Acks::All, vec![Record::from_value(value.clone())]).await {
                    Ok(d) => {
                        let _ = tx.send(((p, d.offset.0), value));
                    }
                    Err(_) => return,
                }
            }
        });
    }
    drop(tx);
    let mut acked = Vec::new();
    while acked.len() < 300 {
        let a = tokio::time::timeout(WAIT, rx.recv()).await.expect("acks arrive").expect("producers alive");
        acked.push(a);
    }
    broker.kill9();
    // Acks that were already on their way count too.
    while let Ok(Some(a)) = tokio::time::timeout(WAIT, rx.recv()).await {
        acked.push(a);
    }

    let broker = BrokerProcess::start(dir.path());
    let stored = read_everything(&client(&broker.addr).await, "orders", 3).await;
    for (pos, value) in &acked {
        assert_eq!(stored.get(pos), Some(value), "acknowledged record at {pos:?} lost after kill -9");
    }
    assert!(stored.len() >= acked.len());
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_and_keeps_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path());
    let addr = broker.addr.clone();
    client(&addr).await.create_topic(NewTopic::new("t", 2)).await.unwrap();
    let acked = produce_until_error(&addr, "t", 2, 200).await;
    let status = broker.terminate();
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    let broker = BrokerProcess::start(dir.path());
    let stored = read_everything(&client(&broker.addr).await, "t", 2).await;
    for (pos, value) in &acked {
        assert_eq!(stored.get(pos), Some(value));
    }
}

fn mq(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mq"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mq");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_creates_produces_consumes_and_describes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let b = broker.addr.as_str();
    let (ok, out, err) =
        mq(&["topic", "create", "orders", "--partitions", "2", "--replication-factor", "1", "--bootstrap", b], None);
    assert!(ok, "{err}");
    assert!(out.starts_with("created topic orders"), "{out}");
    let (ok, out, _) = mq(&["topic", "list", "--bootstrap", b], None);
    assert!(ok && out == "orders\n", "{out}");

    let (ok, out, err) =
        mq(&["produce", "orders", "--partition", "1", "--json", "--bootstrap", b], Some("one\ntwo \"q\"\n"));
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "{\"partition\":1,\"offset\":0,\"value\":\"one\"}\n{\"partition\":1,\"offset\":1,\"value\":\"two \\\"q\\\"\"}\n"
    );
    let (ok, _, err) = mq(&["produce", "orders", "--key", "k", "--acks", "1", "--bootstrap", b], Some("three\n"));
    assert!(ok, "{err}");

    let (ok, out, err) = mq(
        &["consume", "orders", "--group", "g", "--json", "--max", "3", "--idle-timeout", "10", "--bootstrap", b],
        None,
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.contains(&"{\"partition\":1,\"offset\":0,\"key\":null,\"value\":\"one\"}"), "{out}");
    assert!(lines.iter().any(|l| l.contains("\"key\":\"k\",\"value\":\"three\"")), "{out}");

    let (ok, out, _) = mq(&["topic", "describe", "orders", "--bootstrap", b], None);
    assert!(ok);
    assert!(out.lines().nth(1).unwrap().starts_with("partition  leader  epoch"), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");

    let (ok, _, err) = mq(&["topic", "create", "orders", "--bootstrap", b], None);
    assert!(!ok && err.contains("TopicExists"), "{err}");
    let (ok, out, _) = mq(&["topic", "delete", "orders", "--bootstrap", b], None);
    assert!(ok && out == "deleted topic orders\n", "{out}");
}

#[test]
fn cli_produce_prints_outcomes_in_input_order_and_acks_0_records_reach_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let b = broker.addr.as_str();
    let (ok, _, err) = mq(&["topic", "create", "lines", "--partitions", "3", "--bootstrap", b], None);
    assert!(ok, "{err}");
    let input: String = (0..3000).map(|i| format!("line-{i}\n")).collect();
    let (ok, out, err) = mq(&["produce", "lines", "--json", "--bootstrap", b], Some(&input));
    assert!(ok, "{err}");
    assert_eq!(err, "", "no progress bar on a captured stderr");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3000, "one line per acknowledged record");
    let mut next = [0u64; 3];
    for (i, l) in lines.iter().enumerate() {
        // Round robin from partition 0; each partition's offsets run on.
        let p = i % 3;
        assert_eq!(*l, format!("{{\"partition\":{p},\"offset\":{},\"value\":\"line-{i}\"}}", next[p]));
        next[p] += 1;
    }
    let input: String = (0..500).map(|i| format!("fast-{i}\n")).collect();
    let (ok, out, err) = mq(&["produce", "lines", "--acks", "0", "--json", "--bootstrap", b], Some(&input));
    assert!(ok, "{err}");
    assert!(out.is_empty(), "acks=0 prints no acknowledgement: {out}");
    assert!(err.contains("sent 500 record(s) with acks=0"), "{err}");
    let (ok, out, err) = mq(&["consume", "lines", "--max", "3500", "--idle-timeout", "10", "--bootstrap", b], None);
    assert!(ok, "{err}");
    assert_eq!(out.lines().filter(|l| l.starts_with("fast-")).count(), 500, "every acks=0 record arrived");
}

#[test]
fn client_commands_fail_fast_without_a_broker() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (ok, _, err) = mq(&["topic", "list", "--bootstrap", &format!("127.0.0.1:{port}")], None);
    assert!(!ok);
    assert!(err.contains("no mq broker reachable"), "{err}");
}

#[test]
fn a_second_mq_broker_on_the_same_data_dir_exits_1_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = BrokerProcess::start(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_mq"))
        .args(["broker", "--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()])
        .env("MQ_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("in use by pid {} (mq broker 1 listening on {})", first.child.id(), first.addr)),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "no readiness line");
}

#[test]
fn broker_refuses_invalid_settings_with_exit_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_mq"))
        .args(["broker", "--peers", "2=localhost:9093", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("do not list this broker"));
}

#[test]
fn config_file_settings_are_used_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    let from_flag = dir.path().join("from-flag");
    let config = dir.path().join("mq.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nsegment_bytes = 4096\n", from_file.to_str().unwrap()),
    )
    .unwrap();
    let broker = BrokerProcess::start_with(&[
        "broker",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        from_flag.to_str().unwrap(),
    ]);
    let (ok, _, err) = mq(&["topic", "create", "x", "--bootstrap", &broker.addr], None);
    assert!(ok, "{err}");
    assert!(from_flag.join("raft.wal").exists(), "--data-dir wins over the file");
    assert!(!from_file.exists());
}
