//! Operations scenarios: rate limits (429), load shedding (503), heartbeats, `/status`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::foundation::{hyprwatch_source, HW_SECRET};
use crate::harness::{hyprwatch_signature, wait_until, Gateway};

const STATUS_TOKEN: &str = "status-token-for-tests-0001";

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn post_hyprwatch(gw: &Gateway, id: &str) -> reqwest::blocking::Response {
    let body = format!(
        r#"{{"id":"{id}","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{{"host_id":"h1","hostname":"server-01","platform":"linux"}},"api_key":"do-not-show"}}"#
    );
    client()
        .post(gw.url("/ingest/hyprwatch"))
        .header("content-type", "application/json")
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .unwrap()
}

fn status(gw: &Gateway) -> serde_json::Value {
    let resp = client()
        .get(gw.admin_url("/status"))
        .bearer_auth(STATUS_TOKEN)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().unwrap()
}

fn hyperproof_source() -> String {
    format!(
        r#"
[status]
token = "{STATUS_TOKEN}"

[[source]]
name = "hp"
vendor = "hyperproof"
path = "/ingest/hyperproof"
auth = [{{ kind = "none" }}]
expect_heartbeat_secs = 90000
"#
    )
}

#[test]
fn source_over_its_rate_gets_429_with_retry_after() {
    let gw = Gateway::start(&format!(
        "[limits]\nper_source = {{ requests_per_second = 1, burst = 2 }}\n{}",
        hyprwatch_source()
    ));
    let statuses: Vec<_> = (0..5)
        .map(|i| post_hyprwatch(&gw, &format!("evt_rate_{i}")))
        .collect();
    let limited: Vec<_> = statuses.iter().filter(|r| r.status() == 429).collect();
    assert!(
        !limited.is_empty(),
        "no 429 among {:?}",
        statuses.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    let retry: u64 = limited[0].headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let text = gw.metrics();
    assert!(
        text.contains(
            "hookgate_rejections_total{reason=\"rate_limited_source\",source=\"hw\",stage=\"limits\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("hookgate_requests_total{source=\"hw\",status=\"429\"}"),
        "{text}"
    );
}

#[test]
fn client_address_over_its_rate_gets_429() {
    let gw = Gateway::start(&format!(
        "[limits]\nper_address = {{ requests_per_second = 1, burst = 1 }}\n{}",
        hyprwatch_source()
    ));
    assert_eq!(post_hyprwatch(&gw, "evt_a1").status(), 200);
    let second = post_hyprwatch(&gw, "evt_a2");
    assert_eq!(second.status(), 429);
    assert!(second.headers().contains_key("retry-after"));
    assert!(gw.metrics().contains("reason=\"rate_limited_address\""));
    // Three more, then quiet: every shed request is told at info within about a second, each
    // counted under its own reason (the first at once, the rest by the next second's line).
    for i in 3..6 {
        assert_eq!(post_hyprwatch(&gw, &format!("evt_a{i}")).status(), 429);
    }
    let counted = |logs: &str| -> u64 {
        logs.lines()
            .filter(|l| l.contains("requests shed by the limits"))
            .map(|l| {
                assert!(l.contains("rate_limited_source=0"), "{l}");
                assert!(l.contains("overloaded=0"), "{l}");
                let n = l.split("rate_limited_address=").nth(1).unwrap_or_default();
                n.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|d| d.parse::<u64>().ok())
                    .unwrap_or_default()
            })
            .sum()
    };
    assert!(
        wait_until(Duration::from_secs(5), || counted(&gw.logs()) == 4),
        "{}",
        gw.logs()
    );
}

#[test]
fn requests_beyond_the_in_flight_cap_are_shed_with_503() {
    let gw = Gateway::start(&format!(
        "[limits]\nmax_in_flight_requests = 1\nmax_in_flight_per_address = 2\nshed_retry_after_secs = 7\n{}",
        hyprwatch_source()
    ));
    // Hold the only slot: headers promise 100 bytes, only 10 arrive (yet).
    let mut slow = TcpStream::connect(gw.addr).unwrap();
    write!(
        slow,
        "POST /ingest/hyprwatch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"id\":\"ev"
    )
    .unwrap();
    slow.flush().unwrap();
    assert!(wait_until(Duration::from_secs(10), || gw
        .metrics()
        .contains("hookgate_requests_in_flight 1")));
    let shed = post_hyprwatch(&gw, "evt_shed");
    assert_eq!(shed.status(), 503);
    assert_eq!(shed.headers()["retry-after"], "7");
    // Logged at info, a line a second at most with how many were shed since the last.
    let id = shed.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        wait_until(Duration::from_secs(5), || gw.logs().lines().any(|l| l
            .contains("requests shed by the limits")
            && l.contains(&id))),
        "{}",
        gw.logs()
    );
    assert!(gw.metrics().contains("reason=\"overloaded\""));
    // The slot frees when the slow request ends; the gateway accepts again.
    drop(slow);
    assert!(wait_until(Duration::from_secs(10), || gw
        .metrics()
        .contains("hookgate_requests_in_flight 0")));
    assert_eq!(post_hyprwatch(&gw, "evt_after").status(), 200);
}

