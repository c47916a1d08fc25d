//! Freeing a large file's blocks a step at a time, so deleting it does not stall other files'
//! syncs.
//!
//! Deleting a file of tens of megabytes frees all its blocks in one journal transaction; on a
//! file system mounted with `discard` (common for SSD and cloud volumes) that commit then
//! trims them all, and every `fdatasync` waiting on it waits too: measured on ext4 here, a
//! concurrent append's sync stalled 50–90 ms per 64 MiB file deleted. Shrinking the file a
//! step at a time, with a pause between steps, spreads the freeing over many small commits
//! (the approach of RocksDB's rate-limited `DeleteScheduler`). Blocks the calling thread for
//! about 10 ms per MiB: call it from a thread of its own.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;
use std::time::Duration;

/// Bytes freed per step: small enough that one step's trim is a short commit.
const STEP_BYTES: u64 = 1024 * 1024;
/// Pause after each step: a 64 MiB file is gone in about 0.7 s.
const STEP_PAUSE: Duration = Duration::from_millis(10);

/// Shrinks `path` step by step, then unlinks it.
pub fn remove(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    shrink(&file, STEP_BYTES, STEP_PAUSE)?;
    drop(file);
    fs::remove_file(path)
}

/// Shrinks an open file (typically one already unlinked or renamed over, whose blocks are
/// freed when it is closed) to a single step before the caller closes it.
pub fn shrink_open(file: &File) -> io::Result<()> {
    shrink(file, STEP_BYTES, STEP_PAUSE)
}

/// Shrinks `file` by `step` bytes at a time, pausing `pause` after each step, until at most
/// one step is left.
fn shrink(file: &File, step: u64, pause: Duration) -> io::Result<()> {
    let mut len = file.metadata()?.len();
    while len > step {
        len -= step;
        file.set_len(len)?;
        std::thread::sleep(pause);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_shrunk_step_by_step_to_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, vec![7u8; 10_000]).unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        shrink(&file, 4096, Duration::ZERO).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 10_000 - 2 * 4096);
    }

    #[test]
    fn remove_deletes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.seg");
        fs::write(&path, vec![7u8; 2 * 1024 * 1024 + 3]).unwrap();
        remove(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = remove(&dir.path().join("gone.seg"));
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
