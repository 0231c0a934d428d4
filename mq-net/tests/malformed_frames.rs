//! Garbage, oversized lengths, bad checksums and stalled frames close that one
//! connection with a logged reason; the broker keeps serving everyone else.

mod common;

use common::{client, config, WAIT};
use mq_core::wire::{frame_bytes, Message, Request, RequestBody};
use mq_core::CorrelationId;
use mq_net::{Acks, Broker, NewTopic, Record};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` and expects the broker to close the connection without replying.
async fn expect_closed(addr: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let read = tokio::time::timeout(WAIT, s.read(&mut buf)).await.expect("the broker closes the connection");
    match read {
        Ok(0) => {}
        Ok(n) => panic!("expected a close, got {n} bytes"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

fn list_topics_frame() -> Vec<u8> {
    frame_bytes(&Message::Request(Request { correlation: CorrelationId(1), body: RequestBody::ListTopics })).unwrap()
}

#[tokio::test]
async fn malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = mq_net::BrokerConfig { read_timeout_ms: 300, ..config(dir.path()) };
    let broker = Broker::start(cfg).await.unwrap();
    let addr = broker.local_addr();
    let good = client(addr).await;
    good.create_topic(NewTopic::new("ok", 1)).await.unwrap();

    // Garbage: a wrong version byte right after the length.
    expect_closed(addr, b"\x00\x00\x00\x10garbage garbage!").await;
    // A length prefix far above the frame limit: refused before reading the payload.
    expect_closed(addr, &u32::MAX.to_be_bytes()).await;
    // A flipped payload bit: the CRC does not match.
    let mut bad_crc = list_topics_frame();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x40;
    expect_closed(addr, &bad_crc).await;
    // A frame that starts and never completes: closed by the read timeout.
    let frame = list_topics_frame();
    expect_closed(addr, &frame[..frame.len() - 2]).await;
    // A broker only takes requests: a response is a protocol error.
    let resp = Message::Response(mq_core::wire::Response {
        correlation: CorrelationId(1),
        body: Ok(mq_core::wire::ResponseBody::TopicCreated),
    });
    expect_closed(addr, &frame_bytes(&resp).unwrap()).await;

    // The long-lived client and new ones still work.
    good.produce("ok", 0, Acks::All, vec![Record::from_value("still here")]).await.unwrap();
    let fresh = client(addr).await;
    assert_eq!(fresh.list_topics().await.unwrap().len(), 1);
    broker.stop().await.unwrap();
}

#[tokio::test]
async fn connections_above_the_limit_are_closed_on_accept() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = mq_net::BrokerConfig { max_connections: 1, ..config(dir.path()) };
    let broker = Broker::start(cfg).await.unwrap();
    let addr = broker.local_addr();
    let first = client(addr).await;
    expect_closed(addr, &list_topics_frame()).await;
    assert!(first.list_topics().await.is_ok());
    drop(first);
    broker.stop().await.unwrap();
}
