//! Disk storage: the durable half of the sans-IO contract (DESIGN.md sections 2 and
//! 10). The node emits `Output::Persist { token, writes }`; the broker's storage
//! thread applies the writes of every Persist waiting for it ([`DiskStore::write`])
//! and then fsyncs once for all of them ([`DiskStore::sync`], group commit) before
//! the driver answers `Input::Persisted` for each. With `fsync = "interval"` it
//! reports them once written, fsyncs the Raft log at once
//! ([`DiskStore::sync_metadata`]) and the partition logs on a timer. At start,
//! [`DiskStore::open`] reads everything back, truncates a torn tail, refuses corrupt
//! data with an error that says which file and byte, and returns the
//! [`DurableState`] that `Node::recover` needs.
//!
//! Layout of a data directory (docs/operations.md):
//!
//! ```text
//! <data-dir>/mq.lock                            advisory lock: one store per directory
//! <data-dir>/raft.wal                           metadata quorum: term, vote, log (append-only)
//! <data-dir>/logs/<topic>/<partition>/log-start  first offset kept (atomic replace)
//! <data-dir>/logs/<topic>/<partition>/<base>.log    stored batches: len | crc32c | payload
//! <data-dir>/logs/<topic>/<partition>/<base>.index  per batch: base offset u64 | file position u64
//! ```
//!
//! `<base>` is the segment's first offset, zero-padded to 20 digits so names sort.

mod files;
mod lock;
mod partition;
mod raft_wal;

use files::{sync_dir, TMP_SUFFIX};
use lock::DirLock;
use mq_core::storage::{DurableState, Write};
use mq_core::{Offset, TopicPartition};
use partition::PartitionFiles;
use raft_wal::RaftWal;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why the store could not read or write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A filesystem call failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A segment holds a bad batch followed by good data: not a torn write but
    /// corruption of data that may have been acknowledged. The broker refuses to start
    /// rather than silently drop it.
    #[error(
        "corrupt segment {} at byte {pos}: {reason}; valid batches follow it, so this is not a torn write. \
         Restore the file from a replica or backup, or truncate it to {pos} bytes to drop everything from there",
        path.display()
    )]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the first bad batch.
        pos: u64,
        /// What was wrong.
        reason: String,
    },
    /// A metadata file failed its checksum or did not decode.
    #[error("corrupt metadata file {}: {reason}; restore it from a backup", path.display())]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Another store (another broker) holds the data directory's lock.
    #[error(
        "data directory {} is in use by {holder}; two brokers must never share a data directory: \
         give each broker its own --data-dir, or stop the other one first",
        dir.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it, as its lock file says (pid and description).
        holder: String,
    },
    /// The core sent a kind of write this build cannot store.
    #[error("unsupported write {0}; mq-net is older than mq-core")]
    UnsupportedWrite(String),
}

/// Attaches the operation and path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &Path) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::Io { op, path: path.to_owned(), source })
    }
}

/// Storage settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageOptions {
    /// A segment rolls over once appending would take it past this size.
    pub segment_bytes: u64,
    /// Who opens the store ("broker 1 on 127.0.0.1:9092"), written with the pid
    /// into the lock file so that a second opener's error can name the holder.
    pub owner: String,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions { segment_bytes: 64 * 1024 * 1024, owner: String::new() }
    }
}

/// Something recovery found and fixed (or cleaned up) at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryNote {
    /// A torn write at the end of a partition log was cut off.
    TruncatedTornTail {
        /// The partition.
        tp: TopicPartition,
        /// The segment file.
        path: PathBuf,
        /// Bytes dropped.
        dropped_bytes: u64,
        /// The log end after recovery.
        log_end: Offset,
    },
    /// An offset index did not match its segment and was rebuilt.
    RebuiltIndex {
        /// The index file.
        path: PathBuf,
    },
    /// A torn write at the end of the Raft log was cut off.
    TruncatedRaftLog {
        /// Bytes dropped.
        dropped_bytes: u64,
    },
    /// A leftover temporary file (an interrupted replacement) or a directory that is
    /// not a partition was removed.
    RemovedOrphan {
        /// What was removed.
        path: PathBuf,
    },
}

/// What [`DiskStore::open`] read back.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The state for `Node::recover`.
    pub state: DurableState,
    /// What recovery fixed, for the log.
    pub notes: Vec<RecoveryNote>,
}

