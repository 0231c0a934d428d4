//! Idempotent-producer state of one partition (DESIGN.md section 5): for each
//! producer id, its epoch and its last few batches' sequence ranges and offsets.
//! The leader checks every stamped batch against it: a retry of a batch it still
//! remembers is a duplicate and gets the original offset; a batch that skips
//! sequence numbers is refused (`OutOfOrderSequence`); a batch from an older epoch of
//! the producer id is fenced. The table is rebuilt from the log whenever a replica
//! becomes leader, so it survives failover: it is derived from records that are
//! replicated like everything else.
//!
//! Retention does not make a producer unknown: the log keeps the state its removed
//! batches implied (`PartitionLog::retired_producers`, durable with the log; as
//! Kafka keeps producer state past the segments since KIP-360), and the rebuild
//! starts from it. A producer id the table does not know has appended nothing
//! here, or was evicted past [`MAX_RETIRED_PRODUCERS`]: its first batch must start
//! at sequence 0, whatever the log start. Anything else is refused as
//! `UnknownProducer`: either its batch 0 is still on its way (the producer waits
//! for it) or the producer's history is gone (it bumps its epoch and starts again
//! at 0; docs/replication.md section 5).

use crate::ids::{Offset, ProducerEpoch, ProducerId, Sequence};
use crate::log::PartitionLog;
use crate::wire::{ProducerStamp, RecordBatch};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Batches remembered per producer (Kafka keeps five).
pub const REMEMBERED_BATCHES: usize = 5;

/// Producers whose batches retention removed that a log keeps state for; past
/// it, the one that appended longest ago is forgotten (Kafka expires producer
/// ids after `producer.id.expiration.ms` instead).
pub const MAX_RETIRED_PRODUCERS: usize = 1024;

/// A batch the table remembers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    first_seq: Sequence,
    last_seq: Sequence,
    base_offset: Offset,
    end: Offset,
    append_time_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: ProducerEpoch,
    batches: VecDeque<Remembered>,
}

/// What the table says about a stamped batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Accept,
    /// A retry of a batch already in the log at `base_offset..end`.
    Duplicate {
        /// The original first offset.
        base_offset: Offset,
        /// The original end offset.
        end: Offset,
        /// The original append time (the batch may be gone from the log).
        append_time_ms: u64,
    },
    /// The producer id has moved to a newer epoch.
    Fenced {
        /// The current epoch.
        current: ProducerEpoch,
    },
    /// The batch does not start at the next sequence.
    OutOfOrder {
        /// The sequence expected.
        expected: Sequence,
    },
    /// The producer id has appended nothing here (or its state was evicted) and
    /// the batch does not start at sequence 0.
    UnknownProducer,
}

/// Per-partition producer state (it travels to a follower that restarts at
/// its leader's log start: `ReplicaData::producers`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerTable {
    entries: BTreeMap<ProducerId, ProducerEntry>,
}

impl ProducerTable {
    /// The table the log implies: the state its removed batches left, then the
    /// batches it holds.
    pub fn rebuild(log: &PartitionLog) -> Self {
        let mut t = log.retired_producers().clone();
        for b in log.batches() {
            t.record(b);
        }
        t
    }

