//! The source-status endpoints on the admin listener: `GET /status` (JSON) and
//! `GET /status/page` (a small self-contained HTML page, no scripts, no external assets).
//!
//! Input: the request head (credentials) and the peer address. Output: the answer. Access:
//! with `[status] token` set, a request must present it as `Bearer <token>` or as the
//! password of Basic auth (compared in constant time; 401 with a Basic challenge otherwise).
//! Without a token only loopback clients are served (403 otherwise). Never echoes the token,
//! never shows `raw_data` or secret-named fields (see [`crate::health::redact`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::SystemTime;

use base64::Engine as _;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::auth::credentials::DigestSet;
use crate::health::{rfc3339, Health, HealthState, SourceReport};

/// Whether a request may read the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Serve it.
    Granted,
    /// A token is configured and the request did not present it (401).
    Unauthorized,
    /// No token is configured and the client is not on loopback (403).
    LoopbackOnly,
}

/// Decides access for a request from `peer` with `headers`.
pub fn authorize(health: &Health, headers: &HeaderMap, peer: SocketAddr) -> Access {
    let Some(token) = health.token() else {
        return if peer.ip().to_canonical().is_loopback() {
            Access::Granted
        } else {
            Access::LoopbackOnly
        };
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(credential);
    match presented {
        // Both sides digested first: a slice comparison of unequal lengths returns early,
        // which would tell the token's length.
        Some(given) if DigestSet::new([token.expose().as_bytes()]).contains(given.as_bytes()) => {
            Access::Granted
        }
        _ => Access::Unauthorized,
    }
}

/// The token from `Bearer <token>` or the password from `Basic base64(user:password)`.
fn credential(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        return text
            .split_once(':')
            .map(|(_, password)| password.to_owned());
    }
    None
}

/// Status code, extra header and body for a refused request.
pub fn refusal(
    access: Access,
) -> (
    StatusCode,
    Option<(header::HeaderName, HeaderValue)>,
    String,
) {
    match access {
        Access::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            Some((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"hookgate status\", charset=\"UTF-8\""),
            )),
            json!({"error": "authentication required"}).to_string(),
        ),
        Access::LoopbackOnly | Access::Granted => (
            StatusCode::FORBIDDEN,
            None,
            json!({"error": "status is served to loopback clients only; set [status] token"})
                .to_string(),
        ),
    }
}

/// `GET /status`.
pub fn json(health: &Health) -> String {
    let reports = health.reports();
    json!({
        "generated_at": rfc3339(SystemTime::now()),
        "version": env!("CARGO_PKG_VERSION"),
        "sources": reports,
    })
    .to_string()
}

/// `GET /status/page`: one table row per source, then each source's lookback.
pub fn page(health: &Health) -> String {
    let reports = health.reports();
    let mut html = String::with_capacity(8192);
    html.push_str(concat!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<meta http-equiv=\"refresh\" content=\"30\">",
        "<title>hookgate sources</title><style>",
        "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1f24}",
        "table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #d0d7de;",
        "padding:.4rem .6rem;text-align:left;vertical-align:top}",
        ".healthy{color:#116329}.silent{color:#9a6700}.failing_auth{color:#cf222e}",
        ".paused{color:#6e7781}.badge{font-weight:600}",
        "pre{background:#f6f8fa;padding:.5rem;overflow:auto;max-height:20rem}",
        "</style></head><body><h1>hookgate sources</h1>",
    ));
    let _ = write!(
        html,
        "<p>Generated {} · version {}</p>",
        escape(&rfc3339(SystemTime::now())),
        env!("CARGO_PKG_VERSION")
    );
    html.push_str(concat!(
        "<table id=\"sources\"><thead><tr><th>Source</th><th>Vendor</th><th>Route</th>",
        "<th>Health</th><th>Last event</th><th>Last heartbeat</th><th>Last hour</th>",
        "<th>Last day</th><th>Recent rejections</th></tr></thead><tbody>",
    ));
    for r in &reports {
        row(&mut html, r);
    }
    html.push_str("</tbody></table>");
    for r in &reports {
        let _ = write!(
            html,
            "<section class=\"lookback\" data-source=\"{0}\"><h2>{0}: latest events</h2>",
            escape(&r.name)
        );
        if r.recent_events.is_empty() {
            html.push_str("<p>No events since start.</p>");
        }
        for event in &r.recent_events {
            let pretty = serde_json::to_string_pretty(event).unwrap_or_default();
            let _ = write!(html, "<pre>{}</pre>", escape(&pretty));
        }
        html.push_str("</section>");
    }
    html.push_str("</body></html>");
    html
}

