#![allow(clippy::field_reassign_with_default)]

use std::path::Path;

use super::*;

fn config(extra_source: &str, status: &str) -> Config {
    let text = format!(
        r#"
{status}
[[source]]
name = "hp"
vendor = "hyperproof"
path = "/ingest/hp"
auth = [{{ kind = "none" }}]
{extra_source}
"#
    );
    Config::from_toml(&text, Path::new("t.toml"), &["hyperproof".to_owned()]).unwrap()
}

fn info(event: Option<u64>, heartbeat: Option<u64>) -> SourceInfo {
    SourceInfo {
        name: "hp".into(),
        vendor: "hyperproof".into(),
        route: "/ingest/hp".into(),
        expect_event_secs: event,
        expect_heartbeat_secs: heartbeat,
    }
}

fn at(base: SystemTime, secs: u64) -> SystemTime {
    base + Duration::from_secs(secs)
}

const WINDOW: Duration = Duration::from_secs(900);

#[test]
fn a_source_without_expectations_is_healthy() {
    let t0 = SystemTime::now();
    let (state, _) = derive(
        &info(None, None),
        &Track::default(),
        t0,
        at(t0, 999_999),
        WINDOW,
    );
    assert_eq!(state, HealthState::Healthy);
}

#[test]
fn is_silent_once_the_heartbeat_is_overdue() {
    let t0 = SystemTime::now();
    let mut t = Track::default();
    t.last_heartbeat = Some(at(t0, 10));
    let i = info(None, Some(100));
    assert_eq!(
        derive(&i, &t, t0, at(t0, 100), WINDOW).0,
        HealthState::Healthy
    );
    assert_eq!(
        derive(&i, &t, t0, at(t0, 111), WINDOW).0,
        HealthState::Silent
    );
}

#[test]
fn silence_is_counted_from_startup_when_nothing_ever_arrived() {
    let t0 = SystemTime::now();
    let i = info(Some(60), None);
    assert_eq!(
        derive(&i, &Track::default(), t0, at(t0, 30), WINDOW).0,
        HealthState::Healthy
    );
    assert_eq!(
        derive(&i, &Track::default(), t0, at(t0, 61), WINDOW).0,
        HealthState::Silent
    );
}

#[test]
fn heartbeats_without_events_mean_paused() {
    let t0 = SystemTime::now();
    let mut t = Track::default();
    t.last_event = Some(at(t0, 0));
    t.last_heartbeat = Some(at(t0, 500));
    let i = info(Some(300), Some(1000));
    let (state, reason) = derive(&i, &t, t0, at(t0, 600), WINDOW);
    assert_eq!(state, HealthState::Paused, "{reason}");
}

#[test]
fn recent_auth_failure_without_success_since_is_failing_auth() {
    let t0 = SystemTime::now();
    let mut t = Track::default();
    t.last_accepted = Some(at(t0, 5));
    t.last_auth_failure = Some(at(t0, 10));
    let i = info(None, None);
    assert_eq!(
        derive(&i, &t, t0, at(t0, 20), WINDOW).0,
        HealthState::FailingAuth
    );
    // The window passes: no longer failing.
    assert_eq!(
        derive(&i, &t, t0, at(t0, 10 + 901), WINDOW).0,
        HealthState::Healthy
    );
    // A later success clears it.
    t.last_accepted = Some(at(t0, 15));
    assert_eq!(
        derive(&i, &t, t0, at(t0, 20), WINDOW).0,
        HealthState::Healthy
    );
}

#[test]
fn heartbeat_is_recorded_and_is_not_an_event() {
    let h = Health::new(&config("", ""));
    h.heartbeat("hp");
    let r = &h.reports()[0];
    assert!(r.last_heartbeat_at.is_some());
    assert!(r.last_event_at.is_none());
    assert_eq!(r.last_hour["heartbeats"], 1);
    assert_eq!(r.last_hour["events"], 0);
    assert!(r.recent_events.is_empty());
}

#[test]
fn lookback_keeps_only_the_latest_n_newest_first() {
    let h = Health::new(&config("", "[status]\nrecent_events = 2\n"));
    let events: Vec<Bytes> = (0..5)
        .map(|i| Bytes::from(format!("{{\"metadata\":{{\"uid\":\"e{i}\"}}}}")))
        .collect();
    h.accepted("hp", &events);
    let r = &h.reports()[0];
    assert_eq!(r.recent_events.len(), 2);
    assert_eq!(r.recent_events[0]["metadata"]["uid"], "e4");
    assert_eq!(r.recent_events[1]["metadata"]["uid"], "e3");
    assert_eq!(r.last_day["events"], 5);
}

#[test]
fn lookback_keeps_a_note_of_an_event_too_large_to_keep() {
    let h = Health::new(&config("", "[status]\nrecent_events = 2\n"));
    let big = format!("{{\"message\":\"{}\"}}", "m".repeat(200_000));
    h.accepted("hp", &[Bytes::from(big)]);
    let r = &h.reports()[0];
    let note = r.recent_events[0]["hookgate_status"].as_str().unwrap();
    assert!(note.contains("200014 bytes"), "{note}");
    assert!(r.recent_events[0].get("message").is_none());
}

#[test]
fn redaction_hides_raw_data_and_secret_named_fields() {
    let event = Bytes::from_static(
        br#"{"raw_data":"{\"k\":\"v\"}","unmapped":{"payload":{"api_key":"abc","nested":{"Authorization":"Bearer x","ok":"fine"}}},"metadata":{"uid":"u1"}}"#,
    );
    let v = redact(&event);
    let text = v.to_string();
    assert_eq!(v["raw_data"], "[redacted]");
    assert!(
        !text.contains("abc") && !text.contains("Bearer x"),
        "{text}"
    );
    assert_eq!(v["unmapped"]["payload"]["nested"]["ok"], "fine");
    assert_eq!(v["metadata"]["uid"], "u1");
}

#[test]
fn counts_forget_buckets_older_than_a_day() {
    let mut t = Track::default();
    let t0 = SystemTime::now();
    if let Some(c) = t.bucket(t0) {
        c.events = 3;
    }
    if let Some(c) = t.bucket(at(t0, 2 * 3600)) {
        c.events = 4;
    }
    assert_eq!(t.counts_since(at(t0, 2 * 3600), 60).events, 4);
    assert_eq!(t.counts_since(at(t0, 2 * 3600), DAY_MINUTES).events, 7);
    let _ = t.bucket(at(t0, 25 * 3600));
    assert_eq!(t.counts_since(at(t0, 25 * 3600), DAY_MINUTES).events, 4);
    assert!(t.minutes.len() <= DAY_MINUTES as usize);
}

#[test]
fn reconfiguring_drops_history_of_removed_sources() {
    let h = Health::new(&config("", ""));
    h.heartbeat("hp");
    let other = Config::from_toml(
        "[[source]]\nname = \"x\"\nvendor = \"hyperproof\"\npath = \"/x\"\nauth = [{ kind = \"none\" }]\n",
        Path::new("t.toml"),
        &["hyperproof".to_owned()],
    )
    .unwrap();
    h.configure(&other);
    assert_eq!(h.reports().len(), 1);
    assert_eq!(h.reports()[0].name, "x");
    assert!(h.tracks.lock().unwrap().get("hp").is_none());
}
