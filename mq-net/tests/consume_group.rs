//! `mq consume --group` end to end (issue 8): the built `mq` binary as group
//! members against an `mq broker` process on loopback. Two members of a shared
//! group split the records; each record is acked after it is printed, so a member
//! started later gets none of them again.

mod common;

use common::{client, mq_with_env, BrokerProcess, WAIT};
use mq_net::{Acks, NewTopic, Record};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio::time::Instant;

/// A running `mq consume`; its stdout lines arrive on `lines`. Killed on drop.
struct Member {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Member {
    fn start(args: &[&str]) -> Member {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mq"))
            .args(args)
            .env_remove("MQ_APP_KEY")
            .env_remove("MQ_APP_SECRET")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mq consume");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Member { child, lines }
    }

    /// Waits for the exit (it ends by its idle timeout); true if it exited 0.
    fn wait(&mut self) -> bool {
        common::wait_with_timeout(&mut self.child, Duration::from_secs(120)).expect("mq consume exits").success()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a `--json` line.
fn value_of(line: &str) -> String {
    let v = line.split("\"value\":\"").nth(1).unwrap_or_else(|| panic!("not a record line: {line}"));
    v.trim_end_matches("\"}").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shared_members_split_the_records_and_acked_records_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path());
    let b = broker.addr.clone();
    let c = client(&b).await;
    c.create_topic(NewTopic::new("jobs", 2)).await.unwrap();
    let consume =
        ["consume", "jobs", "--group", "workers", "--mode", "shared", "--json", "--idle-timeout", "8", "--bootstrap"];
    let args: Vec<&str> = consume.iter().copied().chain([b.as_str()]).collect();
    let mut members = [Member::start(&args), Member::start(&args)];
    let mut seen: [Vec<String>; 2] = [Vec::new(), Vec::new()];

    // Produce one record at a time, each once a member printed the previous one,
    // until both members got records (the second may join a little later), then
    // a few more. The cap only bounds a broken run.
    let mut produced = BTreeSet::new();
    let started = Instant::now();
    let mut n = 0;
    let mut extra = 0;
    while extra < 10 {
        assert!(started.elapsed() < Duration::from_secs(90), "the second member never got a record: {seen:?}");
        let value = format!("job-{n}");
        c.produce("jobs", n % 2, Acks::All, vec![Record::from_value(value.clone())]).await.unwrap();
        produced.insert(value);
        n += 1;
        let deadline = Instant::now() + WAIT;
        'printed: loop {
            for (i, m) in members.iter().enumerate() {
                while let Ok(line) = m.lines.try_recv() {
                    seen[i].push(value_of(&line));
                }
            }
            if seen.iter().map(Vec::len).sum::<usize>() >= produced.len() {
                break 'printed;
            }
            assert!(Instant::now() < deadline, "job-{} was not printed within {WAIT:?}", n - 1);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if seen.iter().all(|s| !s.is_empty()) {
            extra += 1;
        }
    }
    for (i, m) in members.iter_mut().enumerate() {
        assert!(m.wait(), "member {i} exits 0 after its idle timeout");
        while let Ok(line) = m.lines.try_recv() {
            seen[i].push(value_of(&line));
        }
    }
    let all: Vec<&String> = seen.iter().flatten().collect();
    let distinct: BTreeSet<String> = all.iter().map(|s| s.to_string()).collect();
    assert_eq!(distinct, produced, "every record printed");
    assert_eq!(all.len(), produced.len(), "acked records are not delivered twice: {seen:?}");
    assert!(seen.iter().all(|s| !s.is_empty()), "both members got records: {seen:?}");

    // Both left after acking: a new member finds nothing left but new records.
    let (ok, out, err) = mq_with_env(&args, &[], None);
    assert!(ok, "{err}");
    assert_eq!(out, "", "acked records came back: {out}");
    c.produce("jobs", 0, Acks::All, vec![Record::keyed("k", "late")]).await.unwrap();
    let mut once: Vec<&str> = args.clone();
    once.extend(["--max", "1"]);
    let (ok, out, err) = mq_with_env(&once, &[], None);
    assert!(ok, "{err}");
    let line = out.trim_end();
    assert!(
        line.starts_with("{\"partition\":0,\"offset\":") && line.ends_with(",\"key\":\"k\",\"value\":\"late\"}"),
        "{out}"
    );
}

#[test]
fn consume_flags_are_checked() {
    let (ok, _, err) = mq_with_env(&["consume", "t", "--mode", "shared"], &[], None);
    assert!(!ok && err.contains("--group"), "{err}");
    let (ok, _, err) = mq_with_env(&["consume", "t", "--group", "g", "--from", "latest"], &[], None);
    assert!(!ok && err.contains("--from"), "{err}");
}
