//! Whether the file system under the spool can hold what `[spool]` asks of it.
//!
//! The spool frees space a whole segment at a time, once Kafka has acknowledged every record
//! in it and the writer has moved on to the next. On a volume smaller than two segments the
//! segment being written can fill the disk with records Kafka already has, and nothing frees
//! them until a restart (every request meanwhile 503 `spool_io`); on one smaller than
//! `max_bytes` the disk fills before the spool's own cap, so `spool_full` and its readiness
//! warning never come first. Neither is an error (the volume may grow, or the operator may
//! accept it), so `check` and `serve` warn.

use std::path::Path;

use crate::config::spool::SpoolConfig;

/// The warning for `spool`'s volume, if it is too small; `None` when it is large enough or
/// cannot be measured (no part of the path exists yet, or the file system does not say).
pub fn warning(spool: &SpoolConfig) -> Option<String> {
    let total = total_bytes(&spool.dir)?;
    let dir = spool.dir.display();
    if total < spool.segment_bytes.saturating_mul(2) {
        Some(format!(
            "the file system under the spool ({dir}) holds {total} bytes in all, less than two \
             spool segments ({} bytes each): the segment being written can fill it with records \
             Kafka already has, which only a restart frees; lower [spool] segment_bytes",
            spool.segment_bytes
        ))
    } else if total < spool.max_bytes {
        Some(format!(
            "the file system under the spool ({dir}) holds {total} bytes in all, less than \
             [spool] max_bytes ({}): the disk fills (503 spool_io) before the spool's own cap \
             (503 spool_full, readiness warning first); lower max_bytes",
            spool.max_bytes
        ))
    } else {
        None
    }
}

/// Size of the file system holding `dir` (or its nearest existing ancestor), in bytes.
#[cfg(target_os = "linux")]
fn total_bytes(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|p| p.exists())?;
    let stat = rustix::fs::statvfs(existing).ok()?;
    stat.f_blocks.checked_mul(stat.f_frsize)
}

#[cfg(not(target_os = "linux"))]
fn total_bytes(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool(dir: &Path, segment_bytes: u64, max_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            segment_bytes,
            max_bytes,
            ..SpoolConfig::default()
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn warns_of_a_volume_smaller_than_two_segments_or_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let total = total_bytes(dir.path()).unwrap();
        assert!(total > 0);
        // A directory not made yet is measured on its nearest existing ancestor.
        let later = dir.path().join("not/yet");
        assert_eq!(total_bytes(&later), Some(total));
        let two_segments = warning(&spool(&later, total, total * 4)).unwrap();
        assert!(two_segments.contains("less than two"), "{two_segments}");
        let cap = warning(&spool(dir.path(), 4096, total + 1)).unwrap();
        assert!(cap.contains("max_bytes"), "{cap}");
        assert_eq!(warning(&spool(dir.path(), 4096, 8192)), None);
    }
}