/// The file store of one broker.
#[derive(Debug)]
pub struct DiskStore {
    root: PathBuf,
    logs_root: PathBuf,
    options: StorageOptions,
    raft: RaftWal,
    partitions: BTreeMap<TopicPartition, PartitionFiles>,
    /// Partitions written since the last sync.
    dirty: BTreeSet<TopicPartition>,
    /// Directories whose entries changed since the last sync.
    dirs_to_sync: BTreeSet<PathBuf>,
    scratch: Vec<u8>,
    /// Held for the store's whole life; dropping the store releases it.
    _lock: DirLock,
}

impl DiskStore {
    /// Opens (creating if needed) the store at `root` and recovers its contents.
    /// Fails with [`StorageError::Locked`] while another store has `root` open, in
    /// this process or another; the lock is released when the store is dropped.
    pub fn open(root: impl Into<PathBuf>, options: StorageOptions) -> Result<(DiskStore, Recovered), StorageError> {
        let root = root.into();
        let logs_root = root.join("logs");
        fs::create_dir_all(&logs_root).ctx("create data directory", &logs_root)?;
        // Before anything is read: another broker may be writing.
        let lock = DirLock::acquire(&root, &options.owner)?;
        let mut notes = Vec::new();
        remove_tmp_files(&root, &mut notes)?;
        let (raft, raft_state, torn) = RaftWal::open(&root)?;
        if torn > 0 {
            notes.push(RecoveryNote::TruncatedRaftLog { dropped_bytes: torn });
        }
        let mut store = DiskStore {
            root,
            logs_root,
            options,
            raft,
            partitions: BTreeMap::new(),
            dirty: BTreeSet::new(),
            dirs_to_sync: BTreeSet::new(),
            scratch: Vec::new(),
            _lock: lock,
        };
        let mut state = DurableState { raft: raft_state, ..DurableState::default() };
        for entry in fs::read_dir(&store.logs_root).ctx("list", &store.logs_root)? {
            let entry = entry.ctx("list", &store.logs_root)?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if !path.is_dir() {
                remove_path(&path)?;
                notes.push(RecoveryNote::RemovedOrphan { path });
                continue;
            }
            // Which topics exist is metadata (the Raft log); the node drops logs of
            // deleted topics when it applies their deletion.
            for pentry in fs::read_dir(&path).ctx("list", &path)? {
                let pentry = pentry.ctx("list", &path)?;
                let ppath = pentry.path();
                let partition = pentry.file_name().to_str().and_then(|s| s.parse::<u32>().ok());
                let Some(partition) = partition else {
                    remove_path(&ppath)?;
                    notes.push(RecoveryNote::RemovedOrphan { path: ppath });
                    continue;
                };
                let tp = TopicPartition::new(name.clone(), partition);
                let (files, batches, log_start) = PartitionFiles::recover(&ppath, &tp, &mut notes)?;
                if !batches.is_empty() {
                    state.apply(&Write::Append { tp: tp.clone(), batches });
                }
                if log_start > Offset(0) {
                    state.apply(&Write::AdvanceLogStart { tp: tp.clone(), log_start });
                }
                store.partitions.insert(tp, files);
            }
        }
        // Recovery already cut torn tails; this is a cheap consistency check.
        let reports = state.repair();
        debug_assert!(reports.is_empty(), "recovered logs must be clean: {reports:?}");
        store.sync_dirs()?;
        Ok((store, Recovered { state, notes }))
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Applies `writes` in order, then makes all of them durable with one round of
    /// fsyncs. On error the store is in an unknown state: the broker must stop and
    /// recover from disk.
    pub fn persist(&mut self, writes: &[Write]) -> Result<(), StorageError> {
        self.write(writes)?;
        self.sync()
    }

    /// Applies `writes` in order without making them durable: they are in the
    /// operating system's cache until [`DiskStore::sync`] (group commit over several
    /// Persists, or `fsync = "interval"`). Same error rule as [`DiskStore::persist`].
    pub fn write(&mut self, writes: &[Write]) -> Result<(), StorageError> {
        writes.iter().try_for_each(|w| self.apply(w))
    }

    /// Makes every write so far durable: the Raft log, each partition log written
    /// since the last sync, and the directories whose entries changed.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.raft.sync()?;
        for tp in std::mem::take(&mut self.dirty) {
            if let Some(files) = self.partitions.get_mut(&tp) {
                files.sync()?;
            }
        }
        self.sync_dirs()
    }

    /// Makes the Raft log durable (terms, votes and metadata entries), leaving the
    /// partition logs to a later [`DiskStore::sync`].
    pub fn sync_metadata(&mut self) -> Result<(), StorageError> {
        self.raft.sync()
    }

