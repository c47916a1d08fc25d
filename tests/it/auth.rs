//! Source trust scenarios (issue #3) against the real binary: Basic, API key, static header,
//! path token, IP allowlists behind trusted proxies, OAuth2 tokens across a restart, and
//! SIGHUP rotation without dropping an in-flight request. Every refusal also asserts that
//! nothing reached the sink. Svix, Hyprwatch HMAC, OAuth client libraries and TLS are proven
//! with independent Python implementations in `tests/py/test_auth_*.py`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};

use crate::harness::{hyprwatch_signature, wait_until, Gateway};

const EVENT: &[u8] = br#"{"id":"evt_auth_1","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{"host_id":"h1"}}"#;
const TOKEN: &str = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c";
const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef0123";

fn source(name: &str, path: &str, auth: &str) -> String {
    format!(
        "[[source]]\nname = \"{name}\"\nvendor = \"hyprwatch\"\npath = \"{path}\"\nauth = {auth}\n"
    )
}

fn post(gw: &Gateway, path: &str) -> RequestBuilder {
    Client::new()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .body(EVENT.to_vec())
}

/// Asserts the status and, for a refusal, that the sink stayed empty.
fn expect(gw: &Gateway, req: RequestBuilder, status: u16) -> reqwest::blocking::Response {
    let resp = req.send().unwrap();
    assert_eq!(resp.status().as_u16(), status);
    if status >= 400 {
        assert!(gw.events().is_empty(), "a refused request reached the sink");
    }
    resp
}

#[test]
fn basic_accepts_any_listed_credential_and_refuses_a_wrong_password() {
    let gw = Gateway::start(&source(
        "hypr",
        "/in/hypr",
        r#"[{ kind = "basic", credentials = [{ username = "hypr", password = "old-pw" }, { username = "hypr", password = "new-pw" }] }]"#,
    ));
    let resp = expect(
        &gw,
        post(&gw, "/in/hypr").basic_auth("hypr", Some("wrong")),
        401,
    );
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"hookgate\""
    );
    let body = resp.text().unwrap();
    assert!(
        !body.contains("password") && !body.contains("basic"),
        "{body}"
    );
    expect(&gw, post(&gw, "/in/hypr"), 401);
    expect(
        &gw,
        post(&gw, "/in/hypr").basic_auth("hypr", Some("new-pw")),
        200,
    );
    gw.wait_events(1);
    assert!(gw.logged("basic_mismatch"), "reason is logged");
    assert!(
        !gw.logs().contains("wrong"),
        "presented secrets are never logged"
    );
    // Passwords this short are warned about at startup, without their values.
    assert!(
        gw.logged("weak authentication: basic credential 1's password is 6 characters long"),
        "{}",
        gw.logs()
    );
    assert!(!gw.logs().contains("old-pw") && !gw.logs().contains("new-pw"));
}

