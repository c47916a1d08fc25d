//! The info-level log of shed requests (429/503 from a limit): at most one line a second,
//! counting by reason every request shed since the last line.
//!
//! A line per request would cost most, and flood the log, exactly when the gateway is
//! overloaded; each shed request still gets a debug line. A shed a second or more after the
//! last line is written at once, naming its request id; those that follow within the second
//! are counted and written by [`flush_every_second`] once the second is over, so none waits
//! for the next shed to be told.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::LimitError;

/// Requests shed since the last line, by reason: overloaded, over the source's rate, over the
/// address's rate, over the address's in-flight cap ([`slot`]).
static SINCE_LINE: [AtomicU64; 4] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];
/// When the last line was written: milliseconds since [`EPOCH`], plus one (0: never).
static LINE_AT_MS: AtomicU64 = AtomicU64::new(0);
/// The monotonic clock's origin for [`LINE_AT_MS`].
static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
/// Least time between two lines.
const LINE_EVERY_MS: u64 = 1000;

fn slot(error: &LimitError) -> usize {
    match error {
        LimitError::Overloaded { .. } => 0,
        LimitError::SourceRate { .. } => 1,
        LimitError::AddressRate { .. } => 2,
        LimitError::AddressInFlight { .. } => 3,
    }
}

/// Milliseconds since [`EPOCH`], plus one (so the first call is never 0).
fn now_ms() -> u64 {
    let epoch = EPOCH.get_or_init(std::time::Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// Takes the line when none was written in the last [`LINE_EVERY_MS`] (a monotonic clock,
/// so two lines are never closer, whatever the wall clock does).
fn take_line(now_ms: u64) -> bool {
    let last = LINE_AT_MS.load(Ordering::Relaxed);
    (last == 0 || now_ms >= last + LINE_EVERY_MS)
        && LINE_AT_MS
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// The counts since the last line, reset.
fn take_counts() -> [u64; 4] {
    SINCE_LINE.each_ref().map(|c| c.swap(0, Ordering::Relaxed))
}

/// Logs one shed request (see the module doc).
pub fn log_shed(error: &LimitError, source: &str, request_id: &str) {
    tracing::debug!(reason = error.code(), source, request_id, "request shed");
    if let Some(counter) = SINCE_LINE.get(slot(error)) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    if take_line(now_ms()) {
        let [overloaded, rate_limited_source, rate_limited_address, in_flight_limited_address] =
            take_counts();
        tracing::info!(
            shed =
                overloaded + rate_limited_source + rate_limited_address + in_flight_limited_address,
            overloaded,
            rate_limited_source,
            rate_limited_address,
            in_flight_limited_address,
            reason = error.code(),
            source,
            request_id,
            "requests shed by the limits (this one and those since the last such line)"
        );
    }
}

/// Writes the line for requests shed since the last one, if any and if this second has none
/// yet.
fn flush() {
    if SINCE_LINE.iter().all(|c| c.load(Ordering::Relaxed) == 0) || !take_line(now_ms()) {
        return;
    }
    let [overloaded, rate_limited_source, rate_limited_address, in_flight_limited_address] =
        take_counts();
    let shed = overloaded + rate_limited_source + rate_limited_address + in_flight_limited_address;
    if shed > 0 {
        tracing::info!(
            shed,
            overloaded,
            rate_limited_source,
            rate_limited_address,
            in_flight_limited_address,
            "requests shed by the limits since the last such line"
        );
    }
}

/// Writes pending counts once a second until `stop`.
pub async fn flush_every_second(stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                flush();
            }
            () = stop.cancelled() => {
                flush();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_lines_are_never_closer_than_a_second_on_the_monotonic_clock() {
        // The only test that takes lines (log_shed runs in the binary's tests only).
        let t = now_ms() + 5_000;
        assert!(take_line(t));
        assert!(!take_line(t + 1));
        assert!(!take_line(t + LINE_EVERY_MS - 1));
        assert!(take_line(t + LINE_EVERY_MS));
        assert!(!take_line(t + LINE_EVERY_MS + 20));
    }

    #[test]
    fn each_reason_has_its_own_counter_in_the_order_the_line_names_them() {
        let errors = [
            LimitError::Overloaded {
                retry_after: Duration::ZERO,
            },
            LimitError::SourceRate {
                retry_after: Duration::ZERO,
            },
            LimitError::AddressRate {
                retry_after: Duration::ZERO,
            },
            LimitError::AddressInFlight {
                retry_after: Duration::ZERO,
            },
        ];
        let order = [
            "overloaded",
            "rate_limited_source",
            "rate_limited_address",
            "in_flight_limited_address",
        ];
        for e in &errors {
            assert_eq!(order.get(slot(e)), Some(&e.code()));
        }
    }
}