fn row(html: &mut String, r: &SourceReport) {
    let state = r.health.label();
    let counts = |v: &Value| {
        format!(
            "{} events, {} heartbeats, {} rejected ({} auth)",
            v["events"], v["heartbeats"], v["rejections"], v["auth_failures"]
        )
    };
    let rejections: Vec<String> = r
        .recent_rejections
        .iter()
        .take(3)
        .map(|v| {
            format!(
                "{} {}",
                v["reason"].as_str().unwrap_or(""),
                v["at"].as_str().unwrap_or("")
            )
        })
        .collect();
    let _ = write!(
        html,
        "<tr data-source=\"{name}\" data-health=\"{state}\"><td>{name}</td><td>{vendor}</td>\
         <td><code>{route}</code></td><td class=\"badge {state}\" title=\"{reason}\">{label}</td>\
         <td>{event}</td><td>{heartbeat}</td><td>{hour}</td><td>{day}</td><td>{rejections}</td></tr>",
        name = escape(&r.name),
        vendor = escape(&r.vendor),
        route = escape(&r.route),
        reason = escape(&r.reason),
        label = label(r.health),
        event = escape(r.last_event_at.as_deref().unwrap_or("never")),
        heartbeat = escape(r.last_heartbeat_at.as_deref().unwrap_or("never")),
        hour = escape(&counts(&r.last_hour)),
        day = escape(&counts(&r.last_day)),
        rejections = escape(&rejections.join("; ")),
    );
}

fn label(state: HealthState) -> &'static str {
    match state {
        HealthState::Healthy => "Healthy",
        HealthState::Silent => "Silent",
        HealthState::FailingAuth => "Failing auth",
        HealthState::Paused => "Paused",
    }
}

/// HTML-escapes text for element content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn health(status: &str) -> Health {
        let text = format!(
            "{status}\n[[source]]\nname = \"hp\"\nvendor = \"hyperproof\"\npath = \"/ingest/hp\"\nauth = [{{ kind = \"none\" }}]\n"
        );
        Health::new(&Config::from_toml(&text, Path::new("t"), &["hyperproof".into()]).unwrap())
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    const LOOPBACK: &str = "127.0.0.1:5000";
    const REMOTE: &str = "192.0.2.7:5000";
    const TOKEN: &str = "status-token-0123456789";

    #[test]
    fn without_a_token_only_loopback_is_served() {
        let h = health("");
        assert_eq!(
            authorize(&h, &HeaderMap::new(), LOOPBACK.parse().unwrap()),
            Access::Granted
        );
        assert_eq!(
            authorize(&h, &HeaderMap::new(), REMOTE.parse().unwrap()),
            Access::LoopbackOnly
        );
    }

    #[test]
    fn with_a_token_bearer_and_basic_are_accepted_from_anywhere() {
        let h = health(&format!("[status]\ntoken = \"{TOKEN}\""));
        let remote = REMOTE.parse().unwrap();
        assert_eq!(
            authorize(&h, &headers(&format!("Bearer {TOKEN}")), remote),
            Access::Granted
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("soc:{TOKEN}"));
        assert_eq!(
            authorize(&h, &headers(&format!("Basic {basic}")), remote),
            Access::Granted
        );
    }

    #[test]
    fn with_a_token_a_wrong_or_missing_one_is_unauthorized_even_on_loopback() {
        let h = health(&format!("[status]\ntoken = \"{TOKEN}\""));
        let lo = LOOPBACK.parse().unwrap();
        assert_eq!(authorize(&h, &HeaderMap::new(), lo), Access::Unauthorized);
        assert_eq!(
            authorize(&h, &headers("Bearer nope"), lo),
            Access::Unauthorized
        );
        assert_eq!(
            authorize(&h, &headers("Basic !!!"), lo),
            Access::Unauthorized
        );
    }

    #[test]
    fn page_escapes_event_content() {
        let h = health("");
        h.accepted(
            "hp",
            &[bytes::Bytes::from_static(
                br#"{"note":"<script>alert(1)</script>"}"#,
            )],
        );
        let page = page(&h);
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
        assert!(page.contains("data-source=\"hp\" data-health=\"healthy\""));
    }

    #[test]
    fn page_is_self_contained() {
        let page = page(&health(""));
        for external in ["<script", "<link", "src=", "http://", "https://", "@import"] {
            assert!(!page.contains(external), "{external} in {page}");
        }
    }
}
