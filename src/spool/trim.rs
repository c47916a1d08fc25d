//! Deleting spent segments without stalling the writer's `fdatasync`.
//!
//! Input: paths of segments whose every record is acknowledged (invariant 5 in `spool.rs`).
//! Output: those files gone. Unlinking a 64 MiB file at once frees all its blocks in one
//! journal transaction; on a file system mounted with `discard` (common for SSD and cloud
//! volumes) the commit then trims them all, and every `fdatasync` waiting on that commit
//! waits too: measured on ext4 here, a concurrent append's sync stalled 50–90 ms per deleted
//! segment. Shrinking the file a step at a time, with a pause between steps, spreads the
//! freeing over many small commits (the approach of RocksDB's rate-limited `DeleteScheduler`).
//! Never: touches a segment that still holds an unacknowledged record (the caller only sends
//! spent ones), or blocks an append or an acknowledgement (it runs on its own thread).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Bytes freed per step: small enough that one step's trim is a short commit.
const STEP_BYTES: u64 = 1024 * 1024;
/// Pause between steps: a 64 MiB segment is gone in about 0.7 s.
const STEP_PAUSE: Duration = Duration::from_millis(10);

/// Starts the thread that deletes what arrives on the returned sender, one file at a time.
/// It ends once every sender is dropped. Process exit may interrupt a deletion half way: the
/// file then holds only acknowledged records, which recovery deletes (`format::recover`).
pub(super) fn start() -> io::Result<mpsc::Sender<PathBuf>> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    std::thread::Builder::new()
        .name("spool-trim".to_owned())
        .spawn(move || {
            for path in rx {
                if let Err(e) = remove_gradually(&path, STEP_BYTES, STEP_PAUSE) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete trimmed spool segment");
                }
            }
        })?;
    Ok(tx)
}

/// Shrinks `path` by `step` bytes at a time, pausing `pause` after each step, then unlinks it.
pub(super) fn remove_gradually(path: &Path, step: u64, pause: Duration) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let mut len = file.metadata()?.len();
    while len > step {
        len -= step;
        file.set_len(len)?;
        std::thread::sleep(pause);
    }
    drop(file);
    fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_shrunk_step_by_step_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.seg");
        fs::write(&path, vec![7u8; 10_000]).unwrap();
        remove_gradually(&path, 4096, Duration::ZERO).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let err = remove_gradually(&dir.path().join("gone.seg"), 4096, Duration::ZERO);
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_thread_deletes_what_it_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| dir.path().join(format!("{i}.seg")))
            .collect();
        for p in &paths {
            fs::write(p, vec![1u8; 3 * 1024 * 1024 + 5]).unwrap();
        }
        let tx = start().unwrap();
        for p in &paths {
            tx.send(p.clone()).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while paths.iter().any(|p| p.exists()) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(paths.iter().all(|p| !p.exists()), "segments left behind");
    }
}
