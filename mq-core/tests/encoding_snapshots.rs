//! Snapshots of the exact bytes of sample frames (docs/protocol.md). A change here
//! is a wire-format change: old peers and stored data stop decoding. Review the diff,
//! bump `FRAME_VERSION` if it is intended, and update docs/protocol.md with it.

use bytes::Bytes;
use mq_core::group::{assign::Assignor, GroupMode};
use mq_core::wire::{
    decode_frame, frame_bytes, Acks, BatchKind, Header, JoinGroup, Joined, Message, ProducerStamp, Record, RecordBatch,
    Request, RequestBody, Response, ResponseBody, DEFAULT_MAX_FRAME_BYTES,
};
use mq_core::{
    CorrelationId, Duration, Generation, GroupGeneration, LeaderEpoch, MemberId, Offset, PartitionId, ProducerEpoch,
    ProducerId, Sequence, TopicPartition,
};
use std::fmt::Write as _;

/// `offset: 16 hex bytes  |ascii|`, one line per 16 bytes.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = format!("{} bytes\n", bytes.len());
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let ascii: String = chunk.iter().map(|&b| if b.is_ascii_graphic() { b as char } else { '.' }).collect();
        writeln!(out, "{:04x}: {:<47}  |{}|", i * 16, hex.join(" "), ascii).unwrap();
    }
    out
}

fn sample_batch() -> RecordBatch {
    RecordBatch {
        base_offset: Offset(0),
        leader_epoch: LeaderEpoch(0),
        append_time_ms: 0,
        kind: BatchKind::Data,
        producer: Some(ProducerStamp {
            producer_id: ProducerId(7),
            producer_epoch: ProducerEpoch(1),
            base_sequence: Sequence(42),
        }),
        records: vec![
            Record {
                timestamp_ms: 1_700_000_000_000,
                key: Some(Bytes::from_static(b"user-1")),
                value: Bytes::from_static(b"hello"),
                headers: vec![Header { key: "trace".into(), value: Bytes::from_static(b"\x01\x02") }],
                tags: vec!["eu".into()],
            },
            Record::from_value("world"),
        ],
    }
}

fn assert_round_trips(msg: &Message, bytes: &[u8]) {
    let (back, used) = decode_frame(bytes, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
    assert_eq!((&back, used), (msg, bytes.len()));
}

#[test]
fn produce_request_frame_bytes() {
    let msg = Message::Request(Request {
        correlation: CorrelationId(1),
        body: RequestBody::Produce {
            topic: "orders".into(),
            partition: PartitionId(2),
            acks: Acks::All,
            batch: sample_batch(),
        },
    });
    let bytes = frame_bytes(&msg).unwrap();
    assert_round_trips(&msg, &bytes);
    insta::assert_snapshot!(hex_dump(&bytes));
}

#[test]
fn fetched_response_frame_bytes() {
    let mut batch = sample_batch();
    batch.base_offset = Offset(100);
    batch.leader_epoch = LeaderEpoch(3);
    batch.append_time_ms = 1_700_000_000_123;
    let msg = Message::Response(Response {
        correlation: CorrelationId(2),
        body: Ok(ResponseBody::Fetched {
            partition: PartitionId(2),
            high_watermark: Offset(102),
            log_start: Offset(50),
            batches: vec![batch],
        }),
    });
    let bytes = frame_bytes(&msg).unwrap();
    assert_round_trips(&msg, &bytes);
    insta::assert_snapshot!(hex_dump(&bytes));
}

#[test]
fn join_group_request_frame_bytes() {
    let msg = Message::Request(Request {
        correlation: CorrelationId(3),
        body: RequestBody::JoinGroup(JoinGroup {
            group: "billing".into(),
            member: Some(MemberId(2 << 32 | 5)),
            topics: vec!["orders".into()],
            mode: GroupMode::Exclusive(Assignor::Sticky),
            session_timeout: Duration::from_secs(10),
            settings: mq_core::wire::GroupSettings::default(),
            weight: 1,
        }),
    });
    let bytes = frame_bytes(&msg).unwrap();
    assert_round_trips(&msg, &bytes);
    insta::assert_snapshot!(hex_dump(&bytes));
}

#[test]
fn joined_response_frame_bytes() {
    let msg = Message::Response(Response {
        correlation: CorrelationId(3),
        body: Ok(ResponseBody::Joined(Joined {
            member: MemberId(2 << 32 | 5),
            generation: GroupGeneration { coordinator_epoch: LeaderEpoch(2), generation: Generation(7) },
            assignment: vec![TopicPartition::new("orders", 0), TopicPartition::new("orders", 3)],
            heartbeat_interval: Duration::from_millis(3333),
            settings: mq_core::wire::GroupSettings::default(),
            peers: vec![("orders".into(), vec![(MemberId(2 << 32 | 5), 1)])],
        })),
    });
    let bytes = frame_bytes(&msg).unwrap();
    assert_round_trips(&msg, &bytes);
    insta::assert_snapshot!(hex_dump(&bytes));
}
