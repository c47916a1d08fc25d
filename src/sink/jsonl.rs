//! The embedded default sink: one JSON object per line, to standard output or a file.
//!
//! A file is appended to and synced (`fdatasync`) before `send` returns, so a 2xx means the
//! lines are on disk. Dead letters are lines of the form
//! `{"dead_letter":true,"source":…,"vendor":…,"request_id":…,"uid":…,"reason_code":…,"reason":…,"raw_data":…}`.
//!
//! Group commit (issue #7): one writer thread owns the files. Requests hand it their lines
//! through a bounded queue and wait for its answer; the writer takes everything queued, writes
//! it, syncs each file once, then answers every request of that batch. While one `fdatasync`
//! runs, the next requests queue up and share the next one, so syncs per second stay bounded
//! by the disk while requests per second grow with concurrency. A request is answered only
//! after the sync that covers its bytes returned, so "2xx means durable" holds unchanged.
//! The thread needs no join at shutdown: nothing it holds was acknowledged, and
//! [`JsonlSink::flush`] waits for everything queued before it. Never logs event bytes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::envelope::{Envelope, Kind};
use super::{SinkBuildError, SinkError};
use crate::config::SinkConfig;
use crate::health::recent_failure::RecentFailure;

/// Appends waiting for the writer. Bounded so a stalled disk pushes back on requests (they
/// wait in `send`, holding no lock) instead of queuing without limit.
const QUEUE_APPENDS: usize = 4096;

/// The writer stops collecting a batch past this many bytes, so one sync never covers an
/// unbounded amount of data and the first request of a burst is not held back for long.
pub(super) const BATCH_MAX_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug)]
enum Output {
    Stdout,
    /// The file, and the path it was opened at (followed: see [`follow_path`]).
    File(File, PathBuf),
}

/// One request's lines, and where to send the outcome of the sync that covers them.
#[derive(Debug)]
struct Append {
    events: Vec<u8>,
    dead: Vec<u8>,
    done: oneshot::Sender<Result<(), SinkError>>,
}

/// JSON-lines writer: the sending side of the writer thread's queue.
#[derive(Debug)]
pub struct JsonlSink {
    queue: mpsc::Sender<Append>,
    /// The writer's last outcome, for the readiness probe.
    health: Arc<RecentFailure>,
    /// True when dead letters go to their own output.
    separate_dead_letters: bool,
}

/// The warning for a JSON-lines sink that cannot be synced: standard output in direct mode
/// (the default without `[kafka]`), where a 2xx means written to a pipe, not durable. `None`
/// for files, and in spool mode (the spool is synced before the answer).
pub fn durability_warning(config: &crate::config::Config) -> Option<String> {
    let stdout = |p: &Path| p == Path::new("-");
    let to_stdout =
        stdout(&config.sink.path) || config.sink.dead_letter_path.as_deref().is_some_and(stdout);
    (config.kafka.is_none()
        && config.delivery_mode() == crate::config::DeliveryMode::Direct
        && to_stdout)
        .then(|| {
            "[sink] writes events to standard output, which cannot be synced: a 2xx then means \
             written to the pipe, not durable. Set [sink] path (and dead_letter_path) to a file, \
             [delivery] mode = \"spool\", or configure [kafka]"
                .to_owned()
        })
}

fn open(path: &Path) -> Result<Output, SinkBuildError> {
    if path == Path::new("-") {
        return Ok(Output::Stdout);
    }
    // Its directory is made when missing, as the spool's and the dedup journal's are.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let opened = dir
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)
        })
        .and_then(|mut file| end_torn_line(&mut file, path).map(|()| file));
    let file = opened.map_err(|source| SinkBuildError::Open {
        path: path.display().to_string(),
        source,
    })?;
    Ok(Output::File(file, path.to_owned()))
}

/// Reopens a file output whose path no longer names the open file (deleted, or renamed away
/// by a log rotation): lines written to an unlinked file would be acknowledged and then lost
/// with it. The next batch goes to a new file at the path.
fn follow_path(output: &mut Output) -> Result<(), std::io::Error> {
    use std::os::unix::fs::MetadataExt;
    let Output::File(file, path) = output else {
        return Ok(());
    };
    let held = file.metadata()?;
    let same = std::fs::metadata(&*path)
        .is_ok_and(|at_path| at_path.dev() == held.dev() && at_path.ino() == held.ino());
    if same {
        return Ok(());
    }
    tracing::warn!(file = %path.display(), "the sink file was removed or replaced; writing to a new file at its path");
    match open(path) {
        Ok(reopened) => {
            *output = reopened;
            Ok(())
        }
        Err(e) => Err(std::io::Error::other(e.to_string())),
    }
}

