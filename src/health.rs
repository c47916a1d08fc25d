//! Source health: what each configured source has been doing, for `/status`.
//!
//! Input: calls from the pipeline once per request (events made durable, heartbeat, rejection)
//! and the configured expectations (`expect_event_secs`, `expect_heartbeat_secs`). Output:
//! [`SourceReport`]s with a derived [`HealthState`], counts over the last hour and day, recent
//! rejection reasons, and the last N normalized events. Memory is bounded: per source, 1440
//! one-minute buckets, 10 rejection reasons and `recent_events` events. Recent events are
//! stored as written and redacted when read ([`redact`]): `raw_data` and every field named
//! like a secret never leave this module. Never stores peer addresses or request headers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, Secret};

mod derive;
pub mod recent_failure;
mod redact;

use self::derive::derive;
pub use self::redact::redact;

/// Minutes of history kept (one day).
const DAY_MINUTES: u64 = 24 * 60;
/// Rejection reasons kept per source.
const RECENT_REJECTIONS: usize = 10;

/// The derived health of one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Traffic matches the configured expectations (or none are configured).
    Healthy,
    /// Nothing (no event, no heartbeat) for longer than expected.
    Silent,
    /// Recent requests fail authentication and none has been accepted since.
    FailingAuth,
    /// The vendor still calls (heartbeats arrive) but sends no events for longer than
    /// expected: the feed is likely paused on the vendor's side.
    Paused,
}

impl HealthState {
    /// Short label (`healthy`, `silent`, `failing_auth`, `paused`).
    pub fn label(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Silent => "silent",
            HealthState::FailingAuth => "failing_auth",
            HealthState::Paused => "paused",
        }
    }
}

/// What the status shows about one configured source.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// Source name.
    pub name: String,
    /// Vendor (parser) name.
    pub vendor: String,
    /// Route path (never with a secret path token).
    pub route: String,
    /// `expect_event_secs`.
    pub expect_event_secs: Option<u64>,
    /// `expect_heartbeat_secs`.
    pub expect_heartbeat_secs: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
struct Counts {
    events: u64,
    heartbeats: u64,
    rejections: u64,
    auth_failures: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.events += other.events;
        self.heartbeats += other.heartbeats;
        self.rejections += other.rejections;
        self.auth_failures += other.auth_failures;
    }
}

#[derive(Debug, Default)]
struct Track {
    last_event: Option<SystemTime>,
    last_heartbeat: Option<SystemTime>,
    /// Last request answered 2xx (events, duplicates or heartbeat): proves credentials work.
    last_accepted: Option<SystemTime>,
    last_auth_failure: Option<SystemTime>,
    rejections: VecDeque<(SystemTime, &'static str)>,
    /// (minute since epoch, counts), oldest first.
    minutes: VecDeque<(u64, Counts)>,
    recent: VecDeque<Bytes>,
}

impl Track {
    fn bucket(&mut self, now: SystemTime) -> Option<&mut Counts> {
        let minute = epoch_secs(now) / 60;
        while self
            .minutes
            .front()
            .is_some_and(|(m, _)| m + DAY_MINUTES <= minute)
        {
            self.minutes.pop_front();
        }
        if self.minutes.back().is_none_or(|(m, _)| *m < minute) {
            self.minutes.push_back((minute, Counts::default()));
        }
        // A clock step backwards lands in the newest bucket.
        self.minutes.back_mut().map(|(_, c)| c)
    }

