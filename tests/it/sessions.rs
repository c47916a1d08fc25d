//! Hoop's session cache across what separates a `session.close` from its `session.open`: a
//! config reload, another replica sharing the Redis dedup store, a restart. The close carries
//! no user; each scenario checks the published close has the open's user and connection.
//! The Redis scenarios need `HOOKGATE_TEST_REDIS` (skipped loudly without).

use std::time::Duration;

use crate::harness::{wait_until, Gateway};
use crate::kafka::shared_redis;

const KEY: &str = "hoop-test-key-0123456789";

fn hoop_source(extra: &str) -> String {
    format!(
        "{extra}\n[[source]]\nname = \"hoop\"\nvendor = \"hoop\"\npath = \"/ingest/hoop\"\n\
         auth = [{{ kind = \"header\", name = \"X-Key\", values = [\"{KEY}\"] }}]\n"
    )
}

fn fixture(case: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hoop");
    std::fs::read_to_string(root.join(case).join("body.json")).unwrap()
}

/// Posts a fixture's body as Svix would deliver it (message id `msg`).
fn post(gw: &Gateway, case: &str, msg: &str) {
    let resp = reqwest::blocking::Client::new()
        .post(gw.url("/ingest/hoop"))
        .header("content-type", "application/json")
        .header("x-key", KEY)
        .header("svix-id", msg)
        .header("svix-timestamp", "1721750500")
        .body(fixture(case))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{case}");
}

/// The published `session.close` event of `gw`, once there.
fn close_event(gw: &Gateway) -> serde_json::Value {
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        found = gw
            .events()
            .into_iter()
            .find(|e| e["metadata"]["event_code"] == "session.close");
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no session.close published: {:?}", gw.events()))
}

fn assert_resolved(close: &serde_json::Value) {
    assert_eq!(close["user"]["name"], "alice@example.com", "{close}");
    assert_eq!(close["service"]["name"], "pg-prod", "{close}");
    assert!(close["metadata"].get("labels").is_none(), "{close}");
}

#[test]
fn a_close_after_a_config_reload_still_finds_its_open() {
    let gw = Gateway::start(&hoop_source(""));
    post(&gw, "session-open", "msg_open");
    // A reload compiles the parsers anew; the running cache must carry over.
    let before = gw.logs().matches("config reloaded").count();
    gw.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || gw
            .logs()
            .matches("config reloaded")
            .count()
            > before),
        "{}",
        gw.logs()
    );
    post(&gw, "session-close-cache-hit", "msg_close");
    assert_resolved(&close_event(&gw));
}

#[test]
fn a_close_finds_the_open_another_replica_took_or_this_one_before_a_restart() {
    let test = "a_close_finds_the_open_another_replica_took_or_this_one_before_a_restart";
    let Some(redis) = shared_redis(test) else {
        return;
    };
    let prefix = format!("s-{}:", uuid::Uuid::new_v4().simple());
    let dedup = format!(
        "[dedup]\nbackend = \"redis\"\nredis_url = \"{redis}\"\nredis_prefix = \"{prefix}\"\n"
    );
    let a = Gateway::start(&hoop_source(&dedup));
    let b = Gateway::start(&hoop_source(&dedup));
    post(&a, "session-open", "msg_open");
    // The open is written to Redis behind the answer: wait until it is there.
    let key = format!("{prefix}session:hoop\n7a1c6e0e-5f4e-4b7e-9d2a-0b9c1f2e3d4a");
    let mut conn = redis::Client::open(redis.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || redis::cmd("EXISTS")
        .arg(&key)
        .query::<bool>(&mut conn)
        .unwrap_or(false)));
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!(
        ttl > 23 * 3600 * 1000,
        "kept for the cache's 24 h: {ttl} ms"
    );
    post(&b, "session-close-cache-hit", "msg_close");
    assert_resolved(&close_event(&b));
    // A restarted instance has no local entries; Redis still has the open.
    drop(b);
    let c = Gateway::start(&hoop_source(&dedup));
    post(&c, "session-close-cache-hit", "msg_close_again");
    assert_resolved(&close_event(&c));
}