#[test]
fn bearer_api_key_with_and_without_prefix() {
    let gw = Gateway::start(&source(
        "hypr",
        "/in/hypr",
        r#"[{ kind = "bearer", tokens = ["api-key-1"] }]"#,
    ));
    let resp = expect(&gw, post(&gw, "/in/hypr").bearer_auth("api-key-2"), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    expect(&gw, post(&gw, "/in/hypr").bearer_auth("api-key-1"), 200);
    gw.wait_events(1);
    // Same event again with the raw key (no prefix): accepted, and a duplicate.
    expect(
        &gw,
        post(&gw, "/in/hypr").header("authorization", "api-key-1"),
        200,
    );
}

#[test]
fn static_header_must_match_exactly() {
    let gw = Gateway::start(&source(
        "cs",
        "/in/cs",
        r#"[{ kind = "header", name = "X-CS-Key", values = ["cs-value-1"] }]"#,
    ));
    expect(
        &gw,
        post(&gw, "/in/cs").header("x-cs-key", "cs-value-2"),
        401,
    );
    expect(
        &gw,
        post(&gw, "/in/cs").header("x-cs-key", "CS-VALUE-1"),
        401,
    );
    expect(&gw, post(&gw, "/in/cs"), 401);
    expect(
        &gw,
        post(&gw, "/in/cs").header("x-cs-key", "cs-value-1"),
        200,
    );
}

#[test]
fn path_token_is_checked_and_never_logged() {
    let gw = Gateway::start(&source(
        "hp",
        "/in/hp",
        &format!(r#"[{{ kind = "path_token", tokens = ["{TOKEN}"] }}]"#),
    ));
    let wrong = TOKEN.replace('9', "8");
    expect(&gw, post(&gw, &format!("/in/hp/{wrong}")), 401);
    expect(&gw, post(&gw, "/in/hp"), 404);
    expect(&gw, post(&gw, &format!("/in/hp/{TOKEN}")), 200);
    gw.wait_events(1);
    let logs = gw.logs();
    assert!(!logs.contains(TOKEN) && !logs.contains(&wrong), "{logs}");
}

fn allowlisted(trusted: &str) -> String {
    allowlisted_behind(trusted, "x-forwarded-for")
}

fn allowlisted_behind(trusted: &str, header: &str) -> String {
    format!(
        "[trust]\ntrusted_proxies = [{trusted}]\nforwarded_header = \"{header}\"\n{}",
        source(
            "hp",
            "/in/hp",
            &format!(
                r#"[{{ kind = "ip_allow", allow = ["hyperproof-us", "2001:db8::/32"] }}, {{ kind = "path_token", tokens = ["{TOKEN}"] }}]"#
            ),
        )
    )
}

#[test]
fn allowlist_judges_the_client_named_by_a_trusted_proxy() {
    let gw = Gateway::start(&allowlisted("\"127.0.0.1\""));
    let path = format!("/in/hp/{TOKEN}");
    let resp = expect(
        &gw,
        post(&gw, &path).header("x-forwarded-for", "203.0.113.9"),
        403,
    );
    assert!(!resp.headers().contains_key("www-authenticate"));
    // Rightmost untrusted hop wins: a client-supplied allowed address on the left is ignored.
    expect(
        &gw,
        post(&gw, &path).header("x-forwarded-for", "52.9.169.38, 203.0.113.9"),
        403,
    );
    // EU address, but only the US preset is configured.
    expect(
        &gw,
        post(&gw, &path).header("x-forwarded-for", "98.67.233.122"),
        403,
    );
    // The loopback proxy itself is not allowlisted.
    expect(&gw, post(&gw, &path), 403);
    // The proxy appends to X-Forwarded-For and passes a client's own `Forwarded` on: an
    // allowed address claimed there names nobody.
    expect(
        &gw,
        post(&gw, &path)
            .header("forwarded", "for=52.9.169.38")
            .header("x-forwarded-for", "203.0.113.9"),
        403,
    );
    expect(
        &gw,
        post(&gw, &path).header("x-forwarded-for", "2001:db8::1"),
        200,
    );
    expect(
        &gw,
        post(&gw, &path).header("x-forwarded-for", "52.159.252.1"),
        200,
    );
    assert!(gw.logged("address_not_allowed"));
    // The rejection's log line names the client the proxy named, not the proxy.
    let logs = gw.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("request rejected") && l.contains("203.0.113.9")),
        "{logs}"
    );

    // Behind a proxy that writes RFC 7239 `Forwarded`, only that header counts.
    let gw = Gateway::start(&allowlisted_behind("\"127.0.0.1\"", "forwarded"));
    expect(
        &gw,
        post(&gw, &path).header("forwarded", "for=98.67.233.122"),
        403,
    );
    expect(
        &gw,
        post(&gw, &path)
            .header("x-forwarded-for", "52.9.169.38")
            .header("forwarded", "for=203.0.113.9"),
        403,
    );
    expect(
        &gw,
        post(&gw, &path).header("forwarded", "for=\"[2001:db8::1]:443\""),
        200,
    );
}

#[test]
fn spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let gw = Gateway::start(&allowlisted("\"10.0.0.0/8\""));
    let path = format!("/in/hp/{TOKEN}");
    expect(
        &gw,
        post(&gw, &path).header("x-forwarded-for", "52.9.169.38"),
        403,
    );
    expect(
        &gw,
        post(&gw, &path).header("forwarded", "for=52.9.169.38"),
        403,
    );
}

fn oauth_sources() -> String {
    format!(
        "[trust]\ntoken_signing_keys = [\"{SIGNING_KEY}\"]\n{}{}",
        source(
            "hypr-a",
            "/in/a",
            r#"[{ kind = "oauth", clients = [{ client_id = "client-a", client_secret = "secret-a" }] }]"#
        ),
        source(
            "hypr-b",
            "/in/b",
            r#"[{ kind = "oauth", clients = [{ client_id = "client-b", client_secret = "secret-b" }] }]"#
        ),
    )
}

