//! How a source's health state is decided from what it sent and what it promised.

use std::time::{Duration, SystemTime};

use super::{HealthState, SourceInfo, Track};

/// Decides a source's state. Order matters: an auth failure explains silence, so it wins;
/// then a missing sign of life; then events missing while heartbeats still arrive (paused).
pub(super) fn derive(
    info: &SourceInfo,
    t: &Track,
    started: SystemTime,
    now: SystemTime,
    auth_window: Duration,
) -> (HealthState, String) {
    let age = |at: Option<SystemTime>| {
        now.duration_since(at.unwrap_or(started).max(started))
            .unwrap_or_default()
    };
    if let Some(failed) = t.last_auth_failure {
        let recent = now.duration_since(failed).unwrap_or_default() < auth_window;
        let since_ok = t.last_accepted.is_some_and(|ok| ok > failed);
        if recent && !since_ok {
            return (
                HealthState::FailingAuth,
                "recent requests failed authentication and none was accepted since".to_owned(),
            );
        }
    }
    let alive = t.last_event.max(t.last_heartbeat);
    if let Some(secs) = info.expect_heartbeat_secs {
        if age(alive) > Duration::from_secs(secs) {
            return (
                HealthState::Silent,
                format!("no heartbeat or event for more than {secs} s"),
            );
        }
    }
    if let Some(secs) = info.expect_event_secs {
        if age(t.last_event) > Duration::from_secs(secs) {
            let window = Duration::from_secs(info.expect_heartbeat_secs.unwrap_or(secs));
            if t.last_heartbeat.is_some() && age(t.last_heartbeat) <= window {
                return (
                    HealthState::Paused,
                    format!("heartbeats arrive but no event for more than {secs} s"),
                );
            }
            return (
                HealthState::Silent,
                format!("no event for more than {secs} s"),
            );
        }
    }
    (HealthState::Healthy, "within expectations".to_owned())
}
