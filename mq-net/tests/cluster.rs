//! A 3-broker cluster in one process: brokers dial each other over loopback, the
//! client follows a partition leader that stops, and the stopped broker comes back
//! on its data directory without any acknowledged record lost.

mod common;

use common::{peers_list, WAIT};
use mq_net::{Acks, Broker, BrokerConfig, Client, ClientError, NewTopic, OffsetSpec, Producer, Record, SendRequest};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::net::TcpListener;

fn member_config(id: u32, dir: &Path, peers: &str) -> BrokerConfig {
    BrokerConfig {
        id,
        listen: "127.0.0.1:0".into(),
        data_dir: dir.to_owned(),
        peers: BrokerConfig::parse_peers(peers).expect("valid peers"),
        ..BrokerConfig::default()
    }
}

/// Binds `addr` again after its broker stopped (the old socket may linger briefly).
async fn rebind(addr: &str) -> TcpListener {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "rebinding");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

async fn start_cluster(dirs: &[tempfile::TempDir]) -> (Vec<Option<Broker>>, Vec<String>, String) {
    let mut listeners = Vec::new();
    for _ in dirs {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<String> = listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect();
    let peers = peers_list(&addrs);
    // Each broker is ready only once a quorum runs: start them together.
    let starts = listeners.into_iter().enumerate().map(|(i, l)| {
        let cfg = member_config(i as u32 + 1, dirs[i].path(), &peers);
        tokio::spawn(Broker::start_with_listener(cfg, l))
    });
    let mut brokers = Vec::new();
    for s in starts.collect::<Vec<_>>() {
        brokers.push(Some(s.await.unwrap().expect("cluster member starts")));
    }
    (brokers, addrs, peers)
}

async fn cluster_client(peers: &str) -> Client {
    Client::builder().bootstrap(peers).request_timeout(WAIT).connect().await.expect("client connects")
}

/// Produces `n` batches of `per` records to partition 0 with acks=all; every one
/// must be acknowledged (the client rides out leader changes).
async fn produce_acked(c: &Client, tag: &str, n: usize, per: usize, acked: &mut BTreeMap<u64, String>) {
    for i in 0..n {
        let values: Vec<String> = (0..per).map(|j| format!("{tag}-{i}-{j}")).collect();
        let records = values.iter().map(|v| Record::from_value(v.clone())).collect();
        let d = match c.produce("f", 0, Acks::All, records).await {
            Ok(d) => d,
            Err(e) => panic!("produce {tag}-{i} not acknowledged: {e}"),
        };
        for (j, v) in values.into_iter().enumerate() {
            assert!(acked.insert(d.offset.0 + j as u64, v).is_none(), "offset acknowledged twice");
        }
    }
}

async fn read_all(c: &Client) -> BTreeMap<u64, String> {
    read_topic(c, "f").await
}

/// Partition 0 of a one-partition topic, by offset.
async fn read_topic(c: &Client, topic: &str) -> BTreeMap<u64, String> {
    common::read_everything(c, topic, 1).await.into_iter().map(|((_, o), v)| (o, v)).collect()
}

/// Polls `describe` until `cond` holds (bounded by WAIT).
async fn wait_for(c: &Client, what: &str, cond: impl Fn(&mq_net::ClusterMetadata) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(m) = c.refresh_metadata().await {
            if cond(&m) {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_stop_fails_over_and_every_acked_record_survives_the_restart() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut brokers, addrs, peers) = start_cluster(&dirs).await;
    let c = cluster_client(&peers).await;
    c.create_topic(NewTopic::new("f", 1).replication_factor(3).min_insync_replicas(2)).await.unwrap();
    let t = c.describe_topic("f").await.unwrap();
    assert_eq!(t.partitions[0].replicas.len(), 3);

    let mut acked = BTreeMap::new();
    produce_acked(&c, "before", 50, 4, &mut acked).await;
    wait_for(&c, "a full ISR", |m| m.topic("f").is_some_and(|t| t.partitions[0].isr.len() == 3)).await;
    let t = c.describe_topic("f").await.unwrap();
    let old_leader = t.partitions[0].leader.expect("a leader").0;
    let old_epoch = t.partitions[0].leader_epoch;
    assert_eq!(t.partitions[0].high_watermark.0, acked.len() as u64, "the leader reports the HW");

    brokers[old_leader as usize - 1].take().unwrap().stop().await.unwrap();
    // The client finds the new leader by itself.
    produce_acked(&c, "during", 50, 4, &mut acked).await;
    let t = c.describe_topic("f").await.unwrap();
    let new_leader = t.partitions[0].leader.expect("a new leader").0;
    assert_ne!(new_leader, old_leader);
    assert!(t.partitions[0].leader_epoch > old_epoch);

    // The stopped broker comes back on its data directory and address.
    let i = old_leader as usize - 1;
    let listener = rebind(&addrs[i]).await;
    let cfg = member_config(old_leader, dirs[i].path(), &peers);
    brokers[i] = Some(Broker::start_with_listener(cfg, listener).await.expect("restart"));
    produce_acked(&c, "after", 20, 4, &mut acked).await;
    wait_for(&c, "the restarted broker back in the ISR", |m| {
        m.topic("f").is_some_and(|t| t.partitions[0].isr.len() == 3)
    })
    .await;

    let stored = read_all(&c).await;
    for (offset, value) in &acked {
        assert_eq!(stored.get(offset), Some(value), "acknowledged record at offset {offset} lost");
    }
    for b in brokers.into_iter().flatten() {
        b.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_a_leader_without_a_known_address_say_how_to_fix_it() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (brokers, addrs, peers) = start_cluster(&dirs).await;
    let full = cluster_client(&peers).await;
    full.create_topic(NewTopic::new("f", 3).replication_factor(1)).await.unwrap();
    // A plain address of one broker of three: partitions it does not lead are out
    // of reach, and the error says what to pass.
    let one = Client::builder().bootstrap(addrs[0].clone()).request_timeout(WAIT).connect().await.unwrap();
    let t = one.describe_topic("f").await.unwrap();
    let mut unknown = 0;
    for p in &t.partitions {
        match one.list_offsets("f", p.partition.0, OffsetSpec::Latest).await {
            Ok(_) => {}
            Err(ClientError::UnknownBrokerAddress(_)) => unknown += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(unknown, 3, "without ids the client cannot route to any leader");
    let err = Producer::builder().bootstrap(addrs[0].clone()).build().await.unwrap_err();
    assert!(matches!(err, ClientError::UnknownBrokerAddress(_)), "the producer's startup check says so: {err}");
    for b in brokers.into_iter().flatten() {
        b.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_rides_a_leader_stop_and_stores_each_acked_send_once_in_order() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut brokers, _, peers) = start_cluster(&dirs).await;
    let c = cluster_client(&peers).await;
    c.create_topic(NewTopic::new("g", 1).replication_factor(3).min_insync_replicas(2)).await.unwrap();
    let producer = Producer::builder()
        .bootstrap(peers.clone())
        .topic("g")
        .linger(Duration::from_millis(2))
        .request_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let mut pending = Vec::new();
    let mut stopped = None;
    for i in 0..600 {
        let value = format!("g{i:04}");
        pending.push((
            value.clone(),
            producer.enqueue(SendRequest::new("g").record(Record::from_value(value))).await.unwrap(),
        ));
        if i == 200 {
            let leader = c.describe_topic("g").await.unwrap().partitions[0].leader.expect("a leader").0;
            brokers[leader as usize - 1].take().unwrap().stop().await.unwrap();
            stopped = Some(leader);
        }
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut acked = BTreeMap::new();
    for (value, p) in pending {
        match p.await {
            Ok(d) => assert!(acked.insert(d.offset.0, value).is_none(), "offset acknowledged twice"),
            Err(e) => panic!("send {value} not acknowledged within the delivery timeout: {e}"),
        }
    }
    producer.close(Duration::from_secs(5)).await.unwrap();
    let t = c.describe_topic("g").await.unwrap();
    assert_ne!(t.partitions[0].leader.map(|l| l.0), stopped, "leadership moved");

    let stored = read_topic(&c, "g").await;
    assert_eq!(stored, acked, "every acknowledged send once, at its offset, nothing else");
    let values: Vec<&String> = stored.values().collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "sends stored in send order");
    for b in brokers.into_iter().flatten() {
        b.stop().await.unwrap();
    }
}
