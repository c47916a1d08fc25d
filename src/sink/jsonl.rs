//! The embedded default sink: one JSON object per line, to standard output or a file.
//!
//! A file is appended to and synced (`fdatasync`) before `deliver` returns, so a 2xx means the
//! lines are on disk. Dead letters are lines of the form
//! `{"dead_letter":true,"source":…,"vendor":…,"request_id":…,"uid":…,"reason_code":…,"reason":…,"raw_data":…}`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::envelope::{Envelope, Kind};
use super::{SinkBuildError, SinkError};
use crate::config::SinkConfig;

#[derive(Debug)]
enum Output {
    Stdout,
    File { file: File, path: PathBuf },
}

/// JSON-lines writer.
#[derive(Debug)]
pub struct JsonlSink {
    events: Arc<Mutex<Output>>,
    dead_letters: Option<Arc<Mutex<Output>>>,
}

fn open(path: &Path) -> Result<Output, SinkBuildError> {
    if path == Path::new("-") {
        return Ok(Output::Stdout);
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| SinkBuildError::Open {
            path: path.display().to_string(),
            source,
        })?;
    Ok(Output::File {
        file,
        path: path.to_owned(),
    })
}

impl JsonlSink {
    /// Opens the configured outputs.
    pub fn open(config: &SinkConfig) -> Result<JsonlSink, SinkBuildError> {
        let events = Arc::new(Mutex::new(open(&config.path)?));
        let dead_letters = match &config.dead_letter_path {
            Some(p) => Some(Arc::new(Mutex::new(open(p)?))),
            None => None,
        };
        Ok(JsonlSink {
            events,
            dead_letters,
        })
    }

    /// Writes and syncs `envelopes`, marking them all done.
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
                    let line = json!({
                        "dead_letter": true,
                        "source": e.source,
                        "vendor": e.vendor,
                        "request_id": e.request_id,
                        "uid": e.uid,
                        "reason_code": reason_code,
                        "reason": reason,
                        "raw_data": String::from_utf8_lossy(&e.body),
                    });
                    let target = if self.dead_letters.is_some() {
                        &mut dead_lines
                    } else {
                        &mut event_lines
                    };
                    target.extend_from_slice(line.to_string().as_bytes());
                    target.push(b'\n');
                }
            }
        }
        let events = Arc::clone(&self.events);
        let dead = self.dead_letters.clone();
        tokio::task::spawn_blocking(move || {
            if !event_lines.is_empty() {
                write_synced(&events, &event_lines)?;
            }
            if let (Some(dead), false) = (dead, dead_lines.is_empty()) {
                write_synced(&dead, &dead_lines)?;
            }
            Ok::<(), SinkError>(())
        })
        .await
        .map_err(|_| SinkError::Closed)??;
        done.iter_mut().for_each(|d| *d = true);
        Ok(())
    }

    /// A file output is ready while its file still exists; stdout always is.
    pub fn is_ready(&self) -> bool {
        match self.events.lock() {
            Ok(guard) => match &*guard {
                Output::Stdout => true,
                Output::File { path, .. } => path.exists(),
            },
            Err(_) => false,
        }
    }

    /// Syncs the outputs.
    pub async fn flush(&self) -> Result<(), SinkError> {
        let events = Arc::clone(&self.events);
        let dead = self.dead_letters.clone();
        tokio::task::spawn_blocking(move || {
            write_synced(&events, b"")?;
            if let Some(dead) = dead {
                write_synced(&dead, b"")?;
            }
            Ok(())
        })
        .await
        .map_err(|_| SinkError::Closed)?
    }
}

fn write_synced(output: &Mutex<Output>, bytes: &[u8]) -> Result<(), SinkError> {
    let mut guard = output.lock().map_err(|_| SinkError::Closed)?;
    match &mut *guard {
        Output::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).map_err(SinkError::Io)?;
            out.flush().map_err(SinkError::Io)
        }
        Output::File { file, .. } => {
            file.write_all(bytes).map_err(SinkError::Io)?;
            file.sync_data().map_err(SinkError::Io)
        }
    }
}