/// Ends the file's last line when a crash cut it short (a write the sync never covered, so
/// never acknowledged): the next event would be glued to it, and a reader of lines would
/// lose an event that was. The torn fragment stays, a line of its own.
fn end_torn_line(file: &mut File, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut last = [0u8; 1];
    if len == 0 || (file.read_at(&mut last, len - 1)? == 1 && last == [b'\n']) {
        return Ok(());
    }
    file.write_all(b"\n")?;
    file.sync_data()?;
    tracing::warn!(
        file = %path.display(),
        bytes = len,
        "the file ended in a torn line (a crash during a write); ended it so the next lines start on a line of their own"
    );
    Ok(())
}

impl JsonlSink {
    /// Opens the configured outputs and starts their writer thread.
    pub fn open(config: &SinkConfig) -> Result<JsonlSink, SinkBuildError> {
        let events = open(&config.path)?;
        let dead_letters = match &config.dead_letter_path {
            Some(p) => Some(open(p)?),
            None => None,
        };
        let separate_dead_letters = dead_letters.is_some();
        let (queue, appends) = mpsc::channel(QUEUE_APPENDS);
        let health = Arc::new(RecentFailure::new());
        let writer_health = Arc::clone(&health);
        std::thread::Builder::new()
            .name("jsonl-writer".to_owned())
            .spawn(move || write_loop(appends, events, dead_letters, &writer_health))
            .map_err(|source| SinkBuildError::Open {
                path: config.path.display().to_string(),
                source,
            })?;
        Ok(JsonlSink {
            queue,
            health,
            separate_dead_letters,
        })
    }

    /// Writes and syncs `envelopes`, marking them all done; returns once the sync covering
    /// them has returned.
    pub async fn send(&self, envelopes: &[Envelope], done: &mut [bool]) -> Result<(), SinkError> {
        let mut event_lines = Vec::new();
        let mut dead_lines = Vec::new();
        for e in envelopes {
            match &e.kind {
                Kind::Event { .. } => {
                    event_lines.extend_from_slice(&e.body);
                    event_lines.push(b'\n');
                }
                Kind::DeadLetter {
                    reason_code,
                    reason,
                } => {
                    let mut line = json!({
                        "dead_letter": true,
                        "source": e.source,
                        "vendor": e.vendor,
                        "request_id": e.request_id,
                        "uid": e.uid,
                        "reason_code": reason_code,
                        "reason": reason,
                        "raw_data": String::from_utf8_lossy(&e.body),
                    });
                    // JSON text holds only Unicode: bytes that are not UTF-8 are kept exactly
                    // in base64 beside the readable (U+FFFD-substituted) `raw_data`.
                    if let (Err(_), Some(members)) =
                        (std::str::from_utf8(&e.body), line.as_object_mut())
                    {
                        members.insert("raw_data_base64".into(), STANDARD.encode(&e.body).into());
                    }
                    let target = if self.separate_dead_letters {
                        &mut dead_lines
                    } else {
                        &mut event_lines
                    };
                    target.extend_from_slice(line.to_string().as_bytes());
                    target.push(b'\n');
                }
            }
        }
        self.commit(event_lines, dead_lines).await?;
        done.iter_mut().for_each(|d| *d = true);
        Ok(())
    }

    /// Queues `events` and `dead` lines for the writer and waits for the sync that covers them.
    async fn commit(&self, events: Vec<u8>, dead: Vec<u8>) -> Result<(), SinkError> {
        let (done, synced) = oneshot::channel();
        let append = Append { events, dead, done };
        self.queue
            .send(append)
            .await
            .map_err(|_| SinkError::Closed)?;
        synced.await.map_err(|_| SinkError::Closed)?
    }

    /// Ready while the writer runs and no write failed in the last [`NOT_READY_AFTER_FAILURE`](crate::health::recent_failure::NOT_READY_AFTER_FAILURE) without a
    /// success since. A file removed or rotated away is no reason: the next batch makes it
    /// again ([`follow_path`]), and a readiness probe holding traffic off would never let one come.
    pub fn is_ready(&self) -> bool {
        !self.queue.is_closed() && self.health.is_healthy()
    }

    /// Syncs the outputs after everything queued before this call (shutdown).
    pub async fn flush(&self) -> Result<(), SinkError> {
        // An empty append still goes through a sync, after every append queued before it.
        self.commit(Vec::new(), Vec::new()).await
    }
}

