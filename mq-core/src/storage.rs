//! Durable state as data. Machines never write: they emit [`Write`]s in
//! `Output::Persist`, and a driver applies them to its store. [`DurableState`] is the
//! reference store (kept in memory by the harness and the simulator's disk model);
//! mq-net's file store holds the same state in files and loads it back as a
//! `DurableState` at start. `Node::recover` builds a node from it.
//!
//! Partition logs are kept in their stored byte form (length, CRC32C, payload per
//! batch; see [`crate::wire::codec`]) so that a torn write is real bytes that
//! recovery must detect, exactly as on a disk.

use crate::controller::raft::{RaftDurable, RaftWrite};
use crate::ids::{Offset, TopicPartition};
use crate::replication::producers::ProducerTable;
use crate::wire::codec::{decode_stored_batches, encode_stored_batch, StoredTail};
use crate::wire::RecordBatch;
use std::collections::BTreeMap;

/// One durable change, applied in order.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Write {
    /// A change to the metadata quorum's Raft state (term, vote, log).
    Raft(RaftWrite),
    /// Drop all partition logs of a deleted topic.
    DeleteTopic {
        /// Topic name.
        topic: String,
    },
    /// Append batches to a partition log.
    Append {
        /// The log.
        tp: TopicPartition,
        /// Batches with offsets already assigned, contiguous with the log end.
        batches: Vec<RecordBatch>,
    },
    /// Remove every record at or above `end` (divergence truncation).
    Truncate {
        /// The log.
        tp: TopicPartition,
        /// The new log end.
        end: Offset,
    },
    /// Empty a partition log and restart it at `start` (a follower far behind).
    ResetLog {
        /// The log.
        tp: TopicPartition,
        /// The new first offset.
        start: Offset,
        /// The leader's producer state of its log below `start`, replacing the
        /// log's retired producer state (`None`: keep it).
        producers: Option<ProducerTable>,
    },
    /// Drop whole batches that end at or below `log_start` (retention).
    AdvanceLogStart {
        /// The log.
        tp: TopicPartition,
        /// The new first offset.
        log_start: Offset,
    },
}

/// Where a stored batch sits in a [`StoredLog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IndexEntry {
    base: Offset,
    end: Offset,
    pos: usize,
}

/// A partition log in stored form plus an in-memory index of batch positions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoredLog {
    log_start: Offset,
    bytes: Vec<u8>,
    index: Vec<IndexEntry>,
    /// Producer state of the batches retention dropped (Kafka's producer snapshot).
    retired: ProducerTable,
}

impl StoredLog {
    /// The stored bytes (what a segment file would hold).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The first offset kept.
    pub fn log_start(&self) -> Offset {
        self.log_start
    }

    /// Producer state implied by the batches retention dropped.
    pub fn retired_producers(&self) -> &ProducerTable {
        &self.retired
    }

    /// The offset after the last stored record.
    pub fn log_end(&self) -> Offset {
        self.index.last().map_or(self.log_start, |e| e.end)
    }

    /// Appends `batch` in stored form.
    pub fn append(&mut self, batch: &RecordBatch) {
        let pos = self.bytes.len();
        encode_stored_batch(batch, &mut self.bytes);
        if self.index.is_empty() && self.log_start < batch.base_offset {
            // A follower that starts mid-log (later issues) begins at its first batch.
            self.log_start = batch.base_offset;
        }
        self.index.push(IndexEntry { base: batch.base_offset, end: batch.end_offset(), pos });
    }

