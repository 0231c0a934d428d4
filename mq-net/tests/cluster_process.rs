//! Three `mq broker` processes on loopback: the leader of partition 0 is killed with
//! SIGKILL (or stopped with SIGTERM) in the middle of an acks=all produce run, the
//! producers carry on through the failover, the broker restarts on its data
//! directory, and every acknowledged record is read back. Processes are killed on
//! drop, even on failure.

mod common;

use common::{free_ports, peers_list, read_everything, BrokerProcess, WAIT};
use mq_net::{Acks, Client, NewTopic, Record};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const PARTITIONS: u32 = 3;
const BATCH: usize = 10;
const TOTAL: usize = 5_000;
const KILL_AFTER: usize = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Kill9,
    Term,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_a_leader_mid_produce_loses_no_acknowledged_record() {
    leader_failover_under_load(Stop::Kill9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_a_leader_under_load_exits_zero_and_loses_no_acknowledged_record() {
    leader_failover_under_load(Stop::Term).await;
}

async fn leader_failover_under_load(how: Stop) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let addrs: Vec<String> = free_ports(3).into_iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let peers = peers_list(&addrs);
    let args = |i: usize| -> Vec<String> {
        let dir = dirs[i].path().to_str().expect("utf-8 temp path").to_owned();
        ["broker", "--id", &(i + 1).to_string(), "--peers", &peers, "--data-dir", &dir]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let mut procs = BrokerProcess::start_many(&[args(0), args(1), args(2)]);
    let c = Client::builder().bootstrap(peers.clone()).request_timeout(WAIT).connect().await.unwrap();
    c.create_topic(NewTopic::new("orders", PARTITIONS).replication_factor(3).min_insync_replicas(2)).await.unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for w in 0..4u32 {
        let (c, tx, stop) = (c.clone(), tx.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0u32.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let p = (w + i) % PARTITIONS;
                let values: Vec<String> = (0..BATCH).map(|j| format!("w{w}-{i}-{j}")).collect();
                let records = values.iter().map(|v| Record::from_value(v.clone())).collect();
                match c.produce("orders", p, Acks::All, records).await {
                    Ok(d) => {
                        for (j, v) in values.into_iter().enumerate() {
                            let _ = tx.send(((p, d.offset.0 + j as u64), v));
                        }
                    }
                    // Not acknowledged: no promise to check (an indefinite outcome may
                    // or may not be stored).
                    Err(e) => errors.push(e.to_string()),
                }
            }
            errors
        }));
    }
    drop(tx);

    let mut acked = Vec::new();
    let mut killed = None;
    while acked.len() < TOTAL {
        let a = tokio::time::timeout(WAIT, rx.recv()).await.expect("acks keep arriving").expect("producers alive");
        acked.push(a);
        if killed.is_none() && acked.len() >= KILL_AFTER {
            let t = c.describe_topic("orders").await.unwrap();
            let leader = t.partitions[0].leader.expect("partition 0 has a leader").0 as usize;
            let started = tokio::time::Instant::now();
            match how {
                Stop::Kill9 => procs[leader - 1].kill9(),
                Stop::Term => {
                    // Blocking wait for the exit: fine on a multi-thread runtime.
                    let status = procs[leader - 1].terminate();
                    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
                }
            }
            eprintln!("{how:?}: broker {leader} stopped in {:?} after {} acks", started.elapsed(), acked.len());
            killed = Some(leader);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.unwrap());
    }
    while let Some(a) = rx.recv().await {
        acked.push(a);
    }
    let killed = killed.expect("the leader was killed");
    eprintln!("{how:?}: {} records acknowledged, {} produce calls failed", acked.len(), errors.len());

    // The killed broker restarts on its data directory and rejoins.
    procs[killed - 1] = BrokerProcess::start_many(&[args(killed - 1)]).pop().unwrap();
    let t = c.describe_topic("orders").await.unwrap();
    assert_ne!(t.partitions[0].leader.map(|l| l.0 as usize), Some(killed), "leadership moved away");

    let stored = read_everything(&c, "orders", PARTITIONS).await;
    for (pos, value) in &acked {
        assert_eq!(stored.get(pos), Some(value), "acknowledged record at {pos:?} lost (errors seen: {errors:?})");
    }
    assert!(errors.len() < 10, "producers should ride out one failover: {errors:?}");
    drop(procs);
}
