//! The memory dedup store's journal: committed keys with their wall-clock expiry.
//!
//! Input: `(scoped key, expiry)` on each commit. Output: the same pairs at startup. One JSON
//! array per line, `["<key>", <expires unix ms>]`; a torn or unreadable line is skipped (its
//! key is forgotten, never invented). Rewritten (temporary file, then rename) at startup and
//! whenever it holds more than twice `max_entries` lines. Never holds event bodies.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An append-only file of committed dedup keys.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<Option<File>>,
    lines: AtomicUsize,
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
            file: Mutex::new(Some(file)),
            lines: AtomicUsize::new(0),
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
        let mut guard = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        if let Some(file) = guard.as_mut() {
            file.write_all(&buf)?;
        }
        self.lines.fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    /// True when the file holds many more lines than live keys.
    pub fn needs_compaction(&self, max_entries: usize) -> bool {
        self.lines.load(Ordering::Relaxed) > max_entries.saturating_mul(2)
    }

    /// Replaces the file with exactly `live`.
    pub fn rewrite(&self, live: impl Iterator<Item = (String, SystemTime)>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        let mut count = 0usize;
        for (key, expires) in live {
            serde_json::to_writer(&mut out, &(key, unix_ms(expires)))?;
            out.write_all(b"\n")?;
            count += 1;
        }
        out.flush()?;
        out.get_ref().sync_all()?;
        let mut guard = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        fs::rename(&tmp, &self.path)?;
        *guard = Some(OpenOptions::new().append(true).open(&self.path)?);
        self.lines.store(count, Ordering::Relaxed);
        Ok(())
    }
}