    fn counts_since(&self, now: SystemTime, minutes: u64) -> Counts {
        let current = epoch_secs(now) / 60;
        let mut total = Counts::default();
        for (_, c) in self.minutes.iter().filter(|(m, _)| m + minutes > current) {
            total.add(c);
        }
        total
    }
}

#[derive(Debug)]
struct Settings {
    sources: Vec<SourceInfo>,
    recent_events: usize,
    auth_window: Duration,
    token: Option<Secret>,
}

/// The health tracker, shared by every request; lives as long as the process (a reload
/// keeps the history of sources that still exist).
#[derive(Debug)]
pub struct Health {
    started: SystemTime,
    settings: Mutex<Settings>,
    tracks: Mutex<HashMap<String, Track>>,
}

/// One source's health, ready for JSON or HTML.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    /// Source name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Route path.
    pub route: String,
    /// Derived state.
    pub health: HealthState,
    /// Why, in a sentence.
    pub reason: String,
    /// RFC 3339 time of the last event made durable.
    pub last_event_at: Option<String>,
    /// RFC 3339 time of the last heartbeat.
    pub last_heartbeat_at: Option<String>,
    /// Configured expectation, seconds.
    pub expect_event_secs: Option<u64>,
    /// Configured expectation, seconds.
    pub expect_heartbeat_secs: Option<u64>,
    /// Counts over the last 60 minutes.
    pub last_hour: Value,
    /// Counts over the last 24 hours.
    pub last_day: Value,
    /// Latest rejection reasons, newest first: `{at, reason}`.
    pub recent_rejections: Vec<Value>,
    /// Latest normalized events, newest first, redacted.
    pub recent_events: Vec<Value>,
}

/// Largest event the status lookback keeps as written; a larger one (an event of megabytes
/// would pin that much per slot for as long as it is among the last few) is kept as a note
/// of its size.
const RECENT_EVENT_MAX_BYTES: usize = 64 * 1024;

/// What the lookback keeps of one event.
fn kept_for_status(event: &Bytes) -> Bytes {
    if event.len() <= RECENT_EVENT_MAX_BYTES {
        return event.clone();
    }
    let note = serde_json::json!({
        "hookgate_status": format!(
            "an event of {} bytes, over the {RECENT_EVENT_MAX_BYTES} the status page keeps",
            event.len()
        )
    });
    Bytes::from(note.to_string())
}

impl Health {
    /// A tracker configured from `config`.
    pub fn new(config: &Config) -> Health {
        let health = Health {
            started: SystemTime::now(),
            settings: Mutex::new(Settings {
                sources: Vec::new(),
                recent_events: 0,
                auth_window: Duration::ZERO,
                token: None,
            }),
            tracks: Mutex::new(HashMap::new()),
        };
        health.configure(config);
        health
    }

    /// Applies a (re)loaded config: the source list, expectations, lookback size and token.
    /// History of removed sources is dropped.
    pub fn configure(&self, config: &Config) {
        let sources: Vec<SourceInfo> = config
            .sources
            .iter()
            .map(|s| SourceInfo {
                name: s.name.clone(),
                vendor: s.vendor.clone(),
                route: s.path.clone(),
                expect_event_secs: s.expect_event_secs,
                expect_heartbeat_secs: s.expect_heartbeat_secs,
            })
            .collect();
        if let Ok(mut tracks) = self.tracks.lock() {
            tracks.retain(|name, _| sources.iter().any(|s| &s.name == name));
            for track in tracks.values_mut() {
                while track.recent.len() > config.status.recent_events {
                    track.recent.pop_front();
                }
            }
        }
        if let Ok(mut settings) = self.settings.lock() {
            *settings = Settings {
                sources,
                recent_events: config.status.recent_events,
                auth_window: Duration::from_secs(config.status.auth_failure_window_secs),
                token: config.status.token.clone(),
            };
        }
    }

    /// The status token, if one is configured.
    pub fn token(&self) -> Option<Secret> {
        self.settings.lock().ok().and_then(|s| s.token.clone())
    }

    fn with_track(&self, source: &str, f: impl FnOnce(&mut Track, usize)) {
        let keep = self.settings.lock().map(|s| s.recent_events).unwrap_or(0);
        if let Ok(mut tracks) = self.tracks.lock() {
            f(tracks.entry(source.to_owned()).or_default(), keep);
        }
    }

