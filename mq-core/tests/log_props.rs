//! Generative tests of the offset and retention logic (docs/architecture.md,
//! "Partition logs"): random sequences of operations run against `PartitionLog` and
//! `StoredLog` and against plain models (vectors of batches of `(offset, value)`),
//! and after every step the two must agree and the invariants must hold.

use bytes::Bytes;
use mq_core::log::PartitionLog;
use mq_core::storage::StoredLog;
use mq_core::wire::codec::{encode_stored_batch, StoredTail};
use mq_core::wire::{Record, RecordBatch};
use mq_core::{LeaderEpoch, Offset, TopicPartition};
use proptest::prelude::*;
use proptest::sample::Index;

/// A position in a range chosen when the op runs: scaled into it, or its last value
/// (boundaries are where offset bugs live, so they get their own weight).
#[derive(Clone, Copy, Debug)]
enum Point {
    Scaled(Index),
    Last,
}

impl Point {
    /// A value in `0..size`.
    fn index(&self, size: usize) -> usize {
        match self {
            Point::Scaled(i) => i.index(size),
            Point::Last => size - 1,
        }
    }
}

fn point() -> impl Strategy<Value = Point> {
    prop_oneof![4 => any::<Index>().prop_map(Point::Scaled), 1 => Just(Point::Last)]
}

/// A batch as the models hold it.
#[derive(Clone, Debug, PartialEq)]
struct ModelBatch {
    base: u64,
    epoch: u32,
    time_ms: u64,
    values: Vec<Bytes>,
}

impl ModelBatch {
    fn end(&self) -> u64 {
        self.base + self.values.len() as u64
    }

    /// The records between `lo` and `hi` as a batch (what a read should return).
    fn window(&self, lo: u64, hi: u64) -> RecordBatch {
        let records =
            self.values[(lo - self.base) as usize..(hi - self.base) as usize].iter().cloned().map(Record::from_value);
        RecordBatch {
            base_offset: Offset(lo),
            leader_epoch: LeaderEpoch(self.epoch),
            append_time_ms: self.time_ms,
            ..RecordBatch::new(records.collect())
        }
    }

    fn whole(&self) -> RecordBatch {
        self.window(self.base, self.end())
    }

    fn size_bytes(&self) -> u64 {
        self.whole().size_bytes() as u64
    }
}

fn values(first: u64, n: usize) -> Vec<Bytes> {
    (0..n as u64).map(|i| Bytes::from(format!("value-{}", first + i))).collect()
}

/// Asserts a log holds exactly the model's batches.
fn assert_same_batches<'a>(
    got: impl Iterator<Item = &'a RecordBatch>,
    want: &[ModelBatch],
) -> Result<(), TestCaseError> {
    let got: Vec<&RecordBatch> = got.collect();
    prop_assert_eq!(got.len(), want.len(), "batch count");
    for (g, w) in got.iter().zip(want) {
        prop_assert_eq!(*g, &w.whole());
    }
    Ok(())
}

// ----- PartitionLog -----

#[derive(Clone, Debug)]
enum LogOp {
    /// Append `records` records with the driver's clock at `time_ms` (which may step
    /// back).
    Append { records: usize, time_ms: u64 },
    /// Mark records below a point in `0..=log_end` persisted.
    Persist { to: Point },
    /// Offer a HW anywhere in `0..=log_end + 2`.
    AdvanceHw { to: Point },
    /// Read from an offset in `0..=log_end + 2`.
    Read { from: Point, max_bytes: Limit },
    /// Run retention and apply it.
    Retain { min_time_ms: Option<u64>, max_bytes: Option<Limit> },
    /// Ask for a log start anywhere in `0..=log_end + 2`.
    AdvanceLogStart { to: Point },
    /// Look up an offset by time.
    OffsetForTime { time_ms: u64 },
}