    /// Appends raw bytes that are not a whole batch: how a disk model leaves a torn
    /// write. [`StoredLog::repair`] must find and drop them.
    pub fn append_torn_bytes(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Flips one bit of the stored bytes at `pos` (modulo the length): read
    /// corruption for tests of recovery. No-op on an empty log.
    pub fn corrupt_byte(&mut self, pos: usize) {
        if !self.bytes.is_empty() {
            let i = pos % self.bytes.len();
            self.bytes[i] ^= 0x01;
        }
    }

    /// Removes every record at or above `end`.
    pub fn truncate(&mut self, end: Offset) {
        let Some(first_cut) = self.index.iter().position(|e| e.end > end) else { return };
        let entry = self.index[first_cut];
        // A cut inside a batch keeps the batch's head as a new, shorter batch.
        let head = (entry.base < end).then(|| {
            let next = self.index.get(first_cut + 1).map_or(self.bytes.len(), |e| e.pos);
            decode_stored_batches(&self.bytes[entry.pos..next]).batches.into_iter().next()
        });
        self.bytes.truncate(entry.pos);
        self.index.truncate(first_cut);
        if let Some(Some(b)) = head {
            self.append(&b.slice_until(end));
        }
    }

    /// Drops whole batches that end at or below `log_start`, keeping what they
    /// say about producers, then records the new start.
    pub fn advance_log_start(&mut self, log_start: Offset) {
        let drop = self.index.iter().take_while(|e| e.end <= log_start).count();
        if drop > 0 {
            let cut = self.index.get(drop).map_or(self.bytes.len(), |e| e.pos);
            for b in decode_stored_batches(&self.bytes[..cut]).batches {
                self.retired.retire(&b);
            }
            self.bytes.drain(..cut);
            self.index.drain(..drop);
            for e in &mut self.index {
                e.pos -= cut;
            }
        }
        self.log_start = self.log_start.max(log_start);
    }

    /// Validates every stored batch, drops a torn or corrupt tail and rebuilds the
    /// index; returns what the tail looked like.
    pub fn repair(&mut self) -> StoredTail {
        let read = decode_stored_batches(&self.bytes);
        self.bytes.truncate(read.valid_len);
        self.index = read
            .batches
            .iter()
            .zip(&read.positions)
            .map(|(b, &pos)| IndexEntry { base: b.base_offset, end: b.end_offset(), pos })
            .collect();
        read.tail
    }

    /// Decodes every stored batch (recovery reads the log back this way).
    pub fn read_batches(&self) -> Vec<RecordBatch> {
        decode_stored_batches(&self.bytes).batches
    }
}

/// Everything a node keeps across crashes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DurableState {
    /// The metadata quorum's term, vote and log (voters only).
    pub raft: RaftDurable,
    /// Partition logs.
    pub logs: BTreeMap<TopicPartition, StoredLog>,
}

/// What [`DurableState::repair`] found in one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairReport {
    /// The log.
    pub tp: TopicPartition,
    /// How its tail looked.
    pub tail: StoredTail,
}

impl DurableState {
    /// Applies one write.
    pub fn apply(&mut self, write: &Write) {
        match write {
            Write::Raft(w) => self.raft.apply(w),
            Write::DeleteTopic { topic } => {
                self.logs.retain(|tp, _| &tp.topic != topic);
            }
            Write::Append { tp, batches } => {
                let log = self.logs.entry(tp.clone()).or_default();
                for b in batches {
                    log.append(b);
                }
            }
            Write::Truncate { tp, end } => {
                if let Some(log) = self.logs.get_mut(tp) {
                    log.truncate(*end);
                }
            }
            Write::ResetLog { tp, start, producers } => {
                let log = self.logs.entry(tp.clone()).or_default();
                // The batches go; what retention kept of producers stays, as in
                // memory, unless the leader sent its own.
                let retired = producers.clone().unwrap_or_else(|| std::mem::take(&mut log.retired));
                *log = StoredLog { retired, ..StoredLog::default() };
                log.advance_log_start(*start);
            }
            Write::AdvanceLogStart { tp, log_start } => {
                self.logs.entry(tp.clone()).or_default().advance_log_start(*log_start);
            }
        }
    }

    /// Applies writes in order.
    pub fn apply_all<'a>(&mut self, writes: impl IntoIterator<Item = &'a Write>) {
        for w in writes {
            self.apply(w);
        }
    }

    /// Validates every log and drops torn or corrupt tails, as a driver does at start
    /// before `Node::recover`. Returns one report per log whose tail was not clean.
    pub fn repair(&mut self) -> Vec<RepairReport> {
        let mut reports = Vec::new();
        for (tp, log) in &mut self.logs {
            let tail = log.repair();
            if tail != StoredTail::Clean {
                reports.push(RepairReport { tp: tp.clone(), tail });
            }
        }
        reports
    }
}
