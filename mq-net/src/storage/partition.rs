//! One partition's files: segments of stored batches, an offset index per segment and
//! the log-start checkpoint.
//!
//! Only the segment files are fsynced per Persist. The index is derived data: recovery
//! scans every segment anyway (the core keeps the whole log in memory today) and
//! rewrites an index that disagrees with its segment.

use super::files::{write_atomically, TMP_SUFFIX};
use super::{IoContext, RecoveryNote, StorageError};
use mq_core::wire::codec::{decode_stored_batches, encode_stored_batch, StoredTail, BATCH_HEADER_BYTES};
use mq_core::wire::RecordBatch;
use mq_core::{Offset, TopicPartition};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Bytes per index entry: batch base offset (u64) and file position (u64), big-endian.
pub(crate) const INDEX_ENTRY_BYTES: usize = 16;
const LOG_START_FILE: &str = "log-start";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    base: Offset,
    end: Offset,
    pos: u64,
}

#[derive(Debug)]
struct Segment {
    base: Offset,
    entries: Vec<Entry>,
    size: u64,
}

impl Segment {
    fn end(&self) -> Offset {
        self.entries.last().map_or(self.base, |e| e.end)
    }
}

#[derive(Debug)]
struct Active {
    log: File,
    index: File,
}

/// The files of one partition (see the module docs).
#[derive(Debug)]
pub(crate) struct PartitionFiles {
    dir: PathBuf,
    log_start: Offset,
    segments: Vec<Segment>,
    /// Open handles on the last segment.
    active: Option<Active>,
}

pub(crate) fn log_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{:020}.log", base.0))
}

pub(crate) fn index_path(dir: &Path, base: Offset) -> PathBuf {
    dir.join(format!("{:020}.index", base.0))
}

fn index_entry(base: Offset, pos: u64) -> [u8; INDEX_ENTRY_BYTES] {
    let mut e = [0u8; INDEX_ENTRY_BYTES];
    e[..8].copy_from_slice(&base.0.to_be_bytes());
    e[8..].copy_from_slice(&pos.to_be_bytes());
    e
}

impl PartitionFiles {
    /// An empty partition in an existing directory.
    pub(crate) fn create(dir: PathBuf) -> Self {
        PartitionFiles { dir, log_start: Offset(0), segments: Vec::new(), active: None }
    }

    /// Appends one batch, rolling to a new segment when the active one is full.
    pub(crate) fn append(
        &mut self,
        batch: &RecordBatch,
        segment_bytes: u64,
        scratch: &mut Vec<u8>,
        changed_dirs: &mut Vec<PathBuf>,
    ) -> Result<(), StorageError> {
        scratch.clear();
        encode_stored_batch(batch, scratch);
        let len = scratch.len() as u64;
        let roll = self.segments.last().is_none_or(|s| s.size > 0 && s.size + len > segment_bytes);
        if roll {
            // The full segment must be durable too; its handle is about to go.
            self.sync()?;
            self.active = None;
            self.segments.push(Segment { base: batch.base_offset, entries: Vec::new(), size: 0 });
            changed_dirs.push(self.dir.clone());
        }
        self.open_active()?;
        let active = self.active.as_mut().expect("opened above");
        let seg = self.segments.last_mut().expect("a segment exists after rolling");
        let dir = &self.dir;
        active.log.write_all(scratch).ctx("append to", &log_path(dir, seg.base))?;
        let entry = index_entry(batch.base_offset, seg.size);
        active.index.write_all(&entry).ctx("append to", &index_path(dir, seg.base))?;
        seg.entries.push(Entry { base: batch.base_offset, end: batch.end_offset(), pos: seg.size });
        seg.size += len;
        Ok(())
    }