    /// Folds in a batch that retention is removing from the log, keeping at most
    /// [`MAX_RETIRED_PRODUCERS`] producers.
    pub fn retire(&mut self, batch: &RecordBatch) {
        self.record(batch);
        while self.entries.len() > MAX_RETIRED_PRODUCERS {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.batches.back().map_or(Offset(0), |r| r.end))
                .map(|(id, _)| *id)
                .expect("the table is not empty");
            self.entries.remove(&oldest);
        }
    }

    /// Producers known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no producer is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a stamped batch of `count` records. A producer id the table does not
    /// know starts at sequence 0, whatever the log start (see the module docs).
    /// Within a known history every retry of a remembered batch is recognised.
    pub fn check(&self, stamp: &ProducerStamp, count: u64) -> SequenceCheck {
        let Some(entry) = self.entries.get(&stamp.producer_id) else {
            if stamp.base_sequence != Sequence(0) {
                return SequenceCheck::UnknownProducer;
            }
            return SequenceCheck::Accept;
        };
        if stamp.producer_epoch < entry.epoch {
            return SequenceCheck::Fenced { current: entry.epoch };
        }
        if stamp.producer_epoch > entry.epoch {
            // A new epoch restarts its sequences at 0; a later batch of it that
            // arrives first must wait for that one.
            if stamp.base_sequence != Sequence(0) {
                return SequenceCheck::OutOfOrder { expected: Sequence(0) };
            }
            return SequenceCheck::Accept;
        }
        let last_seq = stamp.base_sequence.plus(count.saturating_sub(1) as u32);
        if let Some(r) = entry.batches.iter().find(|r| r.first_seq == stamp.base_sequence && r.last_seq == last_seq) {
            return SequenceCheck::Duplicate {
                base_offset: r.base_offset,
                end: r.end,
                append_time_ms: r.append_time_ms,
            };
        }
        let expected = entry.batches.back().map_or(Sequence(0), |r| r.last_seq.plus(1));
        if stamp.base_sequence != expected {
            return SequenceCheck::OutOfOrder { expected };
        }
        SequenceCheck::Accept
    }

    /// Remembers an appended (stamped, offset-assigned) batch.
    pub fn record(&mut self, batch: &RecordBatch) {
        let Some(stamp) = batch.producer else { return };
        if batch.is_empty() {
            return;
        }
        let entry = self.entries.entry(stamp.producer_id).or_default();
        if stamp.producer_epoch > entry.epoch {
            entry.epoch = stamp.producer_epoch;
            entry.batches.clear();
        } else if stamp.producer_epoch < entry.epoch {
            return;
        }
        entry.batches.push_back(Remembered {
            first_seq: stamp.base_sequence,
            last_seq: stamp.base_sequence.plus(batch.len() as u32 - 1),
            base_offset: batch.base_offset,
            end: batch.end_offset(),
            append_time_ms: batch.append_time_ms,
        });
        while entry.batches.len() > REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LeaderEpoch, TopicPartition};
    use crate::wire::Record;

    fn stamp(pid: u64, epoch: u16, seq: u32) -> ProducerStamp {
        ProducerStamp {
            producer_id: ProducerId(pid),
            producer_epoch: ProducerEpoch(epoch),
            base_sequence: Sequence(seq),
        }
    }

    fn batch(s: ProducerStamp, n: usize) -> RecordBatch {
        RecordBatch { producer: Some(s), ..RecordBatch::new((0..n).map(|_| Record::from_value("v")).collect()) }
    }

    fn log_with(batches: &[RecordBatch]) -> PartitionLog {
        let mut log = PartitionLog::new(TopicPartition::new("t", 0));
        for b in batches {
            log.append(b.clone(), LeaderEpoch(1), 0);
        }
        log
    }

    #[test]
    fn a_retry_of_a_remembered_batch_is_a_duplicate_with_its_original_offsets() {
        let log = log_with(&[batch(stamp(7, 0, 0), 3), batch(stamp(7, 0, 3), 2)]);
        let t = ProducerTable::rebuild(&log);
        assert_eq!(
            t.check(&stamp(7, 0, 3), 2),
            SequenceCheck::Duplicate { base_offset: Offset(3), end: Offset(5), append_time_ms: 0 }
        );
        assert_eq!(t.check(&stamp(7, 0, 5), 1), SequenceCheck::Accept);
    }

    #[test]
    fn a_gap_or_a_stale_sequence_is_out_of_order() {
        let t = ProducerTable::rebuild(&log_with(&[batch(stamp(7, 0, 0), 3)]));
        assert_eq!(t.check(&stamp(7, 0, 4), 1), SequenceCheck::OutOfOrder { expected: Sequence(3) });
        assert_eq!(t.check(&stamp(7, 0, 1), 1), SequenceCheck::OutOfOrder { expected: Sequence(3) });
    }

    #[test]
    fn an_older_epoch_is_fenced_and_a_newer_one_restarts() {
        let t = ProducerTable::rebuild(&log_with(&[batch(stamp(7, 2, 0), 1)]));
        assert_eq!(t.check(&stamp(7, 1, 1), 1), SequenceCheck::Fenced { current: ProducerEpoch(2) });
        assert_eq!(t.check(&stamp(7, 3, 0), 1), SequenceCheck::Accept);
        // A newer epoch starts at sequence 0: its later batches wait for that one.
        assert_eq!(t.check(&stamp(7, 3, 5), 1), SequenceCheck::OutOfOrder { expected: Sequence(0) });
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let batches: Vec<RecordBatch> = (0..7).map(|i| batch(stamp(1, 0, i), 1)).collect();
        let t = ProducerTable::rebuild(&log_with(&batches));
        assert!(matches!(t.check(&stamp(1, 0, 2), 1), SequenceCheck::Duplicate { .. }));
        assert!(matches!(t.check(&stamp(1, 0, 1), 1), SequenceCheck::OutOfOrder { .. }));
    }

    #[test]
    fn an_unknown_producer_starts_at_sequence_0_even_after_retention_moved_the_log_start() {
        let mut log = log_with(&[batch(stamp(1, 0, 0), 2), batch(stamp(1, 0, 2), 2)]);
        log.mark_persisted(Offset(4));
        log.advance_high_watermark(Offset(4));
        log.advance_log_start(Offset(2));
        assert_eq!(log.log_start(), Offset(2));
        let t = ProducerTable::rebuild(&log);
        // A new producer's later batch that overtook its first one must wait for it.
        assert_eq!(t.check(&stamp(2, 0, 4), 1), SequenceCheck::UnknownProducer);
        assert_eq!(t.check(&stamp(2, 0, 0), 1), SequenceCheck::Accept);
        // A producer whose only batches were removed is still known.
        assert_eq!(t.check(&stamp(1, 0, 4), 1), SequenceCheck::Accept);
    }

    #[test]
    fn a_retry_of_a_batch_retention_removed_is_still_a_duplicate() {
        let mut log = log_with(&[batch(stamp(1, 0, 0), 2), batch(stamp(1, 0, 2), 2), batch(stamp(3, 0, 0), 1)]);
        log.mark_persisted(Offset(5));
        log.advance_high_watermark(Offset(5));
        log.advance_log_start(Offset(4));
        assert_eq!(log.batch_count(), 1);
        let t = ProducerTable::rebuild(&log);
        assert_eq!(
            t.check(&stamp(1, 0, 0), 2),
            SequenceCheck::Duplicate { base_offset: Offset(0), end: Offset(2), append_time_ms: 0 }
        );
        // Sequence 0 of a producer whose history is gone is a retry, not a new
        // producer: appending it again would duplicate it.
        assert!(matches!(t.check(&stamp(1, 0, 2), 2), SequenceCheck::Duplicate { .. }));
        assert_eq!(t.check(&stamp(1, 0, 5), 1), SequenceCheck::OutOfOrder { expected: Sequence(4) });
    }

    #[test]
    fn retired_producers_are_bounded_and_the_longest_idle_goes_first() {
        let mut t = ProducerTable::default();
        for pid in 0..=MAX_RETIRED_PRODUCERS as u64 {
            let mut b = batch(stamp(pid, 0, 0), 1);
            b.base_offset = Offset(pid);
            t.retire(&b);
        }
        assert_eq!(t.len(), MAX_RETIRED_PRODUCERS);
        assert_eq!(t.check(&stamp(0, 0, 1), 1), SequenceCheck::UnknownProducer);
        assert_eq!(t.check(&stamp(1, 0, 1), 1), SequenceCheck::Accept);
    }
}