fn token(gw: &Gateway, id: &str, secret: &str) -> String {
    let resp = Client::new()
        .post(gw.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    body["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn oauth_token_is_bound_to_its_source_and_survives_a_restart() {
    let gw = Gateway::start(&oauth_sources());
    let a = token(&gw, "client-a", "secret-a");
    let resp = expect(&gw, post(&gw, "/in/b").bearer_auth(&a), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    expect(&gw, post(&gw, "/in/a"), 401);
    let tampered = format!("{}A", a);
    expect(&gw, post(&gw, "/in/a").bearer_auth(&tampered), 401);
    assert!(gw.logged("token_wrong_source"));
    assert!(!gw.logs().contains(&a), "tokens are never logged");

    // A fresh process with the same config accepts the token: nothing lived in memory.
    let config = gw.dir.path().join("hookgate.toml");
    let (dir, events) = gw.kill();
    let gw = Gateway::spawn(dir, events, &config, &[]).unwrap();
    expect(&gw, post(&gw, "/in/a").bearer_auth(&a), 200);
}

#[test]
fn token_endpoint_answers_rfc_6749_errors() {
    let gw = Gateway::start(&oauth_sources());
    let client = Client::new();
    let resp = client
        .post(gw.url("/oauth/token"))
        .basic_auth("client-a", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"hookgate\""
    );
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["error"], "invalid_client");
    let resp = client
        .post(gw.url("/oauth/token"))
        .basic_auth("client-a", Some("secret-a"))
        .form(&[("grant_type", "password")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    // Without grant_type, parameters authenticate as Basic does (the setup docs call it
    // recommended); two client authentications at once are an invalid request.
    let resp = client
        .post(gw.url("/oauth/token"))
        .form(&[("client_id", "client-a"), ("client_secret", "secret-a")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(gw.url("/oauth/token"))
        .basic_auth("client-a", Some("secret-a"))
        .form(&[("client_id", "client-a"), ("client_secret", "secret-a")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(body["error"], "invalid_request");
    // PUT is read as a token request (some senders use it), so without credentials it is a
    // 401; a method that cannot carry one is a 405 that names the methods allowed.
    let resp = client.put(gw.url("/oauth/token")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client.delete(gw.url("/oauth/token")).send().unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST, PUT");
    // Logged like every other refusal: under its request id, with the client's address.
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let logged = |l: &str| l.contains(&id) && l.contains("method_not_allowed");
    wait_until(Duration::from_secs(5), || gw.logs().lines().any(logged));
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| logged(l))
        .unwrap_or_else(|| panic!("no log line for {id} in\n{logs}"));
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(gw.events().is_empty());
    // Each refusal is counted by its reason.
    let metrics = gw.metrics();
    for reason in [
        "invalid_client",
        "unsupported_grant_type",
        "invalid_request",
    ] {
        let line = format!(
            "hookgate_rejections_total{{reason=\"{reason}\",source=\"oauth_token\",stage=\"auth\"}}"
        );
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
}

#[test]
fn the_token_endpoint_is_rate_limited_per_address_like_the_sources() {
    let gw = Gateway::start(&format!(
        "[limits]\nper_address = {{ requests_per_second = 1, burst = 3 }}\n{}",
        oauth_sources()
    ));
    let client = Client::new();
    // A burst of three wrong guesses is answered; the next ones are refused unread until the
    // bucket refills (one a second), whatever the secret.
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..20 {
        let resp = client
            .post(gw.url("/oauth/token"))
            .basic_auth("client-a", Some("guess"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            limited = Some(resp);
            break;
        }
    }
    assert_eq!(&statuses[..3], [401, 401, 401], "{statuses:?}");
    let limited = limited.expect("no 429 within 20 requests");
    assert!(limited.headers().contains_key("retry-after"));
    // In RFC 6749's shape like the endpoint's own errors (an OAuth2 client reads `error` as
    // a code), and not cached.
    assert_eq!(limited.headers()["cache-control"], "no-store");
    let body: serde_json::Value = limited.json().unwrap();
    assert!(body["request_id"].is_string(), "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["error_description"].is_string(), "{body}");
    let metrics = gw.metrics();
    assert!(
        metrics.contains("source=\"oauth_token\",stage=\"limits\""),
        "{metrics}"
    );
}

fn rotation_config(secrets: &str) -> String {
    source(
        "hw",
        "/in/hw",
        &format!(r#"[{{ kind = "hmac", secrets = [{secrets}] }}]"#),
    )
}

fn signed(gw: &Gateway, key: &str, body: &[u8]) -> RequestBuilder {
    Client::new()
        .post(gw.url("/in/hw"))
        .header("content-type", "application/json")
        .header("x-hyprwatch-signature", hyprwatch_signature(key, body))
        .body(body.to_vec())
}

/// Rewrites the running gateway's config (keeping its generated sections) and sends SIGHUP;
/// waits for the reload's log line `expect_line` (counting earlier ones).
fn reload(gw: &Gateway, old: &str, new: &str, expect_line: &str) {
    let path = gw.dir.path().join("hookgate.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(old, new);
    std::fs::write(&path, text).unwrap();
    let before = gw.logs().matches(expect_line).count();
    gw.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || gw
            .logs()
            .matches(expect_line)
            .count()
            > before),
        "no {expect_line:?} after SIGHUP:\n{}",
        gw.logs()
    );
}

#[test]
fn rotation_accepts_old_and_new_then_reload_removes_the_old_without_dropping_requests() {
    let both = r#""whsec_old", "whsec_new""#;
    let gw = Gateway::start(&rotation_config(both));
    let body = |n: u32| {
        format!(r#"{{"id":"evt_rot_{n}","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{{}}}}"#).into_bytes()
    };
    expect(&gw, signed(&gw, "whsec_old", &body(1)), 200);
    expect(&gw, signed(&gw, "whsec_new", &body(2)), 200);

    // A request in flight across the reload: head and half the body before SIGHUP, the rest
    // after. It was routed and checked under the old config and must complete.
    let late = body(3);
    let mut conn = TcpStream::connect(gw.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST /in/hw HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-hyprwatch-signature: {}\r\ncontent-length: {}\r\n\r\n",
        hyprwatch_signature("whsec_old", &late),
        late.len()
    )
    .unwrap();
    let (first, rest) = late.split_at(10);
    conn.write_all(first).unwrap();

    reload(&gw, both, r#""whsec_new""#, "config reloaded");
    conn.write_all(rest).unwrap();
    let mut answer = String::new();
    let mut buf = [0u8; 1024];
    wait_until(Duration::from_secs(10), || {
        let n = conn.read(&mut buf).unwrap_or(0);
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        answer.contains("\r\n\r\n{") || n == 0
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let before = gw.events().len();
    let resp = signed(&gw, "whsec_old", &body(4)).send().unwrap();
    assert_eq!(resp.status(), 401, "removed secret refused after reload");
    assert_eq!(gw.events().len(), before);
    expect(&gw, signed(&gw, "whsec_new", &body(5)), 200);

    // An invalid config (an empty secret) changes nothing, and says why.
    reload(
        &gw,
        r#""whsec_new""#,
        r#""whsec_new", """#,
        "config reload failed",
    );
    assert!(gw.logged("source[hw].auth[0].secrets"));
    expect(&gw, signed(&gw, "whsec_new", &body(6)), 200);
    assert_eq!(gw.wait_events(5).len(), 5);
}

#[test]
fn a_source_with_a_header_and_basic_answers_every_401_alike() {
    // ConnectSecure's documented setup: a header key and Basic. Whether the header was right
    // must not show in the answer (status, challenge, body); the log names the check.
    let gw = Gateway::start(&source(
        "cs",
        "/in/cs",
        r#"[{ kind = "header", name = "X-Hookgate-Key", values = ["right-key"] }, { kind = "basic", credentials = [{ username = "cs", password = "pw" }] }]"#,
    ));
    let answer = |key: &str| {
        let resp = expect(&gw, post(&gw, "/in/cs").header("x-hookgate-key", key), 401);
        let challenge = resp.headers()["www-authenticate"].clone();
        let body: serde_json::Value = resp.json().unwrap();
        (challenge, body["error"].clone())
    };
    assert_eq!(answer("wrong-key"), answer("right-key"));
    assert_eq!(answer("wrong-key").0, "Basic realm=\"hookgate\"");
    expect(
        &gw,
        post(&gw, "/in/cs")
            .header("x-hookgate-key", "right-key")
            .basic_auth("cs", Some("pw")),
        200,
    );
    gw.wait_events(1);
    let logs = gw.logs();
    assert!(
        logs.contains("header_mismatch") && logs.contains("basic_missing"),
        "{logs}"
    );
}

#[test]
fn a_credential_header_sent_twice_is_refused_whichever_copy_is_right() {
    let gw = Gateway::start(&source(
        "cs",
        "/in/cs",
        r#"[{ kind = "header", name = "X-Hookgate-Key", values = ["right-key-0123456789"] }]"#,
    ));
    for pair in [
        ["right-key-0123456789", "wrong"],
        ["wrong", "right-key-0123456789"],
    ] {
        let resp = expect(
            &gw,
            post(&gw, "/in/cs")
                .header("x-hookgate-key", pair[0])
                .header("x-hookgate-key", pair[1]),
            401,
        );
        assert!(resp.headers().contains_key("x-request-id"));
    }
    expect(
        &gw,
        post(&gw, "/in/cs").header("x-hookgate-key", "right-key-0123456789"),
        200,
    );
    let metrics = gw.metrics();
    let line =
        "hookgate_rejections_total{reason=\"credential_repeated\",source=\"cs\",stage=\"auth\"} 2";
    assert!(metrics.contains(line), "{line} not in\n{metrics}");
}

/// A transfer coding other than `chunked` is refused with 501 on a source's path and at the
/// token endpoint alike, instead of its still-coded bytes being read as the body (outside
/// re-check: the token endpoint issued a token for a form labelled `gzip, chunked`).
#[test]
fn a_transfer_coding_other_than_chunked_gets_501_everywhere() {
    use std::io::{Read, Write};
    let gw = Gateway::start(&format!(
        "{}{}",
        oauth_sources(),
        crate::foundation::hyprwatch_source()
    ));
    let form = "grant_type=client_credentials&client_id=client-a&client_secret=x";
    // The Hyprwatch source checks its signature over the body: its head passes, as a
    // source's with credentials in the head would.
    for (path, media) in [
        ("/oauth/token", "application/x-www-form-urlencoded"),
        ("/ingest/hyprwatch", "application/json"),
    ] {
        let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {media}\r\n\
             Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n{:x}\r\n{form}\r\n0\r\n\r\n",
            form.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 501"), "{path}: {answer}");
        assert!(answer.contains("request_id"), "{path}: {answer}");
    }
    let metrics = gw.metrics();
    for source in ["oauth_token", "hw"] {
        let counted = format!("reason=\"unsupported_transfer_coding\",source=\"{source}\"");
        assert!(metrics.contains(&counted), "{counted} in\n{metrics}");
    }
    // The client's own choice: logged as a refusal, not at ERROR as a failure of the gateway
    // (outside re-check: anyone could write ERROR lines at will).
    assert!(gw.logged("request rejected"));
    assert!(
        !gw.logs()
            .lines()
            .any(|l| l.contains("unsupported_transfer_coding") && l.contains("ERROR")),
        "{}",
        gw.logs()
    );
}

/// With `max_age_s` an HMAC source refuses an event its vendor signed longer ago than that:
/// a captured Hyprwatch request replayed after the dedup window (outside re-check: it was
/// published again). A fresh event passes; one without a send time is refused too; a vendor
/// whose parser names no send time cannot be given the setting.
#[test]
fn an_hmac_source_with_max_age_refuses_a_replay_of_an_old_signed_event() {
    let key = "whsec_replay_key_0123456789";
    let gw = Gateway::start(&source(
        "hw",
        "/in/hw",
        &format!(r#"[{{ kind = "hmac", secrets = ["{key}"], max_age_s = 21600 }}]"#),
    ));
    let now = time::OffsetDateTime::now_utc();
    let at = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let body = |id: &str, ts: Option<String>| {
        let ts = ts
            .map(|t| format!(r#","timestamp":"{t}""#))
            .unwrap_or_default();
        format!(r#"{{"id":"{id}","event":"host.online"{ts},"data":{{"host_id":"h1"}}}}"#)
    };
    let refused = [
        (
            "old",
            body("evt_old", Some(at(now - time::Duration::hours(7)))),
        ),
        (
            "ahead",
            body("evt_ahead", Some(at(now + time::Duration::hours(2)))),
        ),
        ("missing", body("evt_missing", None)),
    ];
    for (what, b) in &refused {
        let resp = expect(&gw, signed(&gw, key, b.as_bytes()), 401);
        let json: serde_json::Value = resp.json().unwrap();
        assert_eq!(json["error"], "authentication failed", "{what}");
    }
    let fresh = body("evt_fresh", Some(at(now - time::Duration::hours(5))));
    expect(&gw, signed(&gw, key, fresh.as_bytes()), 200);
    assert_eq!(gw.wait_events(1)[0]["metadata"]["uid"], "evt_fresh");
    let metrics = gw.metrics();
    for reason in ["event_too_old", "event_time_ahead", "event_time_missing"] {
        let line = format!(
            "hookgate_rejections_total{{reason=\"{reason}\",source=\"hw\",stage=\"auth\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
    assert!(gw.logged("event_too_old"));

    // HYPR's parser names no signed send time: `check` refuses the setting.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            "[sink]\npath = {:?}\n{}",
            dir.path().join("events.jsonl"),
            source(
                "hp",
                "/in/hp",
                &format!(r#"[{{ kind = "hmac", secrets = ["{key}"], max_age_s = 600 }}]"#)
            )
            .replace("hyprwatch", "hypr")
        ),
    )
    .unwrap();
    let out = crate::harness::check(&config);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(64), "{text}");
    assert!(
        text.contains("max_age_s") && text.contains("sent_at"),
        "{text}"
    );
}
