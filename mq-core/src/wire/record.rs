//! Records and batches: the unit a producer sends, a leader appends atomically, a
//! follower copies and a consumer reads.

use crate::ids::{LeaderEpoch, Offset, ProducerEpoch, ProducerId, Sequence};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// An application header on a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: Bytes,
}

/// One message as the application sees it. Its offset is its batch's base offset plus
/// its index in the batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The producer's creation time in milliseconds of the driver's clock (0: unset).
    pub timestamp_ms: u64,
    /// The sharding key; drives key partitioning and key-shared delivery.
    pub key: Option<Bytes>,
    /// The payload.
    pub value: Bytes,
    /// Application headers.
    pub headers: Vec<Header>,
    /// Tags that subscriptions may filter on.
    pub tags: Vec<String>,
}

impl Record {
    /// A record with only a value.
    pub fn from_value(value: impl Into<Bytes>) -> Self {
        Record { value: value.into(), ..Record::default() }
    }

    /// A record with a key and a value.
    pub fn keyed(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Record { key: Some(key.into()), value: value.into(), ..Record::default() }
    }

    /// Bytes this record accounts for in size limits: payloads plus a fixed overhead
    /// per record and per header, close to its encoded size.
    pub fn size_bytes(&self) -> usize {
        RECORD_OVERHEAD_BYTES
            + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.len()
            + self.headers.iter().map(|h| h.key.len() + h.value.len() + 4).sum::<usize>()
            + self.tags.iter().map(|t| t.len() + 2).sum::<usize>()
    }
}

/// Per-record accounting overhead used by [`Record::size_bytes`].
pub const RECORD_OVERHEAD_BYTES: usize = 16;
/// Per-batch accounting overhead used by [`RecordBatch::size_bytes`].
pub const BATCH_OVERHEAD_BYTES: usize = 48;

/// What a batch carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchKind {
    /// Application records.
    #[default]
    Data,
    /// Control records written by the broker (group cursors); consumers never see
    /// them.
    Control,
}

/// The idempotent-producer stamp of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStamp {
    /// The producer id allocated by the controller.
    pub producer_id: ProducerId,
    /// The producer epoch.
    pub producer_epoch: ProducerEpoch,
    /// Sequence of the first record; record `i` has `base_sequence + i`.
    pub base_sequence: Sequence,
}

/// Records appended atomically. Producers send batches with `base_offset` and
/// `leader_epoch` unset (zero); the leader assigns both on append.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBatch {
    /// Offset of the first record.
    pub base_offset: Offset,
    /// The leader epoch in which the leader appended this batch.
    pub leader_epoch: LeaderEpoch,
    /// The leader's clock (milliseconds) when it appended the batch; retention by
    /// time and lookup by timestamp use it.
    pub append_time_ms: u64,
    /// Data or control.
    pub kind: BatchKind,
    /// Set by idempotent producers.
    pub producer: Option<ProducerStamp>,
    /// The records, at consecutive offsets.
    pub records: Vec<Record>,
}

impl RecordBatch {
    /// A data batch of `records` with no producer stamp.
    pub fn new(records: Vec<Record>) -> Self {
        RecordBatch { records, ..RecordBatch::default() }
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }

    /// True when the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The offset after the last record.
    pub fn end_offset(&self) -> Offset {
        self.base_offset.plus(self.len())
    }

    /// The offset of the last record (`base_offset` for an empty batch).
    pub fn last_offset(&self) -> Offset {
        Offset(self.end_offset().0.saturating_sub(1).max(self.base_offset.0))
    }

    /// Bytes this batch accounts for in size limits.
    pub fn size_bytes(&self) -> usize {
        BATCH_OVERHEAD_BYTES + self.records.iter().map(Record::size_bytes).sum::<usize>()
    }

    /// The records with their offsets.
    pub fn iter_with_offsets(&self) -> impl Iterator<Item = (Offset, &Record)> {
        let base = self.base_offset;
        self.records.iter().enumerate().map(move |(i, r)| (base.plus(i as u64), r))
    }

    /// The part of this batch from `offset` on (a view; payloads are shared).
    pub fn slice_from(&self, offset: Offset) -> RecordBatch {
        let skip = offset.distance_from(self.base_offset).min(self.len()) as usize;
        let mut producer = self.producer;
        if let Some(p) = producer.as_mut() {
            p.base_sequence = p.base_sequence.plus(skip as u32);
        }
        RecordBatch {
            base_offset: self.base_offset.plus(skip as u64),
            leader_epoch: self.leader_epoch,
            append_time_ms: self.append_time_ms,
            kind: self.kind,
            producer,
            records: self.records[skip..].to_vec(),
        }
    }

    /// The part of this batch below `end` (a view; payloads are shared).
    pub fn slice_until(&self, end: Offset) -> RecordBatch {
        let keep = end.distance_from(self.base_offset).min(self.len()) as usize;
        RecordBatch { records: self.records[..keep].to_vec(), ..self.clone_header() }
    }

    fn clone_header(&self) -> RecordBatch {
        RecordBatch {
            base_offset: self.base_offset,
            leader_epoch: self.leader_epoch,
            append_time_ms: self.append_time_ms,
            kind: self.kind,
            producer: self.producer,
            records: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: u64, n: usize) -> RecordBatch {
        let records = (0..n).map(|i| Record::from_value(format!("v{i}"))).collect();
        RecordBatch { base_offset: Offset(base), ..RecordBatch::new(records) }
    }

    #[test]
    fn offsets_of_a_batch_are_consecutive_from_its_base() {
        let b = batch(10, 3);
        let offs: Vec<u64> = b.iter_with_offsets().map(|(o, _)| o.0).collect();
        assert_eq!(offs, vec![10, 11, 12]);
        assert_eq!(b.end_offset(), Offset(13));
        assert_eq!(b.last_offset(), Offset(12));
    }

    #[test]
    fn slices_keep_offsets_and_sequences_aligned() {
        let mut b = batch(10, 4);
        b.producer = Some(ProducerStamp {
            producer_id: ProducerId(1),
            producer_epoch: ProducerEpoch(0),
            base_sequence: Sequence(100),
        });
        let tail = b.slice_from(Offset(12));
        assert_eq!(tail.base_offset, Offset(12));
        assert_eq!(tail.records[0].value, Bytes::from("v2"));
        assert_eq!(tail.producer.unwrap().base_sequence, Sequence(102));
        let head = b.slice_until(Offset(11));
        assert_eq!(head.len(), 1);
        assert_eq!(head.end_offset(), Offset(11));
        // Out-of-range slices are empty, not panics.
        assert!(b.slice_from(Offset(99)).is_empty());
        assert_eq!(b.slice_until(Offset(0)).len(), 0);
    }
}