#[test]
fn one_address_with_slow_bodies_cannot_take_every_slot() {
    // Behind a trusted loopback proxy, so the test can speak for two client addresses. No
    // per-address rate: the share of the in-flight cap holds without one.
    let gw = Gateway::start(&format!(
        "[trust]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [limits]\nmax_in_flight_requests = 4\nshed_retry_after_secs = 3\n{}",
        hyprwatch_source()
    ));
    // A forger's requests to a signature source: heads promising bodies that never come.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut slow = TcpStream::connect(gw.addr).unwrap();
        write!(
            slow,
            "POST /ingest/hyprwatch HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 203.0.113.9\r\n\
             x-hyprwatch-signature: sha256=00\r\ncontent-length: 100\r\n\r\n{{"
        )
        .unwrap();
        slow.flush().unwrap();
        held.push(slow);
    }
    assert!(wait_until(Duration::from_secs(10), || gw
        .metrics()
        .contains("hookgate_requests_in_flight 2")));
    // Its third is refused (half the slots is its share), with the address's reason...
    let body = r#"{"id":"evt_inflight","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{"host_id":"h1","hostname":"server-01","platform":"linux"}}"#;
    let send = |from: &str| {
        client()
            .post(gw.url("/ingest/hyprwatch"))
            .header("x-forwarded-for", from)
            .header(
                "x-hyprwatch-signature",
                hyprwatch_signature(HW_SECRET, body.as_bytes()),
            )
            .body(body)
            .send()
            .unwrap()
    };
    let refused = send("203.0.113.9");
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "3");
    let text = refused.text().unwrap();
    assert!(text.contains("request_id"), "{text}");
    assert!(gw
        .metrics()
        .contains("reason=\"in_flight_limited_address\""));
    // ...while the vendor, from its own address, still gets in.
    assert_eq!(send("198.51.100.20").status(), 200);
    drop(held);
    assert!(wait_until(Duration::from_secs(10), || gw
        .metrics()
        .contains("hookgate_requests_in_flight 0")));
    // The forger's slots are given back with its requests.
    let again = send("203.0.113.9");
    assert_eq!(again.status(), 200, "a duplicate is answered 200 too");
}