/// The writer thread: batch whatever is queued, write it, sync each output once, answer.
/// Ends when every [`JsonlSink`] (every sender) is gone.
fn write_loop(
    mut appends: mpsc::Receiver<Append>,
    mut events: Output,
    mut dead_letters: Option<Output>,
    health: &RecentFailure,
) {
    let mut event_buf = Vec::new();
    let mut dead_buf = Vec::new();
    let mut waiting: Vec<oneshot::Sender<Result<(), SinkError>>> = Vec::new();
    while let Some(first) = appends.blocking_recv() {
        let mut next = Some(first);
        while let Some(append) = next.take() {
            event_buf.extend_from_slice(&append.events);
            dead_buf.extend_from_slice(&append.dead);
            waiting.push(append.done);
            if event_buf.len() + dead_buf.len() < BATCH_MAX_BYTES {
                next = appends.try_recv().ok();
            }
        }
        // Written and synced even when empty: an empty batch is a flush barrier.
        let result = write_batch(&mut events, dead_letters.as_mut(), &event_buf, &dead_buf);
        if let Err(e) = &result {
            tracing::error!(error = %crate::telemetry::causes(&e), requests = waiting.len(), "sink write failed");
        }
        health.record(result.is_ok());
        for done in waiting.drain(..) {
            // A request that gave up waiting (connection gone) simply is not told.
            let _ = done.send(result.as_ref().map(|_| ()).map_err(copy_error));
        }
        event_buf.clear();
        dead_buf.clear();
    }
}

/// One sync outcome is shared by every request of the batch; `io::Error` is not `Clone`.
fn copy_error(e: &std::io::Error) -> SinkError {
    SinkError::Io(std::io::Error::new(e.kind(), e.to_string()))
}

/// Writes and syncs a batch, all or nothing: when a write or sync fails (a full disk), each
/// file is cut back to its length before the batch, so no torn line is left for the next
/// batch to be glued to, and no line of a refused request stays to be written again by its
/// retry.
fn write_batch(
    events: &mut Output,
    dead_letters: Option<&mut Output>,
    event_buf: &[u8],
    dead_buf: &[u8],
) -> Result<(), std::io::Error> {
    follow_path(events)?;
    let events_mark = mark(events)?;
    let result = write_synced(events, event_buf).and_then(|()| match dead_letters {
        Some(dead) if !dead_buf.is_empty() => {
            follow_path(dead)?;
            let dead_mark = mark(dead)?;
            write_synced(dead, dead_buf).inspect_err(|_| rewind(dead, dead_mark))
        }
        _ => Ok(()),
    });
    if result.is_err() {
        rewind(events, events_mark);
    }
    result
}

/// A file's length before a batch (`None` for stdout, which cannot be cut back).
fn mark(output: &Output) -> Result<Option<u64>, std::io::Error> {
    match output {
        Output::Stdout => Ok(None),
        Output::File(file, _) => Ok(Some(file.metadata()?.len())),
    }
}

/// Cuts a file back to `mark` after a failed batch.
fn rewind(output: &mut Output, mark: Option<u64>) {
    if let (Output::File(file, _), Some(len)) = (output, mark) {
        if let Err(e) = file.set_len(len).and_then(|()| file.sync_data()) {
            tracing::error!(error = %e, "cannot cut the sink file back after a failed write");
        }
    }
}

