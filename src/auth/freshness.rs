//! Stage 5b, freshness: with an `hmac` check's `max_age_s`, every event's signed send time
//! (the parser's `[id] sent_at`) must be recent.
//!
//! Hyprwatch signs the body alone: no timestamp header, no id in the signed text. A request
//! captured on its way can be sent again, and once the dedup window has passed it would be
//! published again. Its body's own `timestamp` is covered by the signature, so an event sent
//! longer ago than the limit is a replay (or a delivery far later than the vendor's retries
//! ever come). Runs after split (the time is in the body, read only once the signature over it
//! passed) and before dedup. Input: the source's limit, its parser and the request's events.
//! Output: the events, their dedup windows raised to cover the limit; or [`AuthError`] (401).

use std::time::Duration;

use super::AuthError;
use crate::parse::Parser;
use crate::split::RawEvent;

/// How far ahead of the gateway's clock a send time may be (the vendor's clock skew), and the
/// margin the dedup window keeps past the age limit for the same reason.
pub const AHEAD: Duration = Duration::from_secs(3600);

/// Refuses the request unless every event's send time is within `max_age` before `now_ms` and
/// at most [`AHEAD`] after it; then makes each event's dedup window at least `max_age` plus
/// [`AHEAD`], so a replay the age check lets through is always a duplicate.
pub fn check(
    max_age: Duration,
    parser: &Parser,
    events: &mut [RawEvent<'_>],
    now_ms: i64,
) -> Result<(), AuthError> {
    let max_age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    let ahead_ms = i64::try_from(AHEAD.as_millis()).unwrap_or(i64::MAX);
    for event in events.iter() {
        let sent = parser
            .sent_at_ms(&event.value)
            .ok_or(AuthError::EventTimeMissing)?;
        if now_ms.saturating_sub(sent) > max_age_ms {
            return Err(AuthError::EventTooOld);
        }
        if sent.saturating_sub(now_ms) > ahead_ms {
            return Err(AuthError::EventTimeAhead);
        }
    }
    let keep = max_age.saturating_add(AHEAD);
    for event in events.iter_mut() {
        // `None` (never forgotten) already covers it.
        if let Some(window) = &mut event.key.window {
            *window = (*window).max(keep);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Catalog;
    use crate::split::{self, Split};

    const NOW_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn events_of(body: &'static str) -> (std::sync::Arc<Parser>, Vec<RawEvent<'static>>) {
        let parser = Catalog::load(None).unwrap().get("hyprwatch").unwrap();
        let bytes: &'static bytes::Bytes =
            Box::leak(Box::new(bytes::Bytes::from_static(body.as_bytes())));
        let Ok(Split::Events(events)) = split::events(bytes, &parser, &http::HeaderMap::new(), 10)
        else {
            panic!("not events");
        };
        (parser, events)
    }

    #[test]
    fn refuses_an_event_sent_longer_ago_than_the_limit() {
        let six_hours = Duration::from_secs(6 * 3600);
        let (parser, mut events) = events_of(
            r#"{"id":"evt_1","event":"host.online","timestamp":"2025-12-31T17:59:00Z","data":{}}"#,
        );
        assert!(matches!(
            check(six_hours, &parser, &mut events, NOW_MS),
            Err(AuthError::EventTooOld)
        ));
        let (parser, mut events) = events_of(
            r#"{"id":"evt_1","event":"host.online","timestamp":"2025-12-31T18:01:00Z","data":{}}"#,
        );
        check(six_hours, &parser, &mut events, NOW_MS).unwrap();
        // Hyprwatch's window is 3 h; it now outlasts the age limit.
        assert_eq!(events[0].key.window, Some(six_hours + AHEAD));
    }

    #[test]
    fn refuses_a_send_time_far_ahead_or_missing() {
        let limit = Duration::from_secs(3600);
        let (parser, mut events) = events_of(
            r#"{"id":"evt_1","event":"host.online","timestamp":"2026-01-01T01:01:00Z","data":{}}"#,
        );
        assert!(matches!(
            check(limit, &parser, &mut events, NOW_MS),
            Err(AuthError::EventTimeAhead)
        ));
        for body in [
            r#"{"id":"evt_1","event":"host.online","data":{}}"#,
            r#"{"id":"evt_1","event":"host.online","timestamp":"yesterday","data":{}}"#,
        ] {
            let (parser, mut events) = events_of(body);
            assert!(matches!(
                check(limit, &parser, &mut events, NOW_MS),
                Err(AuthError::EventTimeMissing)
            ));
        }
    }

    #[test]
    fn reads_an_epoch_in_seconds_or_milliseconds() {
        let limit = Duration::from_secs(60);
        for ts in ["1767225590", "1767225590000"] {
            let body: &'static str = Box::leak(
                format!(r#"{{"id":"e","event":"host.online","timestamp":{ts},"data":{{}}}}"#)
                    .into_boxed_str(),
            );
            let (parser, mut events) = events_of(body);
            check(limit, &parser, &mut events, NOW_MS).unwrap();
        }
    }
}