    /// Removes every record at or above `end`; a cut inside a batch keeps its head as
    /// a shorter batch (as `mq_core::storage::StoredLog::truncate` does).
    pub(crate) fn truncate(&mut self, end: Offset, changed_dirs: &mut Vec<PathBuf>) -> Result<(), StorageError> {
        let Some(si) = self.segments.iter().position(|s| s.end() > end) else { return Ok(()) };
        self.active = None;
        for seg in self.segments.drain(si + 1..) {
            remove_segment_files(&self.dir, seg.base)?;
            changed_dirs.push(self.dir.clone());
        }
        let seg = &mut self.segments[si];
        let lpath = log_path(&self.dir, seg.base);
        let ei = seg.entries.iter().position(|e| e.end > end).expect("the segment ends after `end`");
        let entry = seg.entries[ei];
        let head = if entry.base < end {
            let bytes = fs::read(&lpath).ctx("read", &lpath)?;
            let next = seg.entries.get(ei + 1).map_or(bytes.len() as u64, |e| e.pos);
            let slice = bytes.get(entry.pos as usize..next as usize).unwrap_or_default();
            decode_stored_batches(slice).batches.into_iter().next().map(|b| b.slice_until(end))
        } else {
            None
        };
        let log = OpenOptions::new().write(true).open(&lpath).ctx("open", &lpath)?;
        log.set_len(entry.pos).ctx("truncate", &lpath)?;
        log.sync_all().ctx("fsync", &lpath)?;
        let ipath = index_path(&self.dir, seg.base);
        let index = OpenOptions::new().create(true).write(true).truncate(false).open(&ipath).ctx("open", &ipath)?;
        index.set_len((ei * INDEX_ENTRY_BYTES) as u64).ctx("truncate", &ipath)?;
        seg.entries.truncate(ei);
        seg.size = entry.pos;
        if seg.entries.is_empty() {
            let base = seg.base;
            self.segments.pop();
            remove_segment_files(&self.dir, base)?;
            changed_dirs.push(self.dir.clone());
        }
        if let Some(head) = head.filter(|h| !h.is_empty()) {
            self.append(&head, u64::MAX, &mut Vec::new(), changed_dirs)?;
        }
        Ok(())
    }

    /// Records the new log start, then deletes the segments wholly below it. The last
    /// segment always stays so the next append continues it.
    pub(crate) fn advance_log_start(
        &mut self,
        log_start: Offset,
        changed_dirs: &mut Vec<PathBuf>,
    ) -> Result<(), StorageError> {
        if log_start <= self.log_start {
            return Ok(());
        }
        self.log_start = log_start;
        // Checkpoint first: a crash before the deletions leaves extra segments that
        // recovery skips, never a log start below deleted data.
        write_atomically(&self.dir.join(LOG_START_FILE), log_start.0.to_string().as_bytes())?;
        while self.segments.len() > 1 && self.segments[0].end() <= log_start {
            let seg = self.segments.remove(0);
            remove_segment_files(&self.dir, seg.base)?;
            changed_dirs.push(self.dir.clone());
        }
        Ok(())
    }

