//! The metadata quorum's durable state: an append-only file of Raft writes (term and
//! vote changes, appended entries, truncations), each framed as
//! `length u32 | crc32c u32 | postcard(RaftWrite)`. Recovery replays the frames into
//! a [`RaftDurable`]; a torn last frame (a crash mid-write) is cut off, while a bad
//! frame followed by good ones is corruption and stops the start.

use super::{IoContext, StorageError};
use mq_core::controller::raft::{RaftDurable, RaftWrite};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// File name of the Raft write-ahead log in the data directory.
pub(crate) const RAFT_WAL: &str = "raft.wal";

/// The open Raft log file.
#[derive(Debug)]
pub(crate) struct RaftWal {
    path: PathBuf,
    file: Option<File>,
    dirty: bool,
}

impl RaftWal {
    /// Opens the file under `root`, replaying it. Returns the state and how many torn
    /// bytes were cut off the end.
    pub(crate) fn open(root: &Path) -> Result<(RaftWal, RaftDurable, u64), StorageError> {
        let path = root.join(RAFT_WAL);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).ctx("read", &path),
        };
        let mut state = RaftDurable::default();
        let mut pos = 0usize;
        let mut torn = 0u64;
        while pos < bytes.len() {
            let rest = &bytes[pos..];
            let frame = (rest.len() >= 8)
                .then(|| {
                    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    let crc = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]);
                    (len, crc)
                })
                .filter(|(len, _)| rest.len() >= 8 + len);
            let Some((len, crc)) = frame else {
                torn = rest.len() as u64;
                break;
            };
            let payload = &rest[8..8 + len];
            let decoded =
                (crc32c::crc32c(payload) == crc).then(|| postcard::from_bytes::<RaftWrite>(payload).ok()).flatten();
            match decoded {
                Some(w) => state.apply(&w),
                None if pos + 8 + len == bytes.len() => {
                    // The last frame is damaged: a torn write.
                    torn = rest.len() as u64;
                    break;
                }
                None => {
                    return Err(StorageError::CorruptMetadata {
                        path,
                        reason: format!("bad frame at byte {pos} followed by more data"),
                    })
                }
            }
            pos += 8 + len;
        }
        if torn > 0 {
            let f = OpenOptions::new().write(true).open(&path).ctx("open", &path)?;
            f.set_len(pos as u64).ctx("truncate", &path)?;
            f.sync_all().ctx("fsync", &path)?;
        }
        Ok((RaftWal { path, file: None, dirty: false }, state, torn))
    }

    /// Appends one write (durable after [`RaftWal::sync`]).
    pub(crate) fn append(&mut self, w: &RaftWrite) -> Result<(), StorageError> {
        let payload = postcard::to_allocvec(w)
            .map_err(|e| StorageError::UnsupportedWrite(format!("raft write does not serialize: {e}")))?;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        frame.extend_from_slice(&payload);
        if self.file.is_none() {
            let f = OpenOptions::new().create(true).append(true).open(&self.path).ctx("open", &self.path)?;
            self.file = Some(f);
        }
        let f = self.file.as_mut().expect("opened above");
        f.write_all(&frame).ctx("write", &self.path)?;
        self.dirty = true;
        Ok(())
    }

    /// Makes appended writes durable.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            if let Some(f) = &self.file {
                f.sync_data().ctx("fsync", &self.path)?;
            }
            self.dirty = false;
        }
        Ok(())
    }
}
