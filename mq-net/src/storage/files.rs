//! Small-file helpers: atomic replacement (write a temporary file, fsync it, rename it
//! over the old one, fsync the directory) and directory fsync.

use super::{IoContext, StorageError};
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::Path;

/// Suffix of temporary files; recovery deletes leftovers.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Replaces `path` with `bytes` atomically: after a crash the file holds either the
/// old or the new contents, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(TMP_SUFFIX);
    let tmp = Path::new(&tmp_name);
    let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(tmp).ctx("create", tmp)?;
    f.write_all(bytes).ctx("write", tmp)?;
    f.sync_all().ctx("fsync", tmp)?;
    drop(f);
    fs::rename(tmp, path).ctx("rename into place", path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Makes the entries of `dir` (created, renamed, deleted files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).ctx("open directory", dir)?.sync_all().ctx("fsync directory", dir)
}