/// A byte limit: any value, or exactly the size of some of the batches at hand (the
/// boundary between "fits" and "does not fit").
#[derive(Clone, Copy, Debug)]
enum Limit {
    Bytes(usize),
    SizeOf(Point),
}

impl Limit {
    /// The limit, given the sizes of the batches it is meant for, in order.
    fn resolve(&self, sizes: &[usize]) -> usize {
        match self {
            Limit::Bytes(n) => *n,
            Limit::SizeOf(p) => sizes.iter().take(p.index(sizes.len() + 1)).sum(),
        }
    }
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![(0usize..400).prop_map(Limit::Bytes), point().prop_map(Limit::SizeOf)]
}

fn log_op() -> impl Strategy<Value = LogOp> {
    prop_oneof![
        4 => (1usize..=4, 0u64..1_000).prop_map(|(records, time_ms)| LogOp::Append { records, time_ms }),
        2 => point().prop_map(|to| LogOp::Persist { to }),
        2 => point().prop_map(|to| LogOp::AdvanceHw { to }),
        3 => (point(), limit()).prop_map(|(from, max_bytes)| LogOp::Read { from, max_bytes }),
        1 => (prop::option::of(0u64..1_100), prop::option::of(limit()))
            .prop_map(|(min_time_ms, max_bytes)| LogOp::Retain { min_time_ms, max_bytes }),
        1 => point().prop_map(|to| LogOp::AdvanceLogStart { to }),
        2 => (0u64..1_100).prop_map(|time_ms| LogOp::OffsetForTime { time_ms }),
    ]
}

#[derive(Debug, Default)]
struct LogModel {
    /// Batches still held, oldest first.
    batches: Vec<ModelBatch>,
    log_start: u64,
    log_end: u64,
    persisted_end: u64,
    high_watermark: u64,
}

impl LogModel {
    fn advance_log_start(&mut self, requested: u64) -> Result<(), TestCaseError> {
        let to = requested.min(self.high_watermark);
        for b in self.batches.iter().take_while(|b| b.end() <= to) {
            prop_assert!(b.end() <= self.high_watermark, "retention would drop an uncommitted batch");
        }
        self.batches.retain(|b| b.end() > to);
        self.log_start = self.log_start.max(to);
        Ok(())
    }

