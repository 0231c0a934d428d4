//! The data-directory lock: two brokers on one directory would interleave their
//! writes to the same segments and Raft log and silently lose acknowledged records,
//! so a store holds an advisory lock on `<data-dir>/mq.lock` for as long as it is
//! open, and a second opener fails at once with an error naming the holder.
//!
//! The lock is the OS's (`flock` on Unix, `LockFileEx` on Windows, through
//! `std::fs::File::try_lock`), not the file's existence: it is released when the
//! holder closes the file or its process dies, even by SIGKILL, so a stale lock
//! file never blocks a restart. The file's text (the holder's pid and what it is)
//! is only there for the error message. Advisory locks are per open file, so a
//! second store in the same process is refused too.

use super::{IoContext, StorageError};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;

/// File name of the lock in the data directory.
pub(crate) const LOCK_FILE: &str = "mq.lock";

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    // Closing the file releases the lock.
    _file: File,
}

impl DirLock {
    /// Locks `root` for `owner` (a description such as "broker 1 on 127.0.0.1:9092"),
    /// or fails with [`StorageError::Locked`] naming whoever holds it.
    pub(crate) fn acquire(root: &Path, owner: &str) -> Result<DirLock, StorageError> {
        let path = root.join(LOCK_FILE);
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).ctx("open", &path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder's description is a courtesy; an unreadable one still
                // refuses the start.
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "a process that has not written its name yet".to_owned(),
                    t => t.to_owned(),
                };
                return Err(StorageError::Locked { dir: root.to_owned(), holder });
            }
            Err(TryLockError::Error(e)) => return Err(e).ctx("lock", &path),
        }
        let text = match owner {
            "" => format!("pid {}\n", std::process::id()),
            o => format!("pid {} ({o})\n", std::process::id()),
        };
        file.set_len(0).ctx("write", &path)?;
        file.seek(SeekFrom::Start(0)).ctx("write", &path)?;
        file.write_all(text.as_bytes()).ctx("write", &path)?;
        Ok(DirLock { _file: file })
    }
}