fn write_synced(output: &mut Output, bytes: &[u8]) -> Result<(), std::io::Error> {
    match output {
        Output::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()
        }
        Output::File(file, _) => {
            file.write_all(bytes)?;
            file.sync_data()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::normalize::OcsfEvent;
    use crate::sink::{envelope, Batch, DeadLetter, Record};

    #[test]
    fn a_torn_last_line_is_ended_before_anything_is_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        for (before, after) in [
            (&b""[..], &b""[..]),
            (b"{\"a\":1}\n", b"{\"a\":1}\n"),
            (b"{\"a\":1}\n{\"cla", b"{\"a\":1}\n{\"cla\n"),
        ] {
            std::fs::write(&path, before).unwrap();
            let Output::File(mut file, _) = open(&path).unwrap() else {
                panic!("a file")
            };
            assert_eq!(std::fs::read(&path).unwrap(), after);
            file.write_all(b"{\"b\":2}\n").unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.ends_with("\n{\"b\":2}\n") || text == "{\"b\":2}\n",
                "{text:?}"
            );
        }
    }

    /// Sends a request's batch the way the sink does, checking every envelope is marked done.
    async fn deliver(sink: &JsonlSink, batch: Batch) -> Result<(), SinkError> {
        let envelopes = envelope::from_batch(batch);
        let mut done = vec![false; envelopes.len()];
        sink.send(&envelopes, &mut done).await?;
        assert!(done.iter().all(|d| *d));
        Ok(())
    }

    fn event(uid: &str) -> Record {
        Record::Event(OcsfEvent {
            uid: uid.to_owned(),
            window: None,
            class_uid: 0,
            class_name: "Base Event",
            json: bytes::Bytes::from(format!("{{\"uid\":\"{uid}\"}}")),
        })
    }

    fn batch(records: Vec<Record>) -> Batch {
        Batch {
            source: Arc::from("s"),
            vendor: Arc::from("v"),
            request_id: "r".to_owned(),
            records,
        }
    }

    fn sink_in(dir: &Path, dead: bool) -> JsonlSink {
        JsonlSink::open(&SinkConfig {
            path: dir.join("events.jsonl"),
            dead_letter_path: dead.then(|| dir.join("dead.jsonl")),
        })
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_deliveries_each_land_once_as_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(sink_in(dir.path(), false));
        let mut tasks = Vec::new();
        for t in 0..16 {
            let sink = Arc::clone(&sink);
            tasks.push(tokio::spawn(async move {
                for n in 0..50 {
                    let records = vec![event(&format!("{t}-{n}-a")), event(&format!("{t}-{n}-b"))];
                    deliver(&sink, batch(records)).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 16 * 50 * 2);
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 16 * 50 * 2, "a line was written twice");
        // A request's lines stay together and in order.
        let a = text.find("\"0-7-a\"").unwrap();
        let b = text.find("\"0-7-b\"").unwrap();
        assert!(b > a && text[a..b].matches('\n').count() == 1);
    }

    #[tokio::test]
    async fn bytes_are_in_the_file_when_deliver_returns() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink_in(dir.path(), false);
        deliver(&sink, batch(vec![event("x")])).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(text, "{\"uid\":\"x\"}\n");
        sink.flush().await.unwrap();
    }

    /// As the spool's and the journal's: a path whose directories are missing gets them.
    #[tokio::test]
    async fn missing_directories_of_the_output_are_made() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink_in(&dir.path().join("a/b"), true);
        deliver(&sink, batch(vec![event("x")])).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("a/b/events.jsonl")).unwrap();
        assert_eq!(text, "{\"uid\":\"x\"}\n");
        assert!(dir.path().join("a/b/dead.jsonl").is_file());
    }

    #[tokio::test]
    async fn dead_letters_go_to_their_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink_in(dir.path(), true);
        let dead = Record::DeadLetter(DeadLetter {
            uid: "d".to_owned(),
            window: None,
            reason_code: "unmappable",
            reason: "no".to_owned(),
            raw: bytes::Bytes::from_static(b"{}"),
        });
        deliver(&sink, batch(vec![event("x"), dead])).await.unwrap();
        let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        assert_eq!(events.lines().count(), 1);
        let line: serde_json::Value = serde_json::from_str(dead.trim()).unwrap();
        assert_eq!(line["dead_letter"], true);
        assert_eq!(line["raw_data"], "{}");
    }

    #[tokio::test]
    async fn a_batch_that_fails_leaves_no_line_behind() {
        // Dead letters to a device that is always full: the request fails, and the events
        // file holds no line of it (its retry would write them a second time).
        let dir = tempfile::tempdir().unwrap();
        let sink = JsonlSink::open(&SinkConfig {
            path: dir.path().join("events.jsonl"),
            dead_letter_path: Some(PathBuf::from("/dev/full")),
        })
        .unwrap();
        deliver(&sink, batch(vec![event("before")])).await.unwrap();
        let dead = Record::DeadLetter(DeadLetter {
            uid: "d".to_owned(),
            window: None,
            reason_code: "unmappable",
            reason: "no".to_owned(),
            raw: bytes::Bytes::from_static(b"{}"),
        });
        assert!(deliver(&sink, batch(vec![event("refused"), dead]))
            .await
            .is_err());
        deliver(&sink, batch(vec![event("after")])).await.unwrap();
        let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert_eq!(text, "{\"uid\":\"before\"}\n{\"uid\":\"after\"}\n");
    }

    #[tokio::test]
    async fn still_ready_once_the_file_is_removed_and_the_next_write_makes_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink_in(dir.path(), false);
        let file = dir.path().join("events.jsonl");
        std::fs::remove_file(&file).unwrap();
        // Ready: a probe holding traffic off would keep the next write from ever coming.
        assert!(sink.is_ready());
        deliver(&sink, batch(vec![event("after")])).await.unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"after\""), "{text}");
    }

    #[tokio::test]
    async fn not_ready_after_a_failed_write_until_one_succeeds() {
        // /dev/full opens and refuses every write with ENOSPC: a full disk.
        let sink = JsonlSink::open(&SinkConfig {
            path: PathBuf::from("/dev/full"),
            dead_letter_path: None,
        })
        .unwrap();
        assert!(sink.is_ready());
        let err = deliver(&sink, batch(vec![event("x")])).await.unwrap_err();
        assert!(matches!(err, SinkError::Io(_)), "{err:?}");
        assert!(!sink.is_ready());
    }
}
