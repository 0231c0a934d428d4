//! Produce/fetch through the real TCP broker and the client library, restart on the
//! same data directory, and recovery of a torn tail.

mod common;

use common::{client, start, WAIT};
use mq_net::{Acks, ClientError, ErrorCode, NewTopic, Offset, OffsetSpec, Record};
use std::io::Write as _;
use std::time::Duration;

fn values(prefix: &str, n: usize) -> Vec<Record> {
    (0..n).map(|i| Record::from_value(format!("{prefix}-{i}"))).collect()
}

async fn read_all(c: &mq_net::Client, topic: &str, partition: u32) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut pos = c.list_offsets(topic, partition, OffsetSpec::Earliest).await.unwrap();
    loop {
        let f = c.fetch(topic, partition, pos, 64 * 1024).await.unwrap();
        let before = out.len();
        for (o, r) in f.records_from(pos) {
            out.push((o.0, String::from_utf8_lossy(&r.value).into_owned()));
            pos = o.next();
        }
        if out.len() == before {
            return out;
        }
    }
}

#[tokio::test]
async fn produce_and_fetch_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("orders", 2)).await.unwrap();
    let d0 = c.produce("orders", 0, Acks::All, values("a", 3)).await.unwrap();
    let d1 = c.produce("orders", 0, Acks::Leader, values("b", 2)).await.unwrap();
    let d2 = c.produce("orders", 1, Acks::All, values("c", 1)).await.unwrap();
    assert_eq!((d0.offset, d1.offset, d2.offset), (Offset(0), Offset(3), Offset(0)));
    assert!(d0.append_time_ms > 1_577_836_800_000, "append times are Unix milliseconds");
    let got = read_all(&c, "orders", 0).await;
    let want: Vec<(u64, String)> = [("a", 3), ("b", 2)]
        .iter()
        .flat_map(|(p, n)| (0..*n).map(move |i| format!("{p}-{i}")))
        .enumerate()
        .map(|(o, v)| (o as u64, v))
        .collect();
    assert_eq!(got, want);
    assert_eq!(c.list_offsets("orders", 0, OffsetSpec::Latest).await.unwrap(), Offset(5));
    let t = c.describe_topic("orders").await.unwrap();
    assert_eq!(t.partitions[0].high_watermark, Offset(5));
    let err = c.produce("nope", 0, Acks::All, values("x", 1)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopic), "{err}");
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn restart_on_the_same_data_dir_reads_back_every_acked_record() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("events", 3)).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..30u32 {
        let p = i % 3;
        let d = c.produce("events", p, Acks::All, values(&format!("r{i}"), 2)).await.unwrap();
        acked.push((p, d.offset.0, format!("r{i}-0")));
        acked.push((p, d.offset.0 + 1, format!("r{i}-1")));
    }
    drop(c);
    broker.stop().await.unwrap();

    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    let mut read = Vec::new();
    for p in 0..3 {
        read.extend(read_all(&c, "events", p).await.into_iter().map(|(o, v)| (p, o, v)));
    }
    acked.sort();
    read.sort();
    assert_eq!(read, acked);
    // New appends continue after the recovered end.
    let d = c.produce("events", 0, Acks::All, values("after", 1)).await.unwrap();
    assert_eq!(d.offset, Offset(20));
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn a_torn_tail_in_a_segment_is_truncated_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("t", 1)).await.unwrap();
    for i in 0..5 {
        c.produce("t", 0, Acks::All, values(&format!("v{i}"), 1)).await.unwrap();
    }
    drop(c);
    broker.stop().await.unwrap();
    // Half a batch, as a crash in the middle of a write leaves it.
    let seg = dir.path().join("logs/t/0/00000000000000000000.log");
    let mut half = Vec::new();
    let mut b = mq_core::wire::RecordBatch::new(values("torn", 4));
    b.base_offset = Offset(5);
    mq_core::wire::codec::encode_stored_batch(&b, &mut half);
    half.truncate(half.len() - 5);
    std::fs::OpenOptions::new().append(true).open(&seg).unwrap().write_all(&half).unwrap();

    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    let got: Vec<String> = read_all(&c, "t", 0).await.into_iter().map(|(_, v)| v).collect();
    assert_eq!(got, (0..5).map(|i| format!("v{i}-0")).collect::<Vec<_>>());
    assert_eq!(c.produce("t", 0, Acks::All, values("next", 1)).await.unwrap().offset, Offset(5));
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn connect_fails_fast_when_no_broker_listens() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = tokio::time::Instant::now();
    let err = mq_net::Client::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(2)).await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert!(started.elapsed() < WAIT);
}

