//! The in-memory view of one partition log: batches at consecutive offsets, the
//! persisted end (LEO) and the high watermark (HW). The durable copy lives in the
//! driver's store; this view is rebuilt from it on recovery (docs/architecture.md).
//!
//! Positions obey `log_start <= high_watermark <= persisted_end <= log_end`: records
//! are appended in memory first (`log_end`), count towards the LEO once their Persist
//! completes, and become visible to consumers once below the HW.
//!
//! Retention removes batches but not what they say about idempotent producers:
//! the log keeps that as its retired producer state (a snapshot at the log start,
//! as Kafka keeps producer state past deleted segments), so that a producer whose
//! batches are all gone is still known (docs/replication.md section 5).

use crate::ids::{LeaderEpoch, Offset, TopicPartition};
use crate::replication::producers::ProducerTable;
use crate::wire::RecordBatch;
use std::collections::VecDeque;

/// One partition's log as its replica holds it.
#[derive(Clone, Debug)]
pub struct PartitionLog {
    tp: TopicPartition,
    log_start: Offset,
    batches: VecDeque<RecordBatch>,
    log_end: Offset,
    persisted_end: Offset,
    high_watermark: Offset,
    size_bytes: u64,
    /// Producer state implied by the batches below `log_start` that were removed.
    retired: ProducerTable,
}

impl PartitionLog {
    /// An empty log starting at offset 0.
    pub fn new(tp: TopicPartition) -> Self {
        PartitionLog {
            tp,
            log_start: Offset(0),
            batches: VecDeque::new(),
            log_end: Offset(0),
            persisted_end: Offset(0),
            high_watermark: Offset(0),
            size_bytes: 0,
            retired: ProducerTable::default(),
        }
    }

    /// A log rebuilt from durable batches; everything in it counts as persisted.
    pub fn recovered(tp: TopicPartition, log_start: Offset, batches: Vec<RecordBatch>) -> Self {
        PartitionLog::recovered_with_producers(tp, log_start, batches, ProducerTable::default())
    }

    /// [`PartitionLog::recovered`] with the retired producer state the store kept
    /// of the batches retention removed; batches below `log_start` still in the
    /// store are folded into it.
    pub fn recovered_with_producers(
        tp: TopicPartition,
        log_start: Offset,
        batches: Vec<RecordBatch>,
        retired: ProducerTable,
    ) -> Self {
        let mut log = PartitionLog::new(tp);
        log.retired = retired;
        log.log_start = log_start;
        log.log_end = log_start;
        for b in batches {
            if b.end_offset() <= log_start || b.is_empty() {
                log.retired.retire(&b);
                continue;
            }
            log.log_end = b.end_offset();
            log.size_bytes += b.size_bytes() as u64;
            log.batches.push_back(b);
        }
        if let Some(first) = log.batches.front() {
            log.log_start = log.log_start.max(first.base_offset);
        }
        log.persisted_end = log.log_end;
        // The HW is not stored: a restarted replica knows only that nothing below its
        // log start is uncommitted; its leader (or its own leadership) moves it on.
        log.high_watermark = log.log_start;
        log
    }

    /// Producer state implied by the batches retention removed.
    pub fn retired_producers(&self) -> &ProducerTable {
        &self.retired
    }

    /// The partition this log belongs to.
    pub fn tp(&self) -> &TopicPartition {
        &self.tp
    }
    /// The first offset kept.
    pub fn log_start(&self) -> Offset {
        self.log_start
    }
    /// The offset after the last appended record (persisted or not).
    pub fn log_end(&self) -> Offset {
        self.log_end
    }
    /// The offset after the last persisted record: the replica's LEO.
    pub fn persisted_end(&self) -> Offset {
        self.persisted_end
    }
    /// Records below this are committed.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }
    /// Bytes held (as counted by `RecordBatch::size_bytes`).
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    /// The batches held, oldest first.
    pub fn batches(&self) -> impl DoubleEndedIterator<Item = &RecordBatch> {
        self.batches.iter()
    }

    /// The batches holding offsets at or above `offset`, oldest first (the first
    /// one may start below `offset`).
    pub fn batches_from(&self, offset: Offset) -> impl Iterator<Item = &RecordBatch> {
        let i = self.batches.partition_point(|b| b.end_offset() <= offset);
        self.batches.range(i..)
    }