    /// Records a request whose events were made durable (`events` = normalized JSON of each,
    /// possibly empty when all were duplicates). Call once per request.
    pub fn accepted(&self, source: &str, events: &[Bytes]) {
        let now = SystemTime::now();
        self.with_track(source, |t, keep| {
            t.last_accepted = Some(now);
            if !events.is_empty() {
                t.last_event = Some(now);
                if let Some(c) = t.bucket(now) {
                    c.events += events.len() as u64;
                }
            }
            let skip = events.len().saturating_sub(keep);
            for e in events.iter().skip(skip) {
                t.recent.push_back(kept_for_status(e));
                if t.recent.len() > keep {
                    t.recent.pop_front();
                }
            }
        });
    }

    /// Records the vendor's heartbeat: not an event.
    pub fn heartbeat(&self, source: &str) {
        let now = SystemTime::now();
        self.with_track(source, |t, _| {
            t.last_heartbeat = Some(now);
            t.last_accepted = Some(now);
            if let Some(c) = t.bucket(now) {
                c.heartbeats += 1;
            }
        });
    }

    /// Records a rejected request by its reason code; `auth` when authentication failed.
    pub fn rejected(&self, source: &str, reason: &'static str, auth: bool) {
        let now = SystemTime::now();
        self.with_track(source, |t, _| {
            if auth {
                t.last_auth_failure = Some(now);
            }
            t.rejections.push_back((now, reason));
            if t.rejections.len() > RECENT_REJECTIONS {
                t.rejections.pop_front();
            }
            if let Some(c) = t.bucket(now) {
                c.rejections += 1;
                c.auth_failures += u64::from(auth);
            }
        });
    }

    /// Every configured source's report, in config order.
    pub fn reports(&self) -> Vec<SourceReport> {
        self.reports_at(SystemTime::now())
    }

    fn reports_at(&self, now: SystemTime) -> Vec<SourceReport> {
        let (sources, auth_window) = match self.settings.lock() {
            Ok(s) => (s.sources.clone(), s.auth_window),
            Err(_) => return Vec::new(),
        };
        let Ok(tracks) = self.tracks.lock() else {
            return Vec::new();
        };
        let empty = Track::default();
        // The stored events are redacted (parsed, up to 64 KiB each) after the lock is
        // released: every request takes it to count itself.
        let reports: Vec<(SourceReport, Vec<bytes::Bytes>)> = sources
            .into_iter()
            .map(|info| {
                let t = tracks.get(&info.name).unwrap_or(&empty);
                let (health, reason) = derive(&info, t, self.started, now, auth_window);
                let report = SourceReport {
                    health,
                    reason,
                    last_event_at: t.last_event.map(rfc3339),
                    last_heartbeat_at: t.last_heartbeat.map(rfc3339),
                    expect_event_secs: info.expect_event_secs,
                    expect_heartbeat_secs: info.expect_heartbeat_secs,
                    last_hour: json_counts(t.counts_since(now, 60)),
                    last_day: json_counts(t.counts_since(now, DAY_MINUTES)),
                    recent_rejections: t
                        .rejections
                        .iter()
                        .rev()
                        .map(|(at, reason)| serde_json::json!({"at": rfc3339(*at), "reason": reason}))
                        .collect(),
                    recent_events: Vec::new(),
                    name: info.name,
                    vendor: info.vendor,
                    route: info.route,
                };
                (report, t.recent.iter().rev().cloned().collect())
            })
            .collect();
        drop(tracks);
        reports
            .into_iter()
            .map(|(mut report, recent)| {
                report.recent_events = recent.iter().map(redact).collect();
                report
            })
            .collect()
    }
}

fn json_counts(c: Counts) -> Value {
    serde_json::to_value(c).unwrap_or(Value::Null)
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = i64::try_from(epoch_secs(t)).unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
