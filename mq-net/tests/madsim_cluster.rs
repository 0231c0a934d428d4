//! The real mq-net code (brokers, links, storage, client, producer) in madsim: three
//! brokers in three simulated nodes, a producer sending with acks=all in a fourth,
//! the partition leader killed (and restarted on its data directory) and then a
//! broker's network clogged, while the producer keeps sending. Every acknowledged
//! record must be readable at its offset afterwards.
//!
//! Built only with `RUSTFLAGS="--cfg madsim"` (see `.ci/run` and docs/operations.md
//! section 7); `MADSIM_TEST_SEED=N` replays another seed.

#![cfg(madsim)]

mod common;

use madsim::net::NetSim;
use madsim::runtime::Handle;
use mq_net::{Acks, Broker, BrokerConfig, Client, NewTopic, Producer, Record, SendRequest};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

const PEERS: &str = "1=10.0.0.1:9092,2=10.0.0.2:9092,3=10.0.0.3:9092";
const TOPIC: &str = "sim";
/// Sends, one every `SEND_EVERY` of virtual time.
const SENDS: usize = 1500;
const SEND_EVERY: Duration = Duration::from_millis(20);

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

/// One broker for the node's whole life (the node's init task: it runs again after
/// a restart).
async fn run_broker(id: u32, data_dir: PathBuf) {
    let config = BrokerConfig {
        id,
        listen: format!("10.0.0.{id}:9092"),
        data_dir,
        peers: BrokerConfig::parse_peers(PEERS).expect("valid peers"),
        ..BrokerConfig::default()
    };
    let mut broker = Broker::start(config).await.expect("broker starts");
    broker.wait().await.expect("broker runs until the node is killed");
}

/// Connects and creates the topic once the cluster answers (the brokers start
/// together and elect a controller first).
async fn admin() -> Client {
    loop {
        let client = Client::builder()
            .bootstrap(PEERS)
            .connect_timeout(Duration::from_secs(1))
            .request_timeout(Duration::from_secs(60))
            .connect()
            .await;
        if let Ok(c) = client {
            let topic = NewTopic::new(TOPIC, 1).replication_factor(3).min_insync_replicas(2);
            if c.create_topic(topic).await.is_ok() {
                return c;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the producer node saw: acknowledged records by offset, and how many sends
/// ended otherwise.
struct Outcome {
    acked: BTreeMap<u64, String>,
    not_acked: usize,
}

/// Produces `SENDS` records; tells `started` the partition's first leader and its
/// ISR once the first send is acknowledged.
async fn produce(started: oneshot::Sender<(u32, Vec<u32>)>) -> Outcome {
    let c = admin().await;
    let producer = Producer::builder()
        .bootstrap(PEERS)
        .topic(TOPIC)
        .acks(Acks::All)
        .request_timeout(Duration::from_secs(1))
        .delivery_timeout(Duration::from_secs(120))
        .max_attempts(1000)
        .build()
        .await
        .expect("producer starts");
    let first = producer.send(Record::from_value("v0000")).await.expect("first send acknowledged");
    let mut acked = BTreeMap::from([(first.offset.0, "v0000".to_string())]);
    let p = c.describe_topic(TOPIC).await.expect("topic").partitions[0].clone();
    let _ = started.send((p.leader.expect("a leader").0, p.isr.iter().map(|b| b.0).collect()));
    let mut pending = Vec::new();
    for i in 1..SENDS {
        let value = format!("v{i:04}");
        let request = SendRequest::new(TOPIC).record(Record::from_value(value.clone()));
        pending.push((value, producer.enqueue(request).await.expect("accepted")));
        tokio::time::sleep(SEND_EVERY).await;
    }
    let mut not_acked = 0;
    for (value, p) in pending {
        match p.await {
            Ok(d) => assert!(acked.insert(d.offset.0, value).is_none(), "offset {} acknowledged twice", d.offset),
            Err(_) => not_acked += 1,
        }
    }
    producer.close(Duration::from_secs(5)).await.expect("every send has an outcome");
    Outcome { acked, not_acked }
}

/// Every record of the partition, read from its leader.
async fn read_back() -> BTreeMap<u64, String> {
    let c = Client::builder().bootstrap(PEERS).request_timeout(Duration::from_secs(60)).connect().await.unwrap();
    common::read_everything(&c, TOPIC, 1).await.into_iter().map(|((_, o), v)| (o, v)).collect()
}

#[madsim::test]
async fn three_brokers_lose_no_acked_record_through_a_node_kill_and_a_network_clog() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("MQ_LOG"))
        .with_test_writer()
        .try_init();
    let handle = Handle::current();
    // madsim does not model disks (a killed node keeps every write), so fsync buys
    // nothing here; on tmpfs it costs nothing either, whatever else the machine does.
    let shm = std::path::Path::new("/dev/shm");
    let tempdir = || if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempdir().unwrap()).collect();
    let brokers: Vec<_> = (1..=3u32)
        .map(|id| {
            let dir = dirs[id as usize - 1].path().to_owned();
            handle
                .create_node()
                .name(format!("broker-{id}"))
                .ip(ip(id as u8))
                .init(move || run_broker(id, dir.clone()))
                .build()
        })
        .collect();
    let client = handle.create_node().name("producer").ip(ip(10)).build();
    let (started_tx, started) = oneshot::channel();
    let workload = client.spawn(produce(started_tx));

    let node = |broker: u32| brokers[broker as usize - 1].id();
    let net = NetSim::current();
    let (leader, isr) = started.await.expect("the producer started");
    // The in-sync follower the controller elects first when the leader dies.
    let next = *isr.iter().find(|b| **b != leader).expect("a follower");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A clogged link makes that follower fall behind while it is still in the ISR
    // (for less than replica_lag_time, 3 s): acks=all must wait for it.
    net.clog_link(node(leader), node(next));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The leader dies; the lagging follower may take over. It comes back on its data
    // directory once its tasks (and the data-directory lock they hold) are dropped,
    // which happens at their next wake.
    handle.kill(node(leader));
    net.unclog_link(node(leader), node(next));
    tokio::time::sleep(Duration::from_secs(6)).await;
    handle.restart(node(leader));

    // Later the new leader is cut off from everyone for a while.
    tokio::time::sleep(Duration::from_secs(6)).await;
    net.clog_node(node(next));
    tokio::time::sleep(Duration::from_secs(5)).await;
    net.unclog_node(node(next));

    let outcome = workload.await.expect("the producer node finished");
    assert!(
        outcome.acked.len() > SENDS / 2,
        "the run must acknowledge most sends to mean anything: {} of {SENDS} ({} not)",
        outcome.acked.len(),
        outcome.not_acked
    );
    let stored = client.spawn(read_back()).await.expect("read back");
    eprintln!(
        "killed broker {leader}, clogged broker {next}; {} sends acknowledged, {} not; {} records stored",
        outcome.acked.len(),
        outcome.not_acked,
        stored.len()
    );
    for (offset, value) in &outcome.acked {
        assert_eq!(stored.get(offset), Some(value), "acknowledged record at offset {offset} lost");
    }
    drop(brokers);
}