#[test]
fn hyperproof_heartbeat_is_recorded_not_published() {
    let gw = Gateway::start(&hyperproof_source());
    // The heartbeat's shape is undocumented: anything that is neither an activity nor an API
    // message is one (vendor notes §5).
    let json = "application/json";
    let shapes = [
        ("{}", json),
        ("", json),
        ("[]", json),
        ("null", json),
        ("[{}]", json),
        ("{\"type\":\"heartbeat\"}", json),
        ("ping", "text/plain"),
        // An empty body has no media type to refuse, whatever the header says.
        ("", "application/x-www-form-urlencoded"),
    ];
    for (body, media_type) in shapes {
        let resp = client()
            .post(gw.url("/ingest/hyperproof"))
            .header("content-type", media_type)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{body:?}");
    }
    // Requests with no body at all (no Content-Length, no Transfer-Encoding: a body-less POST
    // as a GET would come on a source that allows it), whatever their
    // Content-Type: no media to refuse either.
    let bodiless = [
        "POST /ingest/hyperproof HTTP/1.1\r\nHost: x\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n",
        "POST /ingest/hyperproof HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n",
    ];
    for raw in bodiless {
        let answer = crate::foundation::raw_exchange(&gw, raw.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 200"), "{raw:?} → {answer}");
    }
    // A text body that says more than a ping is answered as a heartbeat (Hyperproof's health
    // check must pass) but kept as a dead letter: it may be an event in an undocumented shape.
    // Its retry is answered alike and not kept again.
    let long_text = "<event><description>Alice deleted control C-7</description></event>";
    for _ in 0..2 {
        let resp = client()
            .post(gw.url("/ingest/hyperproof"))
            .header("content-type", "text/plain")
            .body(long_text)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    // So is JSON of an undocumented shape that says more than a ping.
    let long_json =
        r#"{"userId":"u-1","httpMethod":"GET","path":"/organizations/o-1/risks","status":"200"}"#;
    for _ in 0..2 {
        let resp = client()
            .post(gw.url("/ingest/hyperproof"))
            .header("content-type", json)
            .body(long_json)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let heartbeats = shapes.len() + bodiless.len() + 4;
    // A body that opens like an event but is cut off is refused, so the vendor retries it.
    let cut = client()
        .post(gw.url("/ingest/hyperproof"))
        .header("content-type", json)
        .body("{\"description\": \"Control upd")
        .send()
        .unwrap();
    assert_eq!(cut.status(), 400);
    let text = gw.metrics();
    assert!(
        text.contains(&format!(
            "hookgate_heartbeats_total{{source=\"hp\"}} {heartbeats}"
        )),
        "{text}"
    );
    assert!(text.contains("hookgate_source_last_heartbeat_timestamp_seconds{source=\"hp\"}"));
    assert!(
        text.contains("hookgate_source_expected_heartbeat_interval_seconds{source=\"hp\"} 90000")
    );
    assert!(!text.contains("outcome=\"published\""), "{text}");
    // The long text and the long JSON, once each, and the cut body (it passed authentication:
    // kept as a dead letter, its only trace, before the 400). `ping` and the other shapes
    // left nothing.
    let kept = gw.events();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|k| k["dead_letter"] == true), "{kept:?}");
    assert_eq!(kept[0]["reason_code"], "heartbeat_text");
    assert_eq!(kept[0]["raw_data"], long_text);
    assert_eq!(kept[1]["reason_code"], "heartbeat_json");
    assert_eq!(kept[1]["raw_data"], long_json);
    assert_eq!(kept[2]["reason_code"], "json_malformed");
    assert_eq!(kept[2]["raw_data"], "{\"description\": \"Control upd");
    let s = status(&gw);
    let hp = &s["sources"][0];
    assert_eq!(hp["name"], "hp");
    assert_eq!(hp["health"], "healthy");
    assert!(hp["last_heartbeat_at"].is_string());
    assert!(hp["last_event_at"].is_null());
    assert_eq!(hp["last_hour"]["heartbeats"], heartbeats);
}

#[test]
fn an_activity_behind_a_byte_order_mark_or_in_a_second_gzip_member_is_an_event() {
    use std::io::Write;
    let gw = Gateway::start(&hyperproof_source());
    let activity = |n: u32| {
        format!(
            "{{\"time\":\"2024-11-08T15:48:2{n}.633421Z\",\"email\":\"a@example.com\",\"description\":\"Control {n} was updated\",\"objectType\":\"control\",\"objectId\":\"0b7c4a52-7f4c-4b5e-9d53-8f1d6f0c1a0{n}\"}}"
        )
    };
    // A UTF-8 byte order mark first (some JSON writers add one): not text, not a heartbeat.
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(activity(1).as_bytes());
    let resp = client()
        .post(gw.url("/ingest/hyperproof"))
        .header("content-type", "application/json")
        .body(bom)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Two gzip members joined, one activity in each: both are events.
    let member = |text: String| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap()
    };
    let mut two = member(activity(2) + "\n");
    two.extend(member(activity(3) + "\n"));
    let resp = client()
        .post(gw.url("/ingest/hyperproof"))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(two.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Bytes after the last member are refused, not dropped unseen: kept as sent (this
    // source authenticates no bytes) before the 400.
    two.extend_from_slice(b"garbage");
    let resp = client()
        .post(gw.url("/ingest/hyperproof"))
        .header("content-type", "application/x-ndjson")
        .header("content-encoding", "gzip")
        .body(two)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let (kept, events): (Vec<_>, Vec<_>) = gw
        .events()
        .into_iter()
        .partition(|e| e["dead_letter"] == true);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["reason_code"], "corrupt_encoding");
    assert!(kept[0]["raw_data_base64"].is_string(), "{:?}", kept[0]);
    let described: Vec<String> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(events.len(), 3, "{described:?}");
    // raw_data is the body as received, byte order mark included (OCSF mapping: exact bytes).
    assert_eq!(
        events[0]["raw_data"].as_str().unwrap(),
        format!("\u{feff}{}", activity(1))
    );
    assert!(!gw
        .metrics()
        .contains("hookgate_heartbeats_total{source=\"hp\"} 1"));
}

#[test]
fn status_needs_its_token_and_shows_redacted_recent_events() {
    let gw = Gateway::start(&format!(
        "[status]\ntoken = \"{STATUS_TOKEN}\"\n{}",
        hyprwatch_source()
    ));
    assert_eq!(post_hyprwatch(&gw, "evt_status_1").status(), 200);
    let anonymous = client().get(gw.admin_url("/status")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let wrong = client()
        .get(gw.admin_url("/status/page"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let s = status(&gw);
    let hw = &s["sources"][0];
    assert_eq!(hw["vendor"], "hyprwatch");
    assert_eq!(hw["route"], "/ingest/hyprwatch");
    assert_eq!(hw["last_hour"]["events"], 1);
    let event = &hw["recent_events"][0];
    assert_eq!(event["metadata"]["uid"], "evt_status_1");
    assert_eq!(event["raw_data"], "[redacted]");
    assert!(!s.to_string().contains("do-not-show"), "{s}");

    let page = client()
        .get(gw.admin_url("/status/page"))
        .basic_auth("soc", Some(STATUS_TOKEN))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().unwrap();
    assert!(
        html.contains("data-source=\"hw\" data-health=\"healthy\""),
        "{html}"
    );
    assert!(!html.contains("do-not-show"));
}

#[test]
fn bad_signatures_turn_the_source_failing_auth_until_one_is_accepted() {
    let gw = Gateway::start(&format!(
        "[status]\ntoken = \"{STATUS_TOKEN}\"\n{}",
        hyprwatch_source()
    ));
    let bad = client()
        .post(gw.url("/ingest/hyprwatch"))
        .header("x-hyprwatch-signature", "sha256=00")
        .body("{\"id\":\"x\"}")
        .send()
        .unwrap();
    assert_eq!(bad.status(), 401);
    let s = status(&gw);
    assert_eq!(s["sources"][0]["health"], "failing_auth");
    assert_eq!(
        s["sources"][0]["recent_rejections"][0]["reason"],
        "signature_malformed"
    );
    assert_eq!(s["sources"][0]["last_hour"]["auth_failures"], 1);
    assert_eq!(post_hyprwatch(&gw, "evt_ok").status(), 200);
    assert_eq!(status(&gw)["sources"][0]["health"], "healthy");
}

#[test]
fn status_without_a_token_is_served_to_loopback() {
    let gw = Gateway::start(&hyprwatch_source());
    let resp = client().get(gw.admin_url("/status")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes();
    // The public port never serves it.
    assert_eq!(
        client().get(gw.url("/status")).send().unwrap().status(),
        404
    );
    let mut s = TcpStream::connect(gw.admin).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.contains("hookgate_build_info"), "{out}");
}

/// `THP_enabled` of a process, from `/proc/<pid>/status` (Linux ≥ 5.0).
fn thp_enabled(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_owned())
}

#[test]
fn the_gateway_runs_without_transparent_huge_pages_unless_asked() {
    let ours = thp_enabled("self").expect("THP_enabled in /proc/self/status (Linux 5.0 or later)");
    let gw = Gateway::start(&hyprwatch_source());
    assert_eq!(
        thp_enabled(&gw.pid().to_string()).as_deref(),
        Some("0"),
        "{}",
        gw.logs()
    );
    // A request still goes through end to end with the setting in force.
    assert_eq!(post_hyprwatch(&gw, "thp-1").status(), 200);
    assert_eq!(gw.wait_events(1).len(), 1);

    // `MIMALLOC_ALLOW_THP=1` leaves the process as its parent had it (this test's value).
    let config = gw.dir.path().join("hookgate.toml");
    let (dir, events) = gw.kill();
    let gw = Gateway::spawn(dir, events, &config, &[("MIMALLOC_ALLOW_THP", "1")])
        .unwrap_or_else(|logs| panic!("{logs}"));
    assert_eq!(thp_enabled(&gw.pid().to_string()), Some(ours));
    assert!(gw.logged("kept on"), "{}", gw.logs());
}

/// The scheduling policy (field 41 of `/proc/<pid>/task/<tid>/stat`) of each thread of `pid`,
/// with the thread's name.
fn thread_policies(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
        // "tid (name) state ...": the fields after the name, which may hold spaces.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head.split_once(" (").map(|(_, n)| n.to_owned());
        let policy = rest
            .split_whitespace()
            .nth(41 - 3)
            .and_then(|p| p.parse().ok());
        if let (Some(name), Some(policy)) = (name, policy) {
            out.push((name, policy));
        }
    }
    out
}

#[test]
fn every_thread_runs_as_sched_batch_unless_the_config_asks_for_normal() {
    const SCHED_OTHER: u32 = 0;
    const SCHED_BATCH: u32 = 3;
    let batch = Gateway::start(&hyprwatch_source());
    let normal = Gateway::start(&format!(
        "[process]\ncpu_scheduling = \"normal\"\n{}",
        hyprwatch_source()
    ));
    // A request first, so the workers and the sink's threads are all up.
    for gw in [&batch, &normal] {
        let body = br#"{"id":"evt_sched_1","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{}}"#;
        assert_eq!(
            crate::foundation::signed_post(gw, "/ingest/hyprwatch", body).status(),
            200
        );
    }
    // The niceness the test runs at is the gateway's too (field 19), and is kept.
    let nice = |pid: u32| -> i32 {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap()
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(19 - 3)?.parse().ok())
            .unwrap()
    };
    assert_eq!(nice(batch.pid()), nice(std::process::id()));
    let expected = SCHED_BATCH;
    let threads = thread_policies(batch.pid());
    assert!(threads.len() > 2, "{threads:?}");
    assert!(threads.iter().all(|(_, p)| *p == expected), "{threads:?}");
    // "normal" leaves the policy the process started with: this test's own.
    let own = thread_policies(std::process::id())
        .first()
        .map(|(_, p)| *p)
        .unwrap_or(SCHED_OTHER);
    let threads = thread_policies(normal.pid());
    assert!(threads.len() > 2, "{threads:?}");
    assert!(threads.iter().all(|(_, p)| *p == own), "{threads:?}");
}

/// Sends `refusals` requests with a bad signature (each logs a line), each answered 401, then
/// one good event, which must land; the log reader's trouble must change none of that.
fn answers_while_its_log_cannot_take_lines(gw: &Gateway, refusals: usize, what: &str) {
    for i in 0..refusals {
        let resp = client()
            .post(gw.url("/ingest/hyprwatch"))
            .header("x-hyprwatch-signature", "sha256=00")
            .body(format!(r#"{{"id":"{what}-{i}"}}"#))
            .send()
            .unwrap_or_else(|e| panic!("refusal {i} not answered ({what}): {e}"));
        assert_eq!(resp.status(), 401);
    }
    assert_eq!(post_hyprwatch(gw, &format!("{what}-good")).status(), 200);
    assert_eq!(gw.wait_events(1).len(), 1);
}

/// A log line that cannot be written (standard error on a full disk, past a file-size limit,
/// a closed pipe: here `/dev/full`, which refuses every write) must end neither a request nor
/// the process: refused requests, which each log a line, are still answered, accepted ones
/// still land, and SIGTERM still stops hookgate. Before, the failed write panicked the worker
/// (tracing-subscriber reports it with `eprintln!`), the connection closed unanswered, and
/// SIGTERM no longer worked.
#[test]
fn requests_are_answered_and_sigterm_stops_when_no_log_line_can_be_written() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut gw = Gateway::start_with_stderr(|_| hyprwatch_source(), full);
    answers_while_its_log_cannot_take_lines(&gw, 20, "logless");
    let stopped = gw.stop();
    assert!(stopped.success(), "{stopped:?}");
}

/// A log reader that stops reading (standard error a pipe nobody drains, as a stalled log
/// shipper leaves it) must not stop the gateway: once the pipe is full, log lines are dropped,
/// not waited for. Before, every worker blocked on its log write: requests, `/healthz` and
/// SIGTERM all hung until the pipe was drained.
#[test]
fn a_log_reader_that_stops_reading_does_not_stop_the_gateway() {
    let (_unread, writer) = std::io::pipe().unwrap();
    let mut gw = Gateway::start_with_stderr(|_| hyprwatch_source(), writer);
    // Each refusal logs a line: far more than a pipe holds (64 KiB).
    answers_while_its_log_cannot_take_lines(&gw, 1500, "unread");
    let health = client().get(gw.admin_url("/healthz")).send().unwrap();
    assert!(health.status().is_success());
    let stopped = gw.stop();
    assert!(stopped.success(), "{stopped:?}");
}