    /// What `read_committed(from, max_bytes)` must return: committed records from
    /// `from`, the first batch trimmed, whole batches until `max_bytes`, at least one.
    fn read(&self, from: u64, max_bytes: usize) -> Vec<RecordBatch> {
        if from >= self.high_watermark || from < self.log_start {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for b in self.batches.iter().filter(|b| b.end() > from && b.base < self.high_watermark) {
            let view = b.window(b.base.max(from), b.end().min(self.high_watermark));
            let size = view.size_bytes();
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push(view);
        }
        out
    }
}

fn check_read(got: &[RecordBatch], from: u64, max_bytes: usize, model: &LogModel) -> Result<(), TestCaseError> {
    // The spec, stated directly ...
    let offsets: Vec<u64> = got.iter().flat_map(|b| b.iter_with_offsets().map(|(o, _)| o.0)).collect();
    let expected: Vec<u64> = (from..from + offsets.len() as u64).collect();
    prop_assert_eq!(&offsets, &expected, "offsets from the asked one, consecutive");
    prop_assert!(offsets.iter().all(|&o| o < model.high_watermark), "a record at or above the HW was read");
    prop_assert!(got.iter().all(|b| !b.is_empty()), "an empty batch was returned");
    let total: usize = got.iter().map(RecordBatch::size_bytes).sum();
    prop_assert!(got.len() <= 1 || total <= max_bytes, "{} bytes in {} batches > {}", total, got.len(), max_bytes);
    // ... and exactly what the model holds.
    prop_assert_eq!(got, &model.read(from, max_bytes)[..]);
    Ok(())
}

fn check_log(log: &PartitionLog, model: &LogModel) -> Result<(), TestCaseError> {
    log.check_invariants();
    prop_assert_eq!(log.log_start(), Offset(model.log_start));
    prop_assert_eq!(log.log_end(), Offset(model.log_end));
    prop_assert_eq!(log.persisted_end(), Offset(model.persisted_end));
    prop_assert_eq!(log.high_watermark(), Offset(model.high_watermark));
    prop_assert_eq!(log.size_bytes(), model.batches.iter().map(ModelBatch::size_bytes).sum::<u64>());
    assert_same_batches(log.batches(), &model.batches)
}

fn run_log_ops(ops: Vec<LogOp>) -> Result<(), TestCaseError> {
    let mut log = PartitionLog::new(TopicPartition::new("props", 0));
    let mut model = LogModel::default();
    let mut next_value = 0;
    let mut epoch = 0;
    for op in ops {
        let point = |i: &Point, extra: u64| i.index((model.log_end + extra + 1) as usize) as u64;
        match op {
            LogOp::Append { records, time_ms } => {
                epoch += u32::from(time_ms % 7 == 0);
                let vals = values(next_value, records);
                next_value += records as u64;
                let batch = RecordBatch::new(vals.iter().cloned().map(Record::from_value).collect());
                let stamped = log.append(batch, LeaderEpoch(epoch), time_ms);
                // Append times never go back, so lookups by time can binary-search.
                let floor = model.batches.last().map_or(0, |b| b.time_ms);
                let mb = ModelBatch { base: model.log_end, epoch, time_ms: time_ms.max(floor), values: vals };
                prop_assert_eq!(&stamped, &mb.whole(), "the stamped batch");
                model.log_end = mb.end();
                model.batches.push(mb);
            }
            LogOp::Persist { to } => {
                let to = point(&to, 0);
                log.mark_persisted(Offset(to));
                model.persisted_end = model.persisted_end.max(to);
            }
            LogOp::AdvanceHw { to } => {
                let to = point(&to, 2);
                let before = model.high_watermark;
                let moved = log.advance_high_watermark(Offset(to));
                model.high_watermark = before.max(to.min(model.persisted_end));
                prop_assert_eq!(moved, model.high_watermark > before);
            }
            LogOp::Read { from, max_bytes } => {
                let from = point(&from, 2);
                let sizes: Vec<usize> = model.read(from, usize::MAX).iter().map(RecordBatch::size_bytes).collect();
                let max_bytes = max_bytes.resolve(&sizes);
                check_read(&log.read_committed(Offset(from), max_bytes), from, max_bytes, &model)?;
            }
            LogOp::Retain { min_time_ms, max_bytes } => {
                // Limits around the size of the newest batches.
                let sizes: Vec<usize> = model.batches.iter().rev().map(|b| b.size_bytes() as usize).collect();
                let max_bytes = max_bytes.map(|l| l.resolve(&sizes) as u64);
                let got = log.retention_point(min_time_ms, max_bytes);
                // Walk the committed batches oldest first; drop while too old or too big.
                let mut size: u64 = model.batches.iter().map(ModelBatch::size_bytes).sum();
                let mut want = None;
                for b in model.batches.iter().take_while(|b| b.end() <= model.high_watermark) {
                    let too_old = min_time_ms.is_some_and(|t| b.time_ms < t);
                    let too_big = max_bytes.is_some_and(|m| size > m);
                    if !(too_old || too_big) {
                        break;
                    }
                    size -= b.size_bytes();
                    want = Some(Offset(b.end()));
                }
                prop_assert_eq!(got, want);
                if let Some(start) = got {
                    prop_assert!(start.0 > model.log_start && start.0 <= model.high_watermark);
                    prop_assert!(model.batches.iter().any(|b| b.end() == start.0), "retention splits a batch");
                    log.advance_log_start(start);
                    model.advance_log_start(start.0)?;
                }
                // Whatever remains is within the limit, or its oldest batch is not
                // committed yet.
                if let Some(m) = max_bytes {
                    let first_uncommitted = model.batches.first().is_some_and(|b| b.end() > model.high_watermark);
                    prop_assert!(log.size_bytes() <= m || first_uncommitted, "{} bytes kept", log.size_bytes());
                }
            }
            LogOp::AdvanceLogStart { to } => {
                let to = point(&to, 2);
                log.advance_log_start(Offset(to));
                model.advance_log_start(to)?;
            }
            LogOp::OffsetForTime { time_ms } => {
                let got = log.offset_for_time(time_ms).0;
                let hw = model.high_watermark;
                let want = match model.batches.iter().find(|b| b.time_ms >= time_ms) {
                    Some(b) if b.base < hw => b.base.max(model.log_start),
                    _ => hw,
                };
                prop_assert_eq!(got, want, "offset_for_time({})", time_ms);
                // Every committed batch before the answer was appended before the time.
                prop_assert!(model.batches.iter().filter(|b| b.end() <= got).all(|b| b.time_ms < time_ms));
            }
        }
        check_log(&log, &model)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn partition_log_agrees_with_its_model(ops in prop::collection::vec(log_op(), 1..60)) {
        run_log_ops(ops)?;
    }

    /// A log where everything is committed, read from every offset with every limit
    /// class: reads are where consumers see bugs first.
    #[test]
    fn reads_of_a_committed_log_return_exactly_the_asked_range(
        sizes in prop::collection::vec(1usize..=5, 1..8),
        from in point(),
        max_bytes in prop_oneof![Just(Limit::Bytes(0)), limit(), Just(Limit::Bytes(usize::MAX))],
    ) {
        let mut ops: Vec<LogOp> =
            sizes.iter().map(|&records| LogOp::Append { records, time_ms: 0 }).collect();
        let all = Point::Last;
        ops.push(LogOp::Persist { to: all });
        ops.push(LogOp::AdvanceHw { to: all });
        ops.push(LogOp::Read { from, max_bytes });
        run_log_ops(ops)?;
    }
}

// ----- StoredLog -----

#[derive(Clone, Debug)]
enum StoredOp {
    Append {
        records: usize,
    },
    /// Truncate to a point in `0..=log_end + 1`.
    Truncate {
        to: Point,
    },
    /// Advance the start to a point in `0..=log_end + 1`.
    AdvanceLogStart {
        to: Point,
    },
    /// A crash tore the next batch after `keep` of its bytes; then repair.
    Torn {
        keep: Point,
    },
    /// One bit flipped on disk; then repair.
    Corrupt {
        at: usize,
    },
    /// Repair a clean log.
    Repair,
}

fn stored_op() -> impl Strategy<Value = StoredOp> {
    prop_oneof![
        4 => (1usize..=4).prop_map(|records| StoredOp::Append { records }),
        2 => point().prop_map(|to| StoredOp::Truncate { to }),
        2 => point().prop_map(|to| StoredOp::AdvanceLogStart { to }),
        1 => point().prop_map(|keep| StoredOp::Torn { keep }),
        1 => any::<usize>().prop_map(|at| StoredOp::Corrupt { at }),
        1 => Just(StoredOp::Repair),
    ]
}

#[derive(Debug, Default)]
struct StoredModel {
    batches: Vec<ModelBatch>,
    log_start: u64,
}

impl StoredModel {
    fn log_end(&self) -> u64 {
        self.batches.last().map_or(self.log_start, ModelBatch::end)
    }

    /// The stored bytes and where each batch starts.
    fn encode(&self) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for b in &self.batches {
            starts.push(buf.len());
            encode_stored_batch(&b.whole(), &mut buf);
        }
        (buf, starts)
    }

    fn records(&self) -> Vec<(u64, Bytes)> {
        self.batches.iter().flat_map(|b| (b.base..).zip(b.values.iter().cloned())).collect()
    }
}

fn check_stored(log: &StoredLog, model: &StoredModel) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.log_start(), Offset(model.log_start));
    prop_assert_eq!(log.log_end(), Offset(model.log_end()));
    prop_assert_eq!(log.bytes(), &model.encode().0[..], "stored bytes");
    let read = log.read_batches();
    assert_same_batches(read.iter(), &model.batches)?;
    // Recovery builds the in-memory log from exactly this (Node::recover).
    let tp = TopicPartition::new("props", 0);
    let mut recovered = PartitionLog::recovered(tp, log.log_start(), read);
    recovered.advance_high_watermark(recovered.persisted_end());
    recovered.check_invariants();
    prop_assert_eq!(recovered.log_start(), Offset(model.log_start));
    prop_assert_eq!(recovered.log_end(), Offset(model.log_end().max(model.log_start)));
    let visible: Vec<(u64, Bytes)> = recovered
        .read_committed(recovered.log_start(), usize::MAX)
        .iter()
        .flat_map(|b| b.iter_with_offsets().map(|(o, r)| (o.0, r.value.clone())).collect::<Vec<_>>())
        .collect();
    let want: Vec<(u64, Bytes)> = model.records().into_iter().filter(|(o, _)| *o >= model.log_start).collect();
    prop_assert_eq!(visible, want, "records visible after recovery");
    Ok(())
}