    /// Assigns offsets, epoch and append time to `batch` and appends it in memory.
    /// Returns the stamped batch (what must be persisted).
    pub fn append(&mut self, mut batch: RecordBatch, epoch: LeaderEpoch, append_time_ms: u64) -> RecordBatch {
        batch.base_offset = self.log_end;
        batch.leader_epoch = epoch;
        // Append times never go backwards within a log, so lookup by time can
        // binary-search even when a driver's clock steps back.
        let last_time = self.batches.back().map_or(0, |b| b.append_time_ms);
        batch.append_time_ms = append_time_ms.max(last_time);
        self.log_end = batch.end_offset();
        self.size_bytes += batch.size_bytes() as u64;
        self.batches.push_back(batch.clone());
        batch
    }

    /// Appends a batch a follower fetched, keeping the leader's offsets and epoch.
    /// A batch overlapping the log end is trimmed; one past it (a gap) is refused.
    pub fn append_replicated(&mut self, batch: &RecordBatch) -> Option<RecordBatch> {
        if batch.end_offset() <= self.log_end || batch.is_empty() {
            return None;
        }
        if batch.base_offset > self.log_end {
            if !self.batches.is_empty() || batch.base_offset < self.log_start {
                return None;
            }
            // An empty follower starts where the leader's log starts.
            self.log_start = batch.base_offset;
            self.persisted_end = batch.base_offset;
            self.high_watermark = self.high_watermark.max(batch.base_offset);
        }
        let batch = if batch.base_offset < self.log_end { batch.slice_from(self.log_end) } else { batch.clone() };
        self.log_end = batch.end_offset();
        self.size_bytes += batch.size_bytes() as u64;
        self.batches.push_back(batch.clone());
        Some(batch)
    }

    /// Removes every record at or above `end` (divergence truncation). The HW follows
    /// down only if it was above `end`, which happens only after an unclean
    /// election. Returns true if anything was removed.
    pub fn truncate_to(&mut self, end: Offset) -> bool {
        let end = end.max(self.log_start);
        if end >= self.log_end {
            return false;
        }
        while let Some(b) = self.batches.back() {
            if b.base_offset >= end {
                self.size_bytes -= b.size_bytes() as u64;
                self.batches.pop_back();
            } else if b.end_offset() > end {
                let head = b.slice_until(end);
                self.size_bytes -= b.size_bytes() as u64;
                self.size_bytes += head.size_bytes() as u64;
                self.batches.pop_back();
                self.batches.push_back(head);
                break;
            } else {
                break;
            }
        }
        self.log_end = end;
        self.persisted_end = self.persisted_end.min(end);
        self.high_watermark = self.high_watermark.min(end);
        true
    }

    /// Empties the log and restarts it at `start` (a follower far behind a leader
    /// whose retention removed what it needs, or one whose leader keeps no epoch
    /// to check its log against). The retired producer state stays:
    /// it still describes committed batches, only less recent ones than the
    /// leader's.
    pub fn reset_to(&mut self, start: Offset) {
        self.batches.clear();
        self.size_bytes = 0;
        self.log_start = start;
        self.log_end = start;
        self.persisted_end = start;
        self.high_watermark = start;
    }

    /// After [`PartitionLog::reset_to`] at a leader's log start: takes the
    /// leader's producer state of its log below that start (it describes a
    /// longer committed prefix than this log's own).
    pub fn adopt_retired_producers(&mut self, retired: ProducerTable) {
        self.retired = retired;
    }

    /// Sets a follower's HW from its leader's: `min(leader_hw, LEO)`, never backwards.
    pub fn follow_high_watermark(&mut self, leader_hw: Offset) -> bool {
        self.advance_high_watermark(leader_hw)
    }

    /// The leader epoch of the last record, if any.
    pub fn last_epoch(&self) -> Option<LeaderEpoch> {
        self.batches.back().map(|b| b.leader_epoch)
    }

