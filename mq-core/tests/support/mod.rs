//! Helpers shared by the scenario tests: short request builders and response
//! matchers so each test reads like the behaviour it names.
#![allow(dead_code)] // each test file uses a different subset

use bytes::Bytes;
use mq_core::harness::Harness;
use mq_core::wire::{
    Acks, ErrorCode, OffsetSpec, Record, RecordBatch, RequestBody, Response, ResponseBody, TopicConfig, WireError,
};
use mq_core::{CorrelationId, Offset, PartitionId};

pub const CLIENT: u64 = 1;

pub fn create(h: &mut Harness, topic: &str, partitions: u32) -> CorrelationId {
    h.request(CLIENT, 1, RequestBody::CreateTopic(TopicConfig::new(topic, partitions)))
}

/// Creates `topic` and drives until it is acknowledged.
pub fn create_ok(h: &mut Harness, topic: &str, partitions: u32) {
    let c = create(h, topic, partitions);
    h.drive();
    assert_eq!(ok(h, c), ResponseBody::TopicCreated);
}

pub fn values(vals: &[&str]) -> RecordBatch {
    RecordBatch::new(vals.iter().map(|v| Record::from_value(Bytes::copy_from_slice(v.as_bytes()))).collect())
}

pub fn produce(h: &mut Harness, topic: &str, partition: u32, acks: Acks, vals: &[&str]) -> CorrelationId {
    let body =
        RequestBody::Produce { topic: topic.into(), partition: PartitionId(partition), acks, batch: values(vals) };
    h.request(CLIENT, 1, body)
}

/// Produces with acks=all, drives, and returns the base offset.
pub fn produce_ok(h: &mut Harness, topic: &str, partition: u32, vals: &[&str]) -> Offset {
    let c = produce(h, topic, partition, Acks::All, vals);
    h.drive();
    match ok(h, c) {
        ResponseBody::Produced { base_offset, .. } => base_offset,
        other => panic!("expected Produced, got {other:?}"),
    }
}

pub fn fetch(h: &mut Harness, topic: &str, partition: u32, offset: u64, max_bytes: u32) -> CorrelationId {
    let body = RequestBody::Fetch {
        topic: topic.into(),
        partition: PartitionId(partition),
        offset: Offset(offset),
        max_bytes,
    };
    h.request(CLIENT, 1, body)
}

/// Fetches and returns `(offset, value)` pairs of the reply.
pub fn fetch_values(h: &mut Harness, topic: &str, partition: u32, offset: u64) -> Vec<(u64, String)> {
    let c = fetch(h, topic, partition, offset, u32::MAX);
    match ok(h, c) {
        ResponseBody::Fetched { batches, .. } => batches
            .iter()
            .flat_map(|b| {
                b.iter_with_offsets()
                    .map(|(o, r)| (o.0, String::from_utf8_lossy(&r.value).into_owned()))
                    .collect::<Vec<_>>()
            })
            .collect(),
        other => panic!("expected Fetched, got {other:?}"),
    }
}

pub fn list_offset(h: &mut Harness, topic: &str, partition: u32, spec: OffsetSpec) -> Result<Offset, WireError> {
    let c =
        h.request(CLIENT, 1, RequestBody::ListOffsets { topic: topic.into(), partition: PartitionId(partition), spec });
    match response(h, c).body {
        Ok(ResponseBody::Offset { offset }) => Ok(offset),
        Ok(other) => panic!("expected Offset, got {other:?}"),
        Err(e) => Err(e),
    }
}

/// The response to `c`; panics if there is none yet.
pub fn response(h: &mut Harness, c: CorrelationId) -> Response {
    h.take_response(CLIENT, c).unwrap_or_else(|| panic!("no response to {c:?}"))
}

pub fn ok(h: &mut Harness, c: CorrelationId) -> ResponseBody {
    match response(h, c).body {
        Ok(b) => b,
        Err(e) => panic!("request {c:?} failed: {e}"),
    }
}

/// The error code of the response to `c`, checking that the message is not empty.
pub fn err(h: &mut Harness, c: CorrelationId) -> (ErrorCode, String) {
    match response(h, c).body {
        Ok(b) => panic!("request {c:?} unexpectedly succeeded: {b:?}"),
        Err(e) => {
            assert!(!e.message.is_empty(), "error without a message");
            (e.code, e.message)
        }
    }
}

/// The values node `node` holds in its log of `tp`, in offset order (empty if it
/// holds no replica).
pub fn log_values(h: &Harness, node: u32, tp: &mq_core::TopicPartition) -> Vec<String> {
    h.node(node)
        .log(tp)
        .map(|l| {
            l.batches().flat_map(|b| b.records.iter().map(|r| String::from_utf8_lossy(&r.value).into_owned())).collect()
        })
        .unwrap_or_default()
}

/// The running node that leads `tp` with the highest leader epoch, if any.
pub fn leader_of(h: &Harness, tp: &mq_core::TopicPartition) -> Option<u32> {
    h.running()
        .into_iter()
        .filter(|id| h.node(*id).replica(tp).is_some_and(|r| r.is_leader()))
        .max_by_key(|id| h.node(*id).replica(tp).map(|r| r.leader_epoch))
}
