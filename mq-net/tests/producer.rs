//! `mq_net::Producer` (mq-core's producer machine driven over TCP) against a real
//! in-process broker: the startup check, deliveries and partitioning, batching,
//! backpressure, one-way sends, flush and close.

mod common;

use common::{client, read_everything, start};
use mq_net::{Acks, ClientError, ErrorCode, NewTopic, Offset, PartitionerKind, Producer, Record, SendRequest};
use std::time::Duration;

#[tokio::test]
async fn build_fails_fast_when_no_broker_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = tokio::time::Instant::now();
    let err = Producer::builder()
        .bootstrap(format!("1=127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("no mq broker reachable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "fails within the connect timeout");
}

#[tokio::test]
async fn build_refuses_an_unknown_topic_and_invalid_settings() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let b = broker.local_addr().to_string();
    let err = Producer::builder().bootstrap(&b).topic("missing").build().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownTopic), "{err}");
    let err = Producer::builder().bootstrap(&b).max_attempts(0).build().await.unwrap_err();
    assert!(err.to_string().contains("max_attempts"), "{err}");
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn sends_return_partition_and_offset_keyed_by_hash_and_unkeyed_round_robin() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("p", 4)).await.unwrap();
    let producer = c.producer("p").build().await.unwrap();
    let want = mq_net::partition_for_key(b"user-7", 4);
    for i in 0..3 {
        let d = producer.send(Record::keyed("user-7", format!("k{i}"))).await.unwrap();
        assert_eq!((d.partition.0, d.offset), (want, Offset(i)));
    }
    let mut spread = Vec::new();
    for _ in 0..4 {
        spread.push(producer.send(Record::from_value("y")).await.unwrap().partition.0);
    }
    assert_eq!(spread, vec![0, 1, 2, 3]);
    let d = producer.send_batch(vec![Record::keyed("user-7", "b0"), Record::keyed("user-7", "b1")]).await.unwrap();
    // Partition `want` holds the three keyed sends and one round-robin send.
    assert_eq!((d.partition.0, d.offset), (want, Offset(4)), "a batch send lands in one partition");
    let stored = read_everything(&c, "p", 4).await;
    assert_eq!(stored.get(&(want, 5)).map(String::as_str), Some("b1"), "its records follow each other");
    producer.close(Duration::from_secs(5)).await.unwrap();
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn the_key_hash_is_the_protocols_murmur2() {
    // docs/protocol.md section 7: "foobar" over 50 partitions is partition 16.
    assert_eq!(mq_net::partition_for_key(b"foobar", 50), 16);
}

#[tokio::test]
async fn enqueued_sends_batch_together_and_keep_their_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("b", 1)).await.unwrap();
    let producer = c.producer("b").linger(Duration::from_millis(50)).build().await.unwrap();
    let mut pending = Vec::new();
    for i in 0..200 {
        pending.push(
            producer.enqueue(SendRequest::new("b").record(Record::from_value(format!("m{i:03}")))).await.unwrap(),
        );
    }
    for (i, p) in pending.into_iter().enumerate() {
        assert_eq!(p.await.unwrap().offset, Offset(i as u64), "send {i} at its place");
    }
    let fetched = c.fetch("b", 0, Offset(0), 1 << 20).await.unwrap();
    let records: usize = fetched.batches.iter().map(|b| b.records.len()).sum();
    assert_eq!(records, 200);
    assert!(fetched.batches.len() < 20, "linger packed sends into batches, got {}", fetched.batches.len());
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_buffer_makes_sends_wait_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("w", 2)).await.unwrap();
    // Room for a handful of sends: the rest wait for outcomes.
    let producer = c
        .producer("w")
        .batch_max_bytes(256)
        .buffer_max_bytes(1024)
        .max_inflight(4)
        .partitioner(PartitionerKind::RoundRobin)
        .build()
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..100 {
        let request = SendRequest::new("w").record(Record::from_value(format!("{i:0>60}")));
        pending.push(producer.enqueue(request).await.unwrap());
    }
    for p in pending {
        p.await.unwrap();
    }
    assert_eq!(read_everything(&c, "w", 2).await.len(), 100);
    let err = producer.enqueue(SendRequest::new("w")).await.unwrap_err();
    assert!(err.to_string().contains("at least one record"), "{err}");
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn one_way_sends_are_on_the_broker_once_close_returns() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("o", 1)).await.unwrap();
    let producer = c.producer("o").build().await.unwrap();
    for i in 0..50 {
        producer.send_oneway(Record::from_value(format!("o{i}"))).await.unwrap();
    }
    producer.close(Duration::from_secs(5)).await.unwrap();
    // Taken by the broker, committed shortly after (a single replica).
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while read_everything(&c, "o", 1).await.len() < 50 {
        assert!(tokio::time::Instant::now() < deadline, "acks=0 records never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn flush_waits_for_lingering_sends_and_close_gives_up_at_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("f", 1)).await.unwrap();
    let producer = c
        .producer("f")
        .linger(Duration::from_millis(200))
        .request_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let first = producer.enqueue(SendRequest::new("f").record(Record::from_value("a"))).await.unwrap();
    producer.flush().await.unwrap();
    // Flushed: the outcome is there without waiting.
    let d = tokio::time::timeout(Duration::from_millis(1), first).await.expect("resolved by flush").unwrap();
    assert_eq!(d.offset, Offset(0));

    broker.stop().await.unwrap();
    let late = producer.enqueue(SendRequest::new("f").record(Record::from_value("b"))).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = producer.clone().close(Duration::from_millis(500)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "close keeps its deadline");
    assert!(matches!(err, ClientError::OutcomeUnknown { .. }), "{err}");
    let err = late.await.unwrap_err();
    assert!(err.is_indefinite() || err.code().is_some(), "{err}");
    let err = producer.send(Record::from_value("c")).await.unwrap_err();
    assert_eq!(err, ClientError::ProducerClosed);
}

#[tokio::test]
async fn acks_levels_and_the_default_topic_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let c = client(broker.local_addr()).await;
    c.create_topic(NewTopic::new("a", 1)).await.unwrap();
    c.create_topic(NewTopic::new("other", 1)).await.unwrap();
    let producer = c.producer("a").acks(Acks::Leader).build().await.unwrap();
    assert_eq!(producer.send(Record::from_value("x")).await.unwrap().offset, Offset(0));
    let d = producer
        .enqueue(SendRequest::new("other").partition(mq_core::PartitionId(0)).record(Record::from_value("y")))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(d, mq_net::Delivery { partition: mq_core::PartitionId(0), offset: Offset(0) });
    let err = producer
        .enqueue(SendRequest::new("a").partition(mq_core::PartitionId(5)).record(Record::from_value("z")))
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownPartition), "{err}");
    let untargeted = Producer::builder().bootstrap(broker.local_addr().to_string()).build().await.unwrap();
    let err = untargeted.send(Record::from_value("no topic")).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err}");
    broker.stop().await.unwrap();
}