#[tokio::test]
async fn shutdown_answers_requests_already_taken() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    // Calls to a stopped broker give up after their retries.
    let c = common::client_with_timeout(broker.local_addr(), Duration::from_secs(1)).await;
    c.create_topic(NewTopic::new("s", 1)).await.unwrap();
    let mut sends = Vec::new();
    for i in 0..50 {
        let c = c.clone();
        sends.push(tokio::spawn(async move { c.produce("s", 0, Acks::All, values(&format!("s{i}"), 1)).await }));
    }
    broker.stop().await.unwrap();
    let mut acked = 0;
    for s in sends {
        match s.await.unwrap() {
            Ok(_) => acked += 1,
            Err(ClientError::Disconnected(_) | ClientError::RetriesExhausted { .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    assert!(read_all(&c, "s", 0).await.len() >= acked, "every acknowledged record survives shutdown");
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn retention_deletes_old_segments_and_the_new_start_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        mq_net::BrokerConfig { segment_bytes: 1024, retention_check_interval_ms: 20, ..common::config(dir.path()) };
    let broker = mq_net::Broker::start(cfg.clone()).await.unwrap();
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("r", 1).retention_bytes(2048)).await.unwrap();
    for i in 0..100 {
        c.produce("r", 0, Acks::All, values(&format!("{i:0>40}"), 1)).await.unwrap();
    }
    // Retention runs on the broker's timer; wait (bounded) until it moved the start.
    let deadline = tokio::time::Instant::now() + WAIT;
    let start = loop {
        let start = c.list_offsets("r", 0, OffsetSpec::Earliest).await.unwrap();
        if start > Offset(0) {
            break start;
        }
        assert!(tokio::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first_segment = std::fs::read_dir(dir.path().join("logs/r/0"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".log")?.parse::<u64>().ok())
        .min()
        .unwrap();
    assert!(first_segment > 0, "whole segments below the log start were deleted");
    drop(c);
    broker.stop().await.unwrap();

    let broker = mq_net::Broker::start(cfg).await.unwrap();
    let c = client(broker.local_addr()).await;
    let after = c.list_offsets("r", 0, OffsetSpec::Earliest).await.unwrap();
    assert!(after >= start, "log start {after} went back below {start} after restart");
    assert_eq!(c.list_offsets("r", 0, OffsetSpec::Latest).await.unwrap(), Offset(100));
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn a_second_broker_on_a_data_dir_in_use_refuses_to_start_and_a_restart_after_stop_works() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path()).await;
    let c = client(first.local_addr()).await;
    c.create_topic(NewTopic::new("locked", 1)).await.unwrap();
    let d = c.produce("locked", 0, Acks::All, values("kept", 1)).await.unwrap();

    let err = mq_net::Broker::start(common::config(dir.path())).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("is in use by"), "{msg}");
    assert!(msg.contains(&format!("listening on {}", first.local_addr())), "the error names the holder: {msg}");
    // The refused broker wrote nothing: the first one still serves.
    assert_eq!(c.produce("locked", 0, Acks::All, values("more", 1)).await.unwrap().offset, d.offset.next());
    drop(c);
    first.stop().await.unwrap();

    let again = start(dir.path()).await;
    let c = client(again.local_addr()).await;
    assert_eq!(read_all(&c, "locked", 0).await.len(), 2, "the restart recovered the data");
    again.stop().await.unwrap();
}
