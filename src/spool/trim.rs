//! The spool's trimmer thread: disposes of spent segments without stalling the writer's sync.
//!
//! Input: paths of segments whose every record is acknowledged (invariant 5 in `spool.rs`).
//! Output: each one kept as the spare (`format::SPARE_FILE`, renamed: no block is freed) when
//! there is none, for the writer to reuse at its next roll (`format::open_segment`); otherwise
//! deleted a step at a time (`crate::slow_delete`): unlinked at once, a 64 MiB segment held a
//! concurrent append's `fdatasync` for 50–90 ms here, which was the ≈ 100 ms stall at 5,000
//! requests/s. Never: touches a segment that still holds an unacknowledged record (the caller
//! only sends spent ones), or blocks an append or an acknowledgement.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::format;

/// Starts the thread that disposes of what arrives on the returned sender, one file at a
/// time. It ends once every sender is dropped. Process exit may interrupt a deletion half way:
/// the file then holds only acknowledged records, which recovery deletes (`format::recover`).
pub(super) fn start(dir: PathBuf) -> io::Result<mpsc::Sender<PathBuf>> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    std::thread::Builder::new()
        .name("spool-trim".to_owned())
        .spawn(move || {
            for path in rx {
                if let Err(e) = dispose(&path, &dir) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete trimmed spool segment");
                }
            }
        })?;
    Ok(tx)
}

/// Keeps `path` as the spare when there is none, else deletes it step by step. Only this
/// thread creates the spare and only the writer takes it, so the check cannot race into
/// replacing one (which would free its blocks at once).
fn dispose(path: &Path, dir: &Path) -> io::Result<()> {
    let spare = format::spare_path(dir);
    if !spare.exists() {
        match fs::rename(path, &spare) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(_) => {}
        }
    }
    crate::slow_delete::remove(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::{Duration, Instant};

    #[test]
    fn the_thread_deletes_what_it_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| dir.path().join(format!("{i}.seg")))
            .collect();
        for p in &paths {
            fs::write(p, vec![1u8; 3 * 1024 * 1024 + 5]).unwrap();
        }
        let tx = start(dir.path().to_owned()).unwrap();
        for p in &paths {
            tx.send(p.clone()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let done =
            || paths.iter().all(|p| !p.exists()) && fs::read_dir(dir.path()).unwrap().count() == 1;
        while !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(paths.iter().all(|p| !p.exists()), "segments left behind");
        // The first became the spare; the others, with a spare in place, were deleted.
        let spare = fs::read(format::spare_path(dir.path())).unwrap();
        assert_eq!(spare.len(), 3 * 1024 * 1024 + 5);
        let left = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(left, 1, "only the spare should remain");
    }
}