    /// KIP-279's lookup: the largest epoch `<= epoch` that has records here, and the
    /// offset where it ends (the start of the next epoch, or the log end). `None`
    /// when every record is from a later epoch (or the log is empty).
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        // Epochs never decrease along a log, so binary search by epoch.
        let i = self.batches.partition_point(|b| b.leader_epoch <= epoch);
        if i == 0 {
            return None;
        }
        let found = self.batches[i - 1].leader_epoch;
        let end = self.batches.get(i).map_or(self.log_end, |b| b.base_offset);
        Some((found, end))
    }

    /// Records that everything below `end` is durable.
    pub fn mark_persisted(&mut self, end: Offset) {
        debug_assert!(end <= self.log_end, "{}: persisted {end} beyond log end {}", self.tp, self.log_end);
        self.persisted_end = self.persisted_end.max(end.min(self.log_end));
    }

    /// Moves the HW forward to `hw` (never back, never past the LEO). Returns true if
    /// it moved.
    pub fn advance_high_watermark(&mut self, hw: Offset) -> bool {
        let hw = hw.min(self.persisted_end);
        if hw > self.high_watermark {
            self.high_watermark = hw;
            true
        } else {
            false
        }
    }

    /// Committed batches from `offset`, trimmed to start at it, until about
    /// `max_bytes` (at least one batch when any is available).
    pub fn read_committed(&self, offset: Offset, max_bytes: usize) -> Vec<RecordBatch> {
        if offset >= self.high_watermark || offset < self.log_start {
            return Vec::new();
        }
        self.read_range(offset, self.high_watermark, max_bytes)
    }

    /// Batches from `from` up to `upper`, trimmed to both, about `max_bytes` (at least
    /// one batch when any is available). Consumers read up to the HW; followers up to
    /// the leader's persisted end.
    pub fn read_range(&self, from: Offset, upper: Offset, max_bytes: usize) -> Vec<RecordBatch> {
        self.read_filtered(from, upper, max_bytes, false)
    }

    /// Like [`PartitionLog::read_committed`] without `Control` batches (group
    /// cursors): what clients' plain fetches get. Control batches count neither
    /// towards `max_bytes` nor as the one batch always returned, so a reader
    /// positioned on one still gets the data after it.
    pub fn read_committed_data(&self, offset: Offset, max_bytes: usize) -> Vec<RecordBatch> {
        if offset >= self.high_watermark || offset < self.log_start {
            return Vec::new();
        }
        self.read_filtered(offset, self.high_watermark, max_bytes, true)
    }

    fn read_filtered(&self, from: Offset, upper: Offset, max_bytes: usize, data_only: bool) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for b in self.batches_from(from) {
            if b.base_offset >= upper {
                break;
            }
            if data_only && b.kind != crate::wire::BatchKind::Data {
                continue;
            }
            let mut view = if b.base_offset < from { b.slice_from(from) } else { b.clone() };
            if view.end_offset() > upper {
                view = view.slice_until(upper);
            }
            let size = view.size_bytes();
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push(view);
        }
        out
    }

    /// The first committed offset whose batch was appended at or after `time_ms`, or
    /// the HW if none.
    pub fn offset_for_time(&self, time_ms: u64) -> Offset {
        let i = self.batches.partition_point(|b| b.append_time_ms < time_ms);
        match self.batches.get(i) {
            Some(b) if b.base_offset < self.high_watermark => b.base_offset.max(self.log_start),
            _ => self.high_watermark,
        }
    }

    /// Where retention would move the log start: drops the oldest whole batches
    /// that are committed and either older than `min_time_ms` or beyond
    /// `max_bytes`. `None` when nothing would be dropped.
    pub fn retention_point(&self, min_time_ms: Option<u64>, max_bytes: Option<u64>) -> Option<Offset> {
        let mut size = self.size_bytes;
        let mut new_start = None;
        for b in &self.batches {
            if b.end_offset() > self.high_watermark {
                break;
            }
            let too_old = min_time_ms.is_some_and(|t| b.append_time_ms < t);
            let too_big = max_bytes.is_some_and(|m| size > m);
            if !(too_old || too_big) {
                break;
            }
            size -= b.size_bytes() as u64;
            new_start = Some(b.end_offset());
        }
        new_start
    }

    /// Drops whole batches ending at or below `log_start`.
    pub fn advance_log_start(&mut self, log_start: Offset) {
        let log_start = log_start.min(self.high_watermark);
        while let Some(b) = self.batches.front() {
            if b.end_offset() > log_start {
                break;
            }
            self.size_bytes -= b.size_bytes() as u64;
            self.retired.retire(b);
            self.batches.pop_front();
        }
        self.log_start = self.log_start.max(log_start);
    }

    /// Panics if the log's positions are out of order (constant time; the node runs
    /// it after every input in debug builds, and the full check less often).
    pub fn check_positions(&self) {
        assert!(self.log_start <= self.high_watermark, "{}: log start above HW", self.tp);
        assert!(self.high_watermark <= self.persisted_end, "{}: HW above LEO", self.tp);
        assert!(self.persisted_end <= self.log_end, "{}: LEO above log end", self.tp);
        if let Some(last) = self.batches.back() {
            assert_eq!(last.end_offset(), self.log_end, "{}: last batch does not end at the log end", self.tp);
        }
    }

    /// Batches held (what a full invariant check walks).
    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }

    /// Panics if the log's positions or batches are inconsistent.
    pub fn check_invariants(&self) {
        self.check_positions();
        let mut expect = self.batches.front().map(|b| b.base_offset);
        let mut size = 0u64;
        for b in &self.batches {
            assert_eq!(Some(b.base_offset), expect, "{}: batches not contiguous", self.tp);
            expect = Some(b.end_offset());
            size += b.size_bytes() as u64;
        }
        if let Some(end) = expect {
            assert_eq!(end, self.log_end, "{}: last batch does not end at the log end", self.tp);
        }
        for (a, b) in self.batches.iter().zip(self.batches.iter().skip(1)) {
            assert!(a.leader_epoch <= b.leader_epoch, "{}: leader epochs decrease along the log", self.tp);
        }
        assert_eq!(size, self.size_bytes, "{}: size accounting drifted", self.tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Record;

    fn batch(n: usize, tag: &str) -> RecordBatch {
        RecordBatch::new((0..n).map(|i| Record::from_value(format!("{tag}{i}"))).collect())
    }

    fn committed_log(batches: &[(usize, u64)]) -> PartitionLog {
        let mut log = PartitionLog::new(TopicPartition::new("t", 0));
        for (i, (n, t)) in batches.iter().enumerate() {
            log.append(batch(*n, &format!("b{i}-")), LeaderEpoch(0), *t);
        }
        log.mark_persisted(log.log_end());
        log.advance_high_watermark(log.log_end());
        log.check_invariants();
        log
    }

    #[test]
    fn append_assigns_consecutive_offsets() {
        let mut log = PartitionLog::new(TopicPartition::new("t", 0));
        let a = log.append(batch(3, "a"), LeaderEpoch(2), 10);
        let b = log.append(batch(2, "b"), LeaderEpoch(2), 11);
        assert_eq!((a.base_offset, b.base_offset, log.log_end()), (Offset(0), Offset(3), Offset(5)));
        assert_eq!(b.leader_epoch, LeaderEpoch(2));
    }

    #[test]
    fn high_watermark_never_passes_the_persisted_end_nor_goes_back() {
        let mut log = PartitionLog::new(TopicPartition::new("t", 0));
        log.append(batch(5, "a"), LeaderEpoch(0), 0);
        assert!(!log.advance_high_watermark(Offset(5)), "nothing persisted yet");
        log.mark_persisted(Offset(5));
        assert!(log.advance_high_watermark(Offset(5)));
        assert!(!log.advance_high_watermark(Offset(2)));
        assert_eq!(log.high_watermark(), Offset(5));
    }

    #[test]
    fn reads_stop_at_the_high_watermark() {
        let mut log = committed_log(&[(2, 0)]);
        log.append(batch(2, "uncommitted"), LeaderEpoch(0), 0);
        let read = log.read_committed(Offset(0), usize::MAX);
        assert_eq!(read.iter().map(|b| b.len()).sum::<u64>(), 2);
        assert!(log.read_committed(Offset(2), usize::MAX).is_empty());
    }

    #[test]
    fn reads_trim_the_first_batch_to_the_requested_offset() {
        let log = committed_log(&[(4, 0)]);
        let read = log.read_committed(Offset(2), usize::MAX);
        assert_eq!(read[0].base_offset, Offset(2));
        assert_eq!(read[0].records[0].value, bytes::Bytes::from("b0-2"));
    }

    #[test]
    fn max_bytes_limits_reads_but_one_batch_always_comes_back() {
        let log = committed_log(&[(10, 0), (10, 0), (10, 0)]);
        assert_eq!(log.read_committed(Offset(0), 1).len(), 1);
        let one = log.batches().next().unwrap().size_bytes();
        assert_eq!(log.read_committed(Offset(0), one * 2).len(), 2);
    }

    #[test]
    fn lookup_by_time_finds_the_first_batch_at_or_after() {
        let log = committed_log(&[(1, 100), (1, 200), (1, 300)]);
        assert_eq!(log.offset_for_time(0), Offset(0));
        assert_eq!(log.offset_for_time(150), Offset(1));
        assert_eq!(log.offset_for_time(300), Offset(2));
        assert_eq!(log.offset_for_time(301), Offset(3), "after the last: the HW");
    }

    #[test]
    fn retention_drops_only_whole_committed_batches() {
        let mut log = committed_log(&[(1, 100), (1, 200), (1, 300)]);
        assert_eq!(log.retention_point(Some(250), None), Some(Offset(2)));
        assert_eq!(log.retention_point(Some(50), None), None);
        let per = log.batches().next().unwrap().size_bytes() as u64;
        assert_eq!(log.retention_point(None, Some(per)), Some(Offset(2)));
        log.advance_log_start(Offset(2));
        assert_eq!((log.log_start(), log.size_bytes()), (Offset(2), per));
        log.check_invariants();
    }
}
