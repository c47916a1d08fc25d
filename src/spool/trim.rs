//! The spool's trimmer thread: deletes spent segments without stalling the writer's sync.
//!
//! Input: paths of segments whose every record is acknowledged (invariant 5 in `spool.rs`).
//! Output: those files gone, each freed a step at a time (`crate::slow_delete`): unlinked at
//! once, a 64 MiB segment held a concurrent append's `fdatasync` for 50–90 ms here, which
//! was the ≈ 100 ms stall at 5,000 requests/s. Never: touches a segment that still holds an
//! unacknowledged record (the caller only sends spent ones), or blocks an append or an
//! acknowledgement.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc;

/// Starts the thread that deletes what arrives on the returned sender, one file at a time.
/// It ends once every sender is dropped. Process exit may interrupt a deletion half way: the
/// file then holds only acknowledged records, which recovery deletes (`format::recover`).
pub(super) fn start() -> io::Result<mpsc::Sender<PathBuf>> {
    let (tx, rx) = mpsc::channel::<PathBuf>();
    std::thread::Builder::new()
        .name("spool-trim".to_owned())
        .spawn(move || {
            for path in rx {
                if let Err(e) = crate::slow_delete::remove(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot delete trimmed spool segment");
                }
            }
        })?;
    Ok(tx)
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
        let tx = start().unwrap();
        for p in &paths {
            tx.send(p.clone()).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while paths.iter().any(|p| p.exists()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(paths.iter().all(|p| !p.exists()), "segments left behind");
    }
}