fn run_stored_ops(ops: Vec<StoredOp>) -> Result<(), TestCaseError> {
    let mut log = StoredLog::default();
    let mut model = StoredModel::default();
    let mut next_value = 0;
    for (step, op) in ops.into_iter().enumerate() {
        let point = |i: &Point, end: u64| i.index(end as usize + 2) as u64;
        match op {
            StoredOp::Append { records } => {
                let b = ModelBatch {
                    base: model.log_end(),
                    epoch: step as u32,
                    time_ms: 1_000 + step as u64,
                    values: values(next_value, records),
                };
                next_value += records as u64;
                log.append(&b.whole());
                model.batches.push(b);
            }
            StoredOp::Truncate { to } => {
                let to = point(&to, model.log_end());
                log.truncate(Offset(to));
                // Every record at or above `to` goes; a batch cut in the middle keeps
                // its head (and its header).
                for b in &mut model.batches {
                    b.values.truncate(to.saturating_sub(b.base).min(b.values.len() as u64) as usize);
                }
                model.batches.retain(|b| !b.values.is_empty());
            }
            StoredOp::AdvanceLogStart { to } => {
                let to = point(&to, model.log_end());
                log.advance_log_start(Offset(to));
                model.batches.retain(|b| b.end() > to);
                model.log_start = model.log_start.max(to);
            }
            StoredOp::Torn { keep } => {
                let next = ModelBatch { base: model.log_end(), epoch: 0, time_ms: 0, values: values(next_value, 3) };
                let mut bytes = Vec::new();
                encode_stored_batch(&next.whole(), &mut bytes);
                let keep = 1 + keep.index(bytes.len() - 1);
                log.append_torn_bytes(&bytes[..keep]);
                prop_assert_eq!(log.repair(), StoredTail::Torn { bytes: keep });
            }
            StoredOp::Corrupt { at } => {
                let (bytes, starts) = model.encode();
                log.corrupt_byte(at);
                let tail = log.repair();
                if bytes.is_empty() {
                    prop_assert_eq!(tail, StoredTail::Clean);
                } else {
                    let pos = at % bytes.len();
                    let hit = starts.iter().take_while(|&&s| s <= pos).count() - 1;
                    prop_assert!(tail != StoredTail::Clean, "a flipped bit at {} went unnoticed", pos);
                    model.batches.truncate(hit);
                }
            }
            StoredOp::Repair => prop_assert_eq!(log.repair(), StoredTail::Clean),
        }
        check_stored(&log, &model)?;
    }
    Ok(())
}

proptest! {
    #[test]
    fn stored_log_agrees_with_its_model(ops in prop::collection::vec(stored_op(), 1..40)) {
        run_stored_ops(ops)?;
    }
}