    /// Makes the appended bytes durable (one fsync of the active segment).
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        if let (Some(active), Some(seg)) = (&self.active, self.segments.last()) {
            active.log.sync_data().ctx("fsync", &log_path(&self.dir, seg.base))?;
        }
        Ok(())
    }

    fn open_active(&mut self) -> Result<(), StorageError> {
        if self.active.is_none() {
            let seg = self.segments.last().expect("callers create a segment first");
            let open = |p: PathBuf| OpenOptions::new().create(true).append(true).open(&p).ctx("open", &p);
            let log = open(log_path(&self.dir, seg.base))?;
            let index = open(index_path(&self.dir, seg.base))?;
            self.active = Some(Active { log, index });
        }
        Ok(())
    }

    /// Reads a partition back: validates every segment, cuts a torn tail off the last
    /// one, refuses corruption, and rebuilds indexes that disagree. Returns the files,
    /// the batches in order and the log start.
    pub(crate) fn recover(
        dir: &Path,
        tp: &TopicPartition,
        notes: &mut Vec<RecoveryNote>,
    ) -> Result<(PartitionFiles, Vec<RecordBatch>, Offset), StorageError> {
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).ctx("list", dir)? {
            let path = entry.ctx("list", dir)?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.ends_with(TMP_SUFFIX) {
                fs::remove_file(&path).ctx("remove", &path)?;
                notes.push(RecoveryNote::RemovedOrphan { path });
            } else if let Some(base) = name.strip_suffix(".log").and_then(|b| b.parse::<u64>().ok()) {
                bases.push(Offset(base));
            }
        }
        bases.sort();
        let checkpoint = read_log_start(&dir.join(LOG_START_FILE))?;
        let mut files = PartitionFiles::create(dir.to_owned());
        let mut batches: Vec<RecordBatch> = Vec::new();
        let count = bases.len();
        for (i, base) in bases.into_iter().enumerate() {
            let lpath = log_path(dir, base);
            let bytes = fs::read(&lpath).ctx("read", &lpath)?;
            let read = decode_stored_batches(&bytes);
            let corrupt = |pos: usize, reason: String| StorageError::CorruptSegment {
                path: lpath.clone(),
                pos: pos as u64,
                reason,
            };
            match &read.tail {
                StoredTail::Clean => {}
                tail if i + 1 == count && is_torn_tail(&bytes[read.valid_len..]) => {
                    let f = OpenOptions::new().write(true).open(&lpath).ctx("open", &lpath)?;
                    f.set_len(read.valid_len as u64).ctx("truncate", &lpath)?;
                    f.sync_all().ctx("fsync", &lpath)?;
                    let dropped_bytes = (bytes.len() - read.valid_len) as u64;
                    let log_end = read.batches.last().map_or(base, RecordBatch::end_offset);
                    tracing::debug!(%tp, ?tail, "cut torn tail");
                    notes.push(RecoveryNote::TruncatedTornTail {
                        tp: tp.clone(),
                        path: lpath.clone(),
                        dropped_bytes,
                        log_end,
                    });
                }
                StoredTail::Torn { .. } => {
                    return Err(corrupt(read.valid_len, "segment ends mid-batch but later segments exist".into()))
                }
                StoredTail::Corrupt { reason, .. } => return Err(corrupt(read.valid_len, reason.clone())),
            }
            if read.batches.is_empty() {
                // Created just before a crash, or emptied by a torn first write.
                remove_segment_files(dir, base)?;
                continue;
            }
            let mut entries: Vec<Entry> = Vec::with_capacity(read.batches.len());
            for (b, &pos) in read.batches.iter().zip(&read.positions) {
                // Within a segment and across segments offsets run on without gaps;
                // the first batch of a segment is at the offset its name gives.
                let expected = match entries.last() {
                    Some(e) => e.end,
                    None => base,
                };
                if b.base_offset != expected {
                    return Err(corrupt(
                        pos,
                        format!("batch at offset {} where offset {expected} was expected", b.base_offset),
                    ));
                }
                entries.push(Entry { base: b.base_offset, end: b.end_offset(), pos: pos as u64 });
            }
            if let Some(prev) = batches.last().map(RecordBatch::end_offset).filter(|p| *p != base) {
                return Err(corrupt(0, format!("segment starts at offset {base} but the previous one ends at {prev}")));
            }
            batches.extend(read.batches);
            let want: Vec<u8> = entries.iter().flat_map(|e| index_entry(e.base, e.pos)).collect();
            let ipath = index_path(dir, base);
            if fs::read(&ipath).ok().as_deref() != Some(&want[..]) {
                write_atomically(&ipath, &want)?;
                notes.push(RecoveryNote::RebuiltIndex { path: ipath });
            }
            files.segments.push(Segment { base, entries, size: read.valid_len as u64 });
        }
        let first = files.segments.first().map_or(Offset(0), |s| s.base);
        files.log_start = checkpoint.max(first);
        let log_start = files.log_start;
        Ok((files, batches, log_start))
    }
}

/// True when the bytes after the last valid batch of the last segment are what an
/// interrupted write leaves: zeros, a cut-off batch, or a bad batch with nothing valid
/// after it. A bad batch followed by a valid one is corruption instead.
fn is_torn_tail(rest: &[u8]) -> bool {
    if rest.iter().all(|b| *b == 0) || rest.len() < BATCH_HEADER_BYTES {
        return true;
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    match rest.get(4usize.saturating_add(len)..) {
        Some(after) if !after.is_empty() => decode_stored_batches(after).batches.is_empty(),
        _ => true,
    }
}

fn read_log_start(path: &Path) -> Result<Offset, StorageError> {
    match fs::read_to_string(path) {
        Ok(s) => s.trim().parse::<u64>().map(Offset).map_err(|e| StorageError::CorruptMetadata {
            path: path.to_owned(),
            reason: format!("not an offset: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Offset(0)),
        Err(e) => Err(e).ctx("read", path),
    }
}

fn remove_segment_files(dir: &Path, base: Offset) -> Result<(), StorageError> {
    for p in [log_path(dir, base), index_path(dir, base)] {
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx("remove", &p),
        }
    }
    Ok(())
}