    fn apply(&mut self, write: &Write) -> Result<(), StorageError> {
        let topic = match write {
            Write::DeleteTopic { topic } => Some(topic.as_str()),
            Write::Append { tp, .. }
            | Write::Truncate { tp, .. }
            | Write::AdvanceLogStart { tp, .. }
            | Write::ResetLog { tp, .. } => Some(tp.topic.as_str()),
            _ => None,
        };
        if let Some(name) = topic {
            // The core validates names; this keeps a bug there from writing outside
            // the data directory.
            if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
                return Err(StorageError::UnsupportedWrite(format!(
                    "topic name {name:?} is not a safe directory name"
                )));
            }
        }
        match write {
            Write::Raft(w) => self.raft.append(w),
            Write::DeleteTopic { topic } => {
                // The deletion is committed metadata: a crash before the logs are
                // gone replays it on restart.
                self.partitions.retain(|tp, _| &tp.topic != topic);
                self.dirty.retain(|tp| &tp.topic != topic);
                let dir = self.logs_root.join(topic);
                self.dirs_to_sync.retain(|d| !d.starts_with(&dir));
                if dir.exists() {
                    fs::remove_dir_all(&dir).ctx("remove", &dir)?;
                    self.dirs_to_sync.insert(self.logs_root.clone());
                }
                Ok(())
            }
            Write::Append { tp, batches } => {
                let segment_bytes = self.options.segment_bytes;
                let mut scratch = std::mem::take(&mut self.scratch);
                let files = self.partition(tp)?;
                let mut new_dirs = Vec::new();
                let result =
                    batches.iter().try_for_each(|b| files.append(b, segment_bytes, &mut scratch, &mut new_dirs));
                self.scratch = scratch;
                self.dirs_to_sync.extend(new_dirs);
                self.dirty.insert(tp.clone());
                result
            }
            Write::Truncate { tp, end } => {
                let mut new_dirs = Vec::new();
                let Some(files) = self.partitions.get_mut(tp) else { return Ok(()) };
                files.truncate(*end, &mut new_dirs)?;
                self.dirs_to_sync.extend(new_dirs);
                self.dirty.insert(tp.clone());
                Ok(())
            }
            Write::ResetLog { tp, start, .. } => {
                // Drop every segment and restart the log at `start`.
                self.partitions.remove(tp);
                self.dirty.remove(tp);
                let dir = self.logs_root.join(&tp.topic).join(tp.partition.0.to_string());
                if dir.exists() {
                    fs::remove_dir_all(&dir).ctx("remove", &dir)?;
                }
                let mut new_dirs = Vec::new();
                let files = self.partition(tp)?;
                files.advance_log_start(*start, &mut new_dirs)?;
                self.dirs_to_sync.extend(new_dirs);
                Ok(())
            }
            Write::AdvanceLogStart { tp, log_start } => {
                let mut new_dirs = Vec::new();
                let files = self.partition(tp)?;
                files.advance_log_start(*log_start, &mut new_dirs)?;
                self.dirs_to_sync.extend(new_dirs);
                Ok(())
            }
            other => Err(StorageError::UnsupportedWrite(format!("{other:?}"))),
        }
    }

    fn partition(&mut self, tp: &TopicPartition) -> Result<&mut PartitionFiles, StorageError> {
        if !self.partitions.contains_key(tp) {
            let topic_dir = self.logs_root.join(&tp.topic);
            let dir = topic_dir.join(tp.partition.0.to_string());
            fs::create_dir_all(&dir).ctx("create", &dir)?;
            self.dirs_to_sync.insert(self.logs_root.clone());
            self.dirs_to_sync.insert(topic_dir);
            self.partitions.insert(tp.clone(), PartitionFiles::create(dir));
        }
        Ok(self.partitions.get_mut(tp).expect("inserted above"))
    }

    fn sync_dirs(&mut self) -> Result<(), StorageError> {
        for dir in std::mem::take(&mut self.dirs_to_sync) {
            if dir.exists() {
                sync_dir(&dir)?;
            }
        }
        Ok(())
    }
}

fn remove_path(path: &Path) -> Result<(), StorageError> {
    if path.is_dir() {
        fs::remove_dir_all(path).ctx("remove", path)
    } else {
        fs::remove_file(path).ctx("remove", path)
    }
}

/// Deletes leftover temporary files of interrupted atomic replacements.
fn remove_tmp_files(root: &Path, notes: &mut Vec<RecoveryNote>) -> Result<(), StorageError> {
    for entry in fs::read_dir(root).ctx("list", root)? {
        let path = entry.ctx("list", root)?.path();
        if path.to_string_lossy().ends_with(TMP_SUFFIX) {
            remove_path(&path)?;
            notes.push(RecoveryNote::RemovedOrphan { path });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
