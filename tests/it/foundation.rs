//! Foundation scenarios: route, body, split, sink, shutdown, `check`.

use crate::harness::{hyprwatch_signature, Gateway};

pub const HW_SECRET: &str = "whsec_test_foundation";

pub fn hyprwatch_source() -> String {
    format!(
        r#"
[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = [{{ kind = "hmac", secrets = ["{HW_SECRET}"] }}]
"#
    )
}

#[test]
fn accepted_event_is_written_by_the_sink() {
    let gw = Gateway::start(&hyprwatch_source());
    let body = br#"{"id":"evt_1","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{"host_id":"h1","hostname":"server-01","platform":"linux"}}"#;
    let resp = reqwest::blocking::Client::new()
        .post(gw.url("/ingest/hyprwatch"))
        .header("content-type", "application/json")
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, body),
        )
        .body(body.to_vec())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let events = gw.wait_events(1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["metadata"]["uid"], "evt_1");
    assert_eq!(events[0]["raw_data"], std::str::from_utf8(body).unwrap());
}
