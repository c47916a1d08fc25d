//! The memory dedup store's journal: committed keys with their wall-clock expiry.
//!
//! Input: `(scoped key, expiry)` on each commit. Output: the same pairs at startup. One JSON
//! array per line, `["<key>", <expires unix ms>]`; a torn or unreadable line is skipped (its
//! key is forgotten, never invented). Compacted (the live keys written to a temporary file,
//! then renamed over it) at startup and whenever it holds more than twice `max_entries` lines.
//! Never holds event bodies.
//!
//! A compaction runs in two steps so the request path never waits for it:
//! [`Journal::begin_compaction`] (on the committing request: from then on appends are also kept
//! aside), then the store's snapshot of live keys, then [`Journal::finish_compaction`] on a
//! thread of its own, which writes the snapshot, adds what was kept aside, swaps the files and
//! frees the old one a step at a time (`crate::slow_delete`). A key committed while it runs is
//! in the snapshot or in what was kept aside, so it is never lost.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An append-only file of committed dedup keys.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    open: Mutex<Open>,
    lines: AtomicUsize,
    /// Set from `begin_compaction` until its `finish_compaction` (or `cancel_compaction`).
    compacting: AtomicBool,
}

#[derive(Debug)]
struct Open {
    file: Option<File>,
    /// Lines appended since the running compaction began (`None` when none runs).
    kept_aside: Option<Vec<u8>>,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Journal {
    /// Opens (creating) the journal at `path`.
    pub fn open(path: PathBuf) -> std::io::Result<Journal> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Journal {
            path,
            open: Mutex::new(Open {
                file: Some(file),
                kept_aside: None,
            }),
            lines: AtomicUsize::new(0),
            compacting: AtomicBool::new(false),
        })
    }

    /// Every readable entry, oldest first.
    pub fn entries(&self) -> Vec<(String, SystemTime)> {
        let Ok(file) = File::open(&self.path) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| serde_json::from_str::<(String, u64)>(&line).ok())
            .map(|(key, ms)| (key, UNIX_EPOCH + Duration::from_millis(ms)))
            .collect()
    }

    /// Appends one committed key.
    pub fn append(&self, key: &str, expires: SystemTime) -> std::io::Result<()> {
        self.append_many(std::iter::once((key, expires)))
    }

    /// Appends committed keys, one line each, in a single write (so a request's keys cost
    /// one system call, and a crash tears at most the last line, which replay skips).
    pub fn append_many<K: AsRef<str>>(
        &self,
        entries: impl Iterator<Item = (K, SystemTime)>,
    ) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(128);
        let mut count = 0usize;
        for (key, expires) in entries {
            serde_json::to_writer(&mut buf, &(key.as_ref(), unix_ms(expires)))?;
            buf.push(b'\n');
            count += 1;
        }
        if count == 0 {
            return Ok(());
        }
        let mut open = self.lock()?;
        if let Some(aside) = open.kept_aside.as_mut() {
            aside.extend_from_slice(&buf);
        }
        if let Some(file) = open.file.as_mut() {
            file.write_all(&buf)?;
        }
        self.lines.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    fn lock(&self) -> std::io::Result<std::sync::MutexGuard<'_, Open>> {
        self.open
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))
    }

    /// True when the file holds many more lines than live keys and no compaction runs.
    pub fn needs_compaction(&self, max_entries: usize) -> bool {
        self.lines.load(Ordering::Relaxed) > max_entries.saturating_mul(2)
            && !self.compacting.load(Ordering::Relaxed)
    }

    /// Starts a compaction: false when one already runs. From now on appends are also kept
    /// aside; take the snapshot of live keys *after* this returns, then call
    /// [`Journal::finish_compaction`] (or [`Journal::cancel_compaction`]).
    pub fn begin_compaction(&self) -> bool {
        if self.compacting.swap(true, Ordering::AcqRel) {
            return false;
        }
        match self.lock() {
            Ok(mut open) => {
                open.kept_aside = Some(Vec::new());
                true
            }
            Err(_) => {
                self.compacting.store(false, Ordering::Release);
                false
            }
        }
    }

    /// Ends a begun compaction without writing anything.
    pub fn cancel_compaction(&self) {
        if let Ok(mut open) = self.lock() {
            open.kept_aside = None;
        }
        self.compacting.store(false, Ordering::Release);
    }

    /// Replaces the file with `live` plus the lines appended since `begin_compaction`, then
    /// frees the old file a step at a time. Blocks for about 10 ms per MiB of the old file:
    /// call it from a thread of its own, except at startup.
    pub fn finish_compaction(
        &self,
        live: impl Iterator<Item = (String, SystemTime)>,
    ) -> std::io::Result<()> {
        let result = self.write_and_swap(live);
        self.compacting.store(false, Ordering::Release);
        let old = result?;
        if let Some(old) = old {
            crate::slow_delete::shrink_open(&old)?;
        }
        Ok(())
    }

    /// Writes `live` to a temporary file, then under the lock adds what was kept aside and
    /// renames it over the journal. Returns the replaced file, still open.
    fn write_and_swap(
        &self,
        live: impl Iterator<Item = (String, SystemTime)>,
    ) -> std::io::Result<Option<File>> {
        let tmp = self.path.with_extension("tmp");
        let written = (|| {
            let mut out = std::io::BufWriter::new(File::create(&tmp)?);
            let mut count = 0usize;
            for (key, expires) in live {
                serde_json::to_writer(&mut out, &(key, unix_ms(expires)))?;
                out.write_all(b"\n")?;
                count += 1;
            }
            out.flush()?;
            out.get_ref().sync_all()?;
            Ok::<_, std::io::Error>((out.into_inner().map_err(|e| e.into_error())?, count))
        })();
        let mut open = self.lock()?;
        let aside = open.kept_aside.take().unwrap_or_default();
        let (mut file, count) = written?;
        // Appends are not synced one by one either: the kept-aside lines reach the disk with
        // the file's next writeback, like every other append.
        file.write_all(&aside)?;
        fs::rename(&tmp, &self.path)?;
        let old = open.file.replace(file);
        let aside_lines = aside.iter().filter(|&&b| b == b'\n').count();
        self.lines.store(count + aside_lines, Ordering::Relaxed);
        Ok(old)
    }

    /// Compacts at once (startup, before any request): the file holds exactly `live`.
    pub fn rewrite(&self, live: impl Iterator<Item = (String, SystemTime)>) -> std::io::Result<()> {
        if !self.begin_compaction() {
            return Err(std::io::Error::other(
                "a journal compaction is already running",
            ));
        }
        self.finish_compaction(live)
    }

    /// True while a compaction runs.
    pub fn is_compacting(&self) -> bool {
        self.compacting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(j: &Journal) -> Vec<String> {
        j.entries().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn keys_appended_while_a_compaction_runs_survive_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("dedup.journal")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        for k in ["old", "live"] {
            j.append(k, later).unwrap();
        }
        assert!(j.begin_compaction());
        assert!(!j.begin_compaction(), "a second compaction began");
        j.append("during", later).unwrap();
        j.finish_compaction(std::iter::once(("live".to_owned(), later)))
            .unwrap();
        assert!(!j.is_compacting());
        j.append("after", later).unwrap();
        assert_eq!(keys(&j), ["live", "during", "after"]);
        assert!(!dir.path().join("dedup.tmp").exists());
    }

    #[test]
    fn a_cancelled_compaction_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path().join("dedup.journal")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        j.append("a", later).unwrap();
        assert!(j.begin_compaction());
        j.append("b", later).unwrap();
        j.cancel_compaction();
        assert!(j.begin_compaction(), "cancel did not end the compaction");
        j.cancel_compaction();
        assert_eq!(keys(&j), ["a", "b"]);
    }
}
