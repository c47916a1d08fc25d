//! Foundation scenarios: route, body, split, sink, shutdown, `check`.

use crate::harness::{hyprwatch_signature, wait_until, Gateway};
use sha2::Digest as _;

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

#[test]
fn a_dead_letter_of_bytes_that_are_not_utf8_keeps_them_exactly() {
    use base64::Engine as _;
    let gw = Gateway::start(&hyprwatch_source());
    // Latin-1 where UTF-8 belongs: not JSON, so refused, and kept first.
    let body: &[u8] = b"{\"id\": \"evt_1\", \"host\": \"caf\xe9\"}";
    assert_error_body(signed_post(&gw, "/ingest/hyprwatch", body), 400);
    let kept = gw.events();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let line = &kept[0];
    assert_eq!(line["dead_letter"], true, "{line}");
    assert_eq!(line["reason_code"], "json_malformed", "{line}");
    // JSON text cannot hold the byte 0xE9 alone: raw_data is readable, the base64 exact.
    assert_eq!(line["raw_data"], String::from_utf8_lossy(body).as_ref());
    let exact = base64::engine::general_purpose::STANDARD
        .decode(line["raw_data_base64"].as_str().unwrap_or_default())
        .unwrap();
    assert_eq!(exact, body);
    assert_eq!(line["uid"], hex::encode(sha2::Sha256::digest(body)));
}

/// POSTs `body` to `path`, signed with the Hyprwatch test secret.
pub fn signed_post(gw: &Gateway, path: &str, body: &[u8]) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new()
        .post(gw.url(path))
        .header("content-type", "application/json")
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, body),
        )
        .body(body.to_vec())
        .send()
        .unwrap()
}

fn assert_error_body(resp: reqwest::blocking::Response, status: u16) -> serde_json::Value {
    assert_eq!(resp.status().as_u16(), status);
    let header_id = resp
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = resp.json().expect("JSON error body");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["request_id"], header_id.as_str());
    body
}

fn event(id: &str) -> String {
    format!(
        r#"{{"id":"{id}","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{{"host_id":"h1","hostname":"server-01","platform":"linux"}}}}"#
    )
}

#[test]
fn unknown_path_is_404_with_json_error_and_request_id() {
    let gw = Gateway::start(&hyprwatch_source());
    let resp = reqwest::blocking::Client::new()
        .post(gw.url("/ingest/nope"))
        .header("x-request-id", "req-abc-1")
        .body("{}")
        .send()
        .unwrap();
    // A client's own X-Request-Id is not taken (it could label its requests at will): the
    // gateway's id is in the header and the body alike.
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "req-abc-1");
    let body = assert_error_body(resp, 404);
    assert_eq!(body["request_id"], id.as_str());
    assert!(gw.events().is_empty());
}

#[test]
fn a_trusted_proxys_request_id_is_kept() {
    let gw = Gateway::start(&format!(
        "[trust]\ntrusted_proxies = [\"127.0.0.1\"]\n{}",
        hyprwatch_source()
    ));
    let resp = reqwest::blocking::Client::new()
        .post(gw.url("/ingest/nope"))
        .header("x-request-id", "lb-abc-1")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "lb-abc-1");
    let body = assert_error_body(resp, 404);
    assert_eq!(body["request_id"], "lb-abc-1");
}

#[test]
fn wrong_method_is_405_with_allow_header() {
    let gw = Gateway::start(&hyprwatch_source());
    let resp = reqwest::blocking::Client::new()
        .get(gw.url("/ingest/hyprwatch"))
        .send()
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    assert_error_body(resp, 405);
    // Counted under the source the path names, not as unmatched traffic, so a sender set to
    // the wrong method shows on its source.
    let metrics = gw.metrics();
    assert!(
        metrics.contains("hookgate_requests_total{source=\"hw\",status=\"405\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reason=\"method_not_allowed\",source=\"hw\",stage=\"route\""),
        "{metrics}"
    );
    // And its log line names the source too.
    assert!(
        crate::harness::wait_until(std::time::Duration::from_secs(5), || gw
            .logs()
            .lines()
            .any(|l| l.contains("method_not_allowed") && l.contains("source=\"hw\""))),
        "{}",
        gw.logs()
    );
}

#[test]
fn configured_methods_are_accepted_hypr_style() {
    // HYPR hooks may be set to PUT, PATCH, DELETE or GET; the source config says which.
    let gw = Gateway::start(&hyprwatch_source().replace(
        "path = \"/ingest/hyprwatch\"",
        "path = \"/ingest/hyprwatch\"\nmethods = [\"PUT\", \"PATCH\", \"DELETE\"]",
    ));
    let client = reqwest::blocking::Client::new();
    for (i, method) in ["PUT", "PATCH", "DELETE"].iter().enumerate() {
        let body = event(&format!("evt_m{i}"));
        let resp = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                gw.url("/ingest/hyprwatch"),
            )
            .header(
                "x-hyprwatch-signature",
                hyprwatch_signature(HW_SECRET, body.as_bytes()),
            )
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{method}");
    }
    assert_eq!(gw.wait_events(3).len(), 3);
    let resp = client
        .post(gw.url("/ingest/hyprwatch"))
        .body("{}")
        .send()
        .unwrap();
    assert_error_body(resp, 405);
}

#[test]
fn body_over_the_cap_is_413_with_and_without_content_length() {
    let gw = Gateway::start(&hyprwatch_source().replace(
        "path = \"/ingest/hyprwatch\"",
        "path = \"/ingest/hyprwatch\"\nmax_body_bytes = 1024",
    ));
    let big = format!(
        r#"{{"id":"evt_big","event":"host.online","pad":"{}"}}"#,
        "x".repeat(2000)
    );
    let resp = signed_post(&gw, "/ingest/hyprwatch", big.as_bytes());
    assert_error_body(resp, 413);
    // Chunked: no Content-Length, the cap is enforced while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(big.as_bytes()[..1000].to_vec()),
        Ok(big.as_bytes()[1000..].to_vec()),
    ];
    let stream = futures_free_stream(chunks);
    let resp = reqwest::blocking::Client::new()
        .post(gw.url("/ingest/hyprwatch"))
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, big.as_bytes()),
        )
        .body(reqwest::blocking::Body::new(stream))
        .send()
        .unwrap();
    assert_error_body(resp, 413);
    assert!(gw.events().is_empty());
}

/// A reader that yields the chunks one by one (so reqwest sends them chunked).
fn futures_free_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl std::io::Read + Send + 'static {
    struct Chunks(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>, Vec<u8>);
    impl std::io::Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1.is_empty() {
                match self.0.next() {
                    Some(Ok(c)) => self.1 = c,
                    Some(Err(e)) => return Err(e),
                    None => return Ok(0),
                }
            }
            let n = buf.len().min(self.1.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }
    Chunks(chunks.into_iter(), Vec::new())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[test]
fn gzip_body_is_decoded_and_a_gzip_bomb_is_413() {
    let gw = Gateway::start(&format!(
        "[limits]\nmax_decompressed_bytes = 1048576\n{}",
        hyprwatch_source()
    ));
    let client = reqwest::blocking::Client::new();
    let body = event("evt_gz");
    let resp = client
        .post(gw.url("/ingest/hyprwatch"))
        .header("content-encoding", "gzip")
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, body.as_bytes()),
        )
        .body(gzip(body.as_bytes()))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // 64 MiB of zeros compress to about 64 KiB: under the wire cap, far over the inflate cap.
    let bomb = gzip(&vec![b'0'; 64 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let resp = client
        .post(gw.url("/ingest/hyprwatch"))
        .header("content-encoding", "gzip")
        .header("x-hyprwatch-signature", "sha256=00")
        .body(bomb)
        .send()
        .unwrap();
    assert_error_body(resp, 413);
    assert_eq!(gw.wait_events(1).len(), 1);
}

#[test]
fn a_body_that_does_not_decode_is_kept_when_it_is_authenticated_as_sent() {
    let gw = Gateway::start(&hyprwatch_source());
    let client = reqwest::blocking::Client::new();
    let post = |body: &[u8], signature: String| {
        client
            .post(gw.url("/ingest/hyprwatch"))
            .header("content-encoding", "gzip")
            .header("x-hyprwatch-signature", signature)
            .body(body.to_vec())
            .send()
            .unwrap()
    };
    // Labelled gzip but sent plain, and signed as sent: authentic bytes no retry can fix.
    // Refused, kept once (its retry alike), and Svix-style senders are told to stop.
    let plain = event("evt_mislabelled");
    for _ in 0..2 {
        let resp = post(
            plain.as_bytes(),
            hyprwatch_signature(HW_SECRET, plain.as_bytes()),
        );
        assert_eq!(
            resp.headers()
                .get("webhook-delivery")
                .map(|v| v.to_str().unwrap()),
            Some("abort-message")
        );
        let body = assert_error_body(resp, 400);
        assert!(body["error"].as_str().unwrap().contains("gzip"), "{body}");
    }
    // Bytes nobody vouches for (the signature is over something else) are refused, not kept.
    let resp = post(b"\x1f\x8b junk", hyprwatch_signature(HW_SECRET, b"other"));
    assert!(resp.headers().get("webhook-delivery").is_none());
    assert_error_body(resp, 400);
    let kept = gw.wait_events(1);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["dead_letter"], true);
    assert_eq!(kept[0]["reason_code"], "corrupt_encoding");
    assert_eq!(kept[0]["raw_data"], plain.as_str());
    assert!(gw.metrics().contains("reason=\"corrupt_encoding\""));
}

/// A small gzip body whose event, normalized, would be larger than any spool record (its text
/// copied into three fields, each escaped): kept as a dead letter with its raw bytes, answered
/// 200, never refused for ever.
#[test]
fn an_event_too_large_to_normalize_is_kept_as_a_dead_letter() {
    let gw = Gateway::start_with(|dir| {
        format!(
            "[delivery]\nmode = \"spool\"\n[spool]\ndir = \"{}\"\n{}",
            dir.join("spool").display(),
            hyprwatch_source()
        )
    });
    let quotes = "\\\"".repeat(3 * 1024 * 1024);
    let body = format!(
        r#"{{"id":"evt_huge","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{{"host_id":"h1","hostname":"{quotes}","platform":"linux"}}}}"#
    );
    let resp = reqwest::blocking::Client::new()
        .post(gw.url("/ingest/hyprwatch"))
        .header("content-encoding", "gzip")
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, body.as_bytes()),
        )
        .body(gzip(body.as_bytes()))
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let kept = gw.wait_events(1);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["dead_letter"], true);
    assert_eq!(kept[0]["reason_code"], "event_too_large");
    assert_eq!(kept[0]["uid"], "evt_huge");
    assert_eq!(kept[0]["raw_data"].as_str().unwrap().len(), body.len());
}

#[test]
fn unsupported_media_type_is_415() {
    let gw = Gateway::start(&hyprwatch_source());
    let resp = reqwest::blocking::Client::new()
        .post(gw.url("/ingest/hyprwatch"))
        .header("content-type", "application/xml")
        .body("<a/>")
        .send()
        .unwrap();
    assert_error_body(resp, 415);
}

#[test]
fn malformed_non_object_and_empty_bodies_are_400() {
    let gw = Gateway::start(&hyprwatch_source());
    // (body, the dead letter it leaves: an authenticated body with no readable event is
    // refused, but kept with its exact bytes first; nothing is kept of an empty one)
    let cases: [(&[u8], Option<&str>); 7] = [
        (b"{\"id\": \"evt_1\", ", Some("json_malformed")),
        (b"[1, 2]", Some("json_not_object")),
        (b"\"just a string\"", Some("json_not_object")),
        (b"", None),
        (b"   ", None),
        (b"[]", None),
        (b"42", Some("json_not_object")),
    ];
    // Each sent twice, as a vendor retries a refusal: refused alike, kept once. A kept body
    // tells Svix to stop retrying (`webhook-delivery: abort-message`); one not kept does not.
    for (body, kept) in cases.iter().chain(cases.iter()) {
        let resp = signed_post(&gw, "/ingest/hyprwatch", body);
        let status = resp.status().as_u16();
        assert_eq!(status, 400, "body {:?}", String::from_utf8_lossy(body));
        let abort = resp
            .headers()
            .get("webhook-delivery")
            .map(|v| v.to_str().unwrap().to_owned());
        let want = kept.map(|_| "abort-message".to_owned());
        assert_eq!(abort, want, "body {:?}", String::from_utf8_lossy(body));
        assert_error_body(resp, 400);
    }
    assert!(gw.logged("already kept as a dead letter (a retry); not kept again"));
    let kept: Vec<(String, String)> = gw
        .events()
        .iter()
        .map(|line| {
            assert_eq!(line["dead_letter"], true, "{line}");
            assert!(
                line.get("raw_data_base64").is_none(),
                "UTF-8 needs no copy: {line}"
            );
            let uid = line["uid"].as_str().unwrap_or_default();
            let raw = line["raw_data"].as_str().unwrap_or_default();
            let want = hex::encode(sha2::Sha256::digest(raw.as_bytes()));
            assert_eq!(uid, want, "the id is the body's SHA-256: {line}");
            (line["reason_code"].to_string(), raw.to_owned())
        })
        .collect();
    let want: Vec<(String, String)> = cases
        .iter()
        .filter_map(|(body, reason)| {
            let text = String::from_utf8(body.to_vec()).unwrap();
            reason.map(|r| (format!("\"{r}\""), text))
        })
        .collect();
    assert_eq!(kept, want);
    // Nesting past serde_json's limit is told apart from broken JSON.
    let deep = format!(
        "{{\"id\":\"evt_deep\",\"data\":{}1{}}}",
        "[".repeat(300),
        "]".repeat(300)
    );
    let body = assert_error_body(signed_post(&gw, "/ingest/hyprwatch", deep.as_bytes()), 400);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("deeper than")),
        "{body}"
    );
    assert!(
        crate::harness::wait_until(std::time::Duration::from_secs(5), || gw
            .logs()
            .contains("reason=\"json_too_deep\"")),
        "{}",
        gw.logs()
    );
    assert_eq!(
        gw.events().len(),
        want.len() + 1,
        "the deep body is kept too"
    );
    let metrics = gw.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hookgate_events_total{")
                && l.contains("outcome=\"dead_lettered\"")
                && l.ends_with(&format!(" {}", want.len() + 1))),
        "{metrics}"
    );
}

#[test]
fn arrays_and_ndjson_are_split_into_events() {
    let gw = Gateway::start(&hyprwatch_source());
    let array = format!(
        "[{},{},{}]",
        event("evt_a1"),
        event("evt_a2"),
        event("evt_a3")
    );
    let resp = signed_post(&gw, "/ingest/hyprwatch", array.as_bytes());
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<serde_json::Value>().unwrap()["events"], 3);
    let ndjson = format!("{}\n{}\n", event("evt_n1"), event("evt_n2"));
    let resp = signed_post(&gw, "/ingest/hyprwatch", ndjson.as_bytes());
    assert_eq!(resp.status(), 200);
    let events = gw.wait_events(5);
    let mut uids: Vec<String> = events
        .iter()
        .map(|e| e["metadata"]["uid"].as_str().unwrap().to_owned())
        .collect();
    uids.sort();
    assert_eq!(uids, ["evt_a1", "evt_a2", "evt_a3", "evt_n1", "evt_n2"]);
    // Each event keeps its own bytes as raw_data.
    let a2 = events
        .iter()
        .find(|e| e["metadata"]["uid"] == "evt_a2")
        .unwrap();
    assert_eq!(a2["raw_data"], event("evt_a2"));
}

#[test]
fn http2_prior_knowledge_is_served() {
    let gw = Gateway::start(&hyprwatch_source());
    let client = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let body = event("evt_h2");
    let resp = client
        .post(gw.url("/ingest/hyprwatch"))
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
}

#[test]
fn head_over_http2_is_answered_with_headers_only() {
    let gw = Gateway::start(&hyprwatch_source());
    let client = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // A refusal (405: the source takes POST) and an unknown path (404): both have a JSON body
    // for other methods, which a HEAD answer must not carry (HTTP/2 would reset the stream).
    for (path, status) in [("/ingest/hyprwatch", 405), ("/nowhere", 404)] {
        let resp = client.head(gw.url(path)).send().unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), status, "{path}");
        assert!(resp.headers().contains_key("x-request-id"));
        assert_eq!(resp.bytes().unwrap().len(), 0, "{path}");
    }
}

/// Sends headers and part of a body over a raw socket, then stalls.
fn stalled_request(gw: &Gateway, declared: usize, sent: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    write!(
        s,
        "POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hyprwatch-Signature: sha256=00\r\nContent-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    s.write_all(sent).unwrap();
    s
}

/// A request refused before its body arrived: hyper cannot drain the body, so it closes the
/// connection, and the answer says so (a client reusing the connection would send its next
/// request into a closed socket). Answered after its body was read, the connection stays.
#[test]
fn a_refusal_before_the_body_arrived_says_connection_close() {
    use std::io::{Read, Write};
    let gw = Gateway::start(&hyprwatch_source());
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n")
        .unwrap();
    let mut answer = [0u8; 4096];
    let n = s.read(&mut answer).unwrap();
    let head = String::from_utf8_lossy(&answer[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    // A refusal after the body was read (its signature checked) keeps the connection open.
    let answer = raw_exchange(
        &gw,
        b"POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hyprwatch-Signature: sha256=00\r\nContent-Length: 2\r\n\r\n{}GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1 404").count(), 1, "{answer}");
}

/// Sends `raw` on a fresh connection and reads the whole answer (the gateway closes it).
pub fn raw_exchange(gw: &Gateway, raw: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(raw).unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8(answer).unwrap()
}

#[test]
fn requests_the_http_parser_refuses_get_json_answers_log_lines_and_metrics() {
    let gw = Gateway::start(&hyprwatch_source());
    let many_fields: String = (0..101).map(|i| format!("X-Field-{i}: v\r\n")).collect();
    let cases = [
        (
            format!("POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\n{many_fields}Content-Length: 2\r\n\r\n{{}}"),
            "431",
            "headers_too_large",
        ),
        (
            format!(
                "POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\nX-Long: {}\r\n\r\n",
                "a".repeat(70 * 1024)
            ),
            "431",
            "headers_too_large",
        ),
        (
            "POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\nContent-Length: two\r\n\r\n{}".to_owned(),
            "400",
            "malformed_request",
        ),
        ("NOT HTTP AT ALL\r\n\r\n".to_owned(), "400", "malformed_request"),
        // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host line.
        (
            "POST /ingest/hyprwatch HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}".to_owned(),
            "400",
            "malformed_request",
        ),
        (
            "POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\nHost: y\r\nContent-Length: 2\r\n\r\n{}"
                .to_owned(),
            "400",
            "malformed_request",
        ),
        (
            "POST /ingest/hyprwatch HTTP/1.1\r\nHost: x, y\r\nContent-Length: 2\r\n\r\n{}".to_owned(),
            "400",
            "malformed_request",
        ),
        (
            "POST /ingest/hyprwatch HTTP/1.1\r\nHost: u@x/y\r\nContent-Length: 2\r\n\r\n{}".to_owned(),
            "400",
            "malformed_request",
        ),
        (
            format!(
                "POST /ingest/hyprwatch?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{{}}",
                "q".repeat(9 * 1024)
            ),
            "414",
            "uri_too_long",
        ),
    ];
    for (raw, status, reason) in &cases {
        let answer = raw_exchange(&gw, raw.as_bytes());
        let (head, body) = answer.split_once("\r\n\r\n").expect(&answer);
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        let header = |name: &str| {
            head.split("\r\n")
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} in {head}"))
                .to_owned()
        };
        assert_eq!(header("content-type"), "application/json");
        assert_eq!(header("content-length"), body.len().to_string());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        let id = header("x-request-id");
        assert_eq!(json["request_id"], id.as_str());
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
        assert!(
            crate::harness::wait_until(std::time::Duration::from_secs(5), || gw
                .logs()
                .lines()
                .any(|l| l.contains(&id) && l.contains(reason))),
            "no log line for {id}: {}",
            gw.logs()
        );
    }
    // One field under the cap is served as usual (the cap is the documented one, not lower).
    let under: String = (0..95).map(|i| format!("X-Field-{i}: v\r\n")).collect();
    let answer = raw_exchange(
        &gw,
        format!("POST /ingest/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{under}Content-Length: 2\r\n\r\n{{}}").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    let metrics = gw.metrics();
    for (reason, count) in [
        ("headers_too_large", 2),
        ("malformed_request", 6),
        ("uri_too_long", 1),
    ] {
        let line = format!(
            "hookgate_rejections_total{{reason=\"{reason}\",source=\"unmatched\",stage=\"listener\"}} {count}"
        );
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
    assert!(gw.events().is_empty());
}

#[test]
fn slow_body_is_408() {
    let gw = Gateway::start(&format!(
        "[listener]\naddress = \"127.0.0.1:0\"\nbody_read_timeout_ms = 300\n{}",
        hyprwatch_source()
    ));
    use std::io::Read;
    let mut s = stalled_request(&gw, 100, b"{\"id\":");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_id\""), "{answer}");
}

#[test]
fn graceful_shutdown_finishes_an_in_flight_request() {
    use std::io::{Read, Write};
    let mut gw = Gateway::start(&hyprwatch_source());
    let body = event("evt_inflight");
    let sig = hyprwatch_signature(HW_SECRET, body.as_bytes());
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    write!(
        s,
        "POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\nX-Hyprwatch-Signature: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body.as_bytes()[..10]).unwrap();
    // Make sure the request is in flight before the signal.
    assert!(crate::harness::wait_until(
        std::time::Duration::from_secs(5),
        || { gw.metrics().contains("hookgate_requests_in_flight 1") }
    ));
    gw.signal("TERM");
    // Draining: the admin port still answers, /readyz says 503 (so the Service stops routing
    // here) and Prometheus can still scrape.
    let draining = crate::harness::wait_until(std::time::Duration::from_secs(5), || {
        reqwest::blocking::get(gw.admin_url("/readyz")).is_ok_and(|r| r.status().as_u16() == 503)
    });
    assert!(draining, "/readyz never said 503 while draining");
    assert!(gw.metrics().contains("hookgate_requests_in_flight 1"));
    s.write_all(&body.as_bytes()[10..]).unwrap();
    let mut answer = String::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    answer.push_str(&String::from_utf8_lossy(&buf[..n]));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = gw.stop();
    assert!(status.success(), "{status:?}");
    let events = gw.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["metadata"]["uid"], "evt_inflight");
}

/// With a shutdown delay, the port keeps taking new connections after SIGTERM while
/// `/readyz` says 503 (a Service or load balancer still routes here for a few seconds), then
/// stops and the process ends.
#[test]
fn a_shutdown_delay_serves_new_connections_while_not_ready() {
    let mut gw = Gateway::start(&format!(
        "[listener]\naddress = \"127.0.0.1:0\"\nshutdown_delay_ms = 3000\n{}",
        hyprwatch_source()
    ));
    gw.signal("TERM");
    let not_ready = crate::harness::wait_until(std::time::Duration::from_secs(2), || {
        reqwest::blocking::get(gw.admin_url("/readyz")).is_ok_and(|r| r.status().as_u16() == 503)
    });
    assert!(not_ready, "/readyz never said 503");
    let fresh = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let body = event("evt_during_delay");
    let resp = fresh
        .post(gw.url("/ingest/hyprwatch"))
        .header("content-type", "application/json")
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let status = gw.stop();
    assert!(status.success(), "{status:?}");
    let events = gw.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["metadata"]["uid"], "evt_during_delay");
    assert!(
        std::net::TcpStream::connect(gw.addr).is_err(),
        "still accepting after the process ended"
    );
}

#[test]
fn check_accepts_a_good_config_and_rejects_a_bad_one_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &good,
        format!("[sink]\npath = {events:?}\n{}", hyprwatch_source()),
    )
    .unwrap();
    let out = crate::harness::check(&good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Events to standard output (the default path) pass, with a warning: a pipe cannot be
    // synced, so a 2xx would not mean durable.
    let piped = dir.path().join("piped.toml");
    std::fs::write(&piped, hyprwatch_source()).unwrap();
    let out = crate::harness::check(&piped);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("standard output, which cannot be synced"),
        "{err}"
    );
    // A source open to anyone passes, loudly.
    let open = dir.path().join("open.toml");
    std::fs::write(
        &open,
        "[[source]]\nname = \"lab\"\nvendor = \"hyprwatch\"\npath = \"/in/lab\"\nauth = [{ kind = \"none\" }]\n",
    )
    .unwrap();
    let out = crate::harness::check(&open);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"lab\" accepts UNAUTHENTICATED requests"),
        "{err}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"
[[source]]
name = "hyprwatch-prod"
vendor = "hyprwatc"
path = "/ingest/hyprwatch"
auth = [{ kind = "hmac", secrets = ["x"] }]

[[source]]
name = "second"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = []
"#,
    )
    .unwrap();
    let out = crate::harness::check(&bad);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("source[hyprwatch-prod].vendor") && err.contains("\"hyprwatc\""),
        "{err}"
    );
    assert!(
        err.contains("source[second].path") && err.contains("used by another source"),
        "{err}"
    );
    assert!(err.contains("source[second].auth"), "{err}");

    let syntax = dir.path().join("syntax.toml");
    std::fs::write(&syntax, "[[source]]\nname = \"a\"\nvendr = \"x\"\n").unwrap();
    let out = crate::harness::check(&syntax);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vendr") && err.contains("line 3"), "{err}");
}

#[test]
fn version_flag_prints_the_version() {
    let out = std::process::Command::new(crate::harness::binary())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn admin_endpoints_live_on_their_own_port() {
    let gw = Gateway::start(&hyprwatch_source());
    assert_eq!(
        reqwest::blocking::get(gw.admin_url("/healthz"))
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::blocking::get(gw.admin_url("/readyz"))
            .unwrap()
            .status(),
        200
    );
    let metrics = gw.metrics();
    assert!(metrics.contains("hookgate_build_info"));
    // Never on the public port.
    assert_eq!(
        reqwest::blocking::get(gw.url("/metrics")).unwrap().status(),
        404
    );
    assert_eq!(
        reqwest::blocking::get(gw.url("/healthz")).unwrap().status(),
        404
    );
}

/// Reads from `s` until the peer closes (or 10 s pass); returns what came and how long it took.
fn until_closed(s: &mut std::net::TcpStream) -> (String, std::time::Duration) {
    use std::io::Read;
    let start = std::time::Instant::now();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

/// HTTP/2 connections busy with frames but never a request: PINGs, or a request's headers
/// left open by one CONTINUATION frame after another. Both are idle (hyper's header timeout
/// is HTTP/1.1's alone) and closed after the header timeout, so they cannot hold the
/// `max_connections` slots.
#[test]
fn http2_connections_that_send_frames_but_no_request_are_closed() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let gw = Gateway::start(&format!(
        "[listener]\naddress = \"127.0.0.1:0\"\nheader_read_timeout_ms = 800\n{}",
        hyprwatch_source()
    ));
    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    // HEADERS for stream 1 without END_HEADERS: `:method: POST` (static index 3, indexed).
    let open_headers = frame(1, 0, 1, &[0x83]);
    // CONTINUATION frames of one `:scheme: http` (index 6) each, never END_HEADERS.
    let continuation = frame(9, 0, 1, &[0x86]);
    let ping = frame(6, 0, 0, &[0; 8]);
    for (opening, every_200ms) in [(None, &ping), (Some(&open_headers), &continuation)] {
        let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        s.write_all(&frame(4, 0, 0, &[])).unwrap();
        if let Some(f) = opening {
            s.write_all(f).unwrap();
        }
        let mut writer = s.try_clone().unwrap();
        let frames = every_200ms.clone();
        let started = Instant::now();
        let keep_sending = std::thread::spawn(move || {
            while started.elapsed() < Duration::from_secs(6) {
                if writer.write_all(&frames).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let (_, took) = until_closed(&mut s);
        assert!(took < Duration::from_secs(4), "open for {took:?}");
        keep_sending.join().unwrap();
    }
}

/// HTTP/2 connections hyper's HTTP/2 side ends for what the client sent (a flood of empty
/// CONTINUATION frames, a window update past 2^31 - 1) are refusals like any other: counted
/// by reason and logged with the client, where they left no trace before.
#[test]
fn http2_connections_ended_for_a_flood_or_a_protocol_error_are_counted_and_logged() {
    use std::io::Write;
    let gw = Gateway::start(&hyprwatch_source());
    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let mut flood = frame(1, 0, 1, &[0x83]);
    for _ in 0..20_000 {
        flood.extend(frame(9, 0, 1, &[]));
    }
    let overflow = frame(8, 0, 0, &0x7fff_ffffu32.to_be_bytes());
    for (frames, reason) in [
        (flood, "http2_flood"),
        (overflow, "http2_flow_control_error"),
    ] {
        let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
        s.write_all(&frame(4, 0, 0, &[])).unwrap();
        let _ = s.write_all(&frames);
        let _ = until_closed(&mut s);
        let counted = format!(
            "hookgate_rejections_total{{reason=\"{reason}\",source=\"unmatched\",stage=\"listener\"}} 1"
        );
        assert!(
            wait_until(std::time::Duration::from_secs(5), || gw
                .metrics()
                .contains(&counted)),
            "{counted} missing:\n{}",
            gw.metrics()
        );
    }
    let logs = gw.logs();
    assert!(
        logs.contains("HTTP/2 connection ended for the client's frames"),
        "{logs}"
    );
}

#[test]
fn silent_connections_are_closed_after_the_header_timeout_but_a_slow_request_is_not_cut() {
    use std::io::Write;
    use std::time::Duration;
    let gw = Gateway::start(&format!(
        "[listener]\naddress = \"127.0.0.1:0\"\nheader_read_timeout_ms = 800\nmax_connections = 3\nmax_connections_per_address = 3\n{}",
        hyprwatch_source()
    ));
    let connect = || std::net::TcpStream::connect(gw.addr).unwrap();
    // Nothing at all, the start of HTTP/2's preface, a whole preface: each would have held a
    // connection slot for ever (hyper's own timeout waits for the protocol to be known).
    let mut silent = connect();
    let mut one_byte = connect();
    one_byte.write_all(b"P").unwrap();
    let mut preface = connect();
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    for s in [&mut silent, &mut one_byte, &mut preface] {
        let (_, took) = until_closed(s);
        assert!(took < Duration::from_secs(5), "open for {took:?}");
    }
    // With the three slots free again, a request is served; its keep-alive connection,
    // silent afterwards, is closed too.
    let body = event("evt_after_idle");
    let sig = hyprwatch_signature(HW_SECRET, body.as_bytes());
    let mut kept = connect();
    write!(
        kept,
        "POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\nX-Hyprwatch-Signature: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let (answer, took) = until_closed(&mut kept);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(took < Duration::from_secs(5), "open for {took:?}");
    // A request whose body drips in over longer than the header timeout is in flight: it is
    // cut by the body timeout (30 s here), not by the idle one.
    let body = event("evt_dripping");
    let sig = hyprwatch_signature(HW_SECRET, body.as_bytes());
    let mut slow = connect();
    write!(
        slow,
        "POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\nX-Hyprwatch-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    slow.write_all(first).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    slow.write_all(rest).unwrap();
    let (answer, _) = until_closed(&mut slow);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    gw.wait_events(2);
    // A head sent a byte at a time (slowloris) is never idle, but is cut at the header
    // timeout all the same, and that is a refusal counted and logged like the silent ones.
    let mut dribble = connect();
    dribble
        .write_all(b"POST /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    for byte in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if dribble.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(4) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (answer, _) = until_closed(&mut dribble);
    assert!(!answer.contains("200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "open for {:?}",
        started.elapsed()
    );
    let metrics = gw.metrics();
    let line = "hookgate_rejections_total{reason=\"request_timeout\",source=\"unmatched\",stage=\"listener\"} 4";
    assert!(metrics.contains(line), "{line} not in\n{metrics}");
    let logs = gw.logs();
    assert!(logs.contains("no request within the header read timeout"));
    assert!(logs.contains("request head not complete within the header read timeout"));
}

#[test]
fn http2_heads_over_the_limits_get_the_same_json_431() {
    let gw = Gateway::start(&hyprwatch_source());
    let h2 = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let post = || {
        h2.post(gw.url("/ingest/hyprwatch"))
            .header("content-type", "application/json")
            .body("{}")
    };
    let mut many = post();
    for i in 0..101 {
        many = many.header(format!("x-field-{i}"), "v");
    }
    let long = post().header("x-long", "a".repeat(70 * 1024));
    for req in [many, long] {
        let resp = req.send().unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 431);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: serde_json::Value = resp.json().unwrap();
        assert_eq!(body["request_id"], id.as_str());
        assert!(body["error"].as_str().unwrap().contains("100 fields"));
    }
    // Under the limits: the request goes on its trip (unsigned here, so 401).
    let mut fine = post();
    for i in 0..60 {
        fine = fine.header(format!("x-field-{i}"), "v");
    }
    assert_eq!(fine.send().unwrap().status(), 401);
    let metrics = gw.metrics();
    let line = "hookgate_rejections_total{reason=\"headers_too_large\",source=\"unmatched\",stage=\"listener\"} 2";
    assert!(metrics.contains(line), "{line} not in\n{metrics}");
}

/// The embedded default writing to a file journals delivered ids beside it: a vendor's
/// retry that arrives after a restart is still a duplicate, not a second event.
#[test]
fn the_embedded_default_remembers_delivered_ids_across_a_restart() {
    let gw = Gateway::start(&hyprwatch_source());
    let send = |gw: &Gateway, id: &str| {
        let resp = signed_post(gw, "/ingest/hyprwatch", event(id).as_bytes());
        let status = resp.status().as_u16();
        (status, resp.json::<serde_json::Value>().unwrap())
    };
    assert_eq!(send(&gw, "evt_before_restart").0, 200);
    gw.wait_events(1);
    assert!(gw.logged("dedup ids are journaled"), "{}", gw.logs());
    let (status, dir, events) = gw.stop_keep_dir();
    assert!(status.success(), "{status:?}");
    let config = dir.path().join("hookgate.toml");
    let gw = Gateway::spawn(dir, events, &config, &[]).unwrap();
    let (status, answer) = send(&gw, "evt_before_restart");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["duplicates"], 1, "{answer}");
    assert_eq!(send(&gw, "evt_after_restart").0, 200);
    let got = gw.wait_events(2);
    let uids: Vec<&str> = got
        .iter()
        .filter_map(|e| e["metadata"]["uid"].as_str())
        .collect();
    assert_eq!(uids, ["evt_before_restart", "evt_after_restart"], "{got:?}");
}

/// A vendor's retry sent while its first attempt is still being delivered (ten at once
/// here) waits for that delivery instead of getting 409: every one is answered 200, one
/// delivers, nine are duplicates, and one event is written.
#[test]
fn concurrent_copies_of_one_event_all_get_200_and_one_is_written() {
    let gw = Gateway::start(&hyprwatch_source());
    let body = event("evt_ten_at_once");
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..10)
            .map(|_| {
                s.spawn(|| {
                    let resp = signed_post(&gw, "/ingest/hyprwatch", body.as_bytes());
                    (resp.status().as_u16(), resp.json().unwrap())
                })
            })
            .collect();
        senders.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let count =
        |field: &str| -> u64 { answers.iter().filter_map(|(_, a)| a[field].as_u64()).sum() };
    assert_eq!(
        (count("events"), count("duplicates")),
        (1, 9),
        "{answers:?}"
    );
    gw.wait_events(1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(gw.events().len(), 1);
}

/// A parser may not read the header that carries its source's credentials, whatever it is
/// called (a name like a secret is refused in the definition itself): it would copy them into
/// every event (outside re-check: `X-Hookgate-Key` mapped into `unmapped` passed `check`).
#[test]
fn check_refuses_a_parser_reading_its_sources_credential_header() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("parsers")).unwrap();
    let parser = |header: &str| {
        format!(
            "[parser]\nproduct = \"Acme\"\nvendor_name = \"Acme\"\n[id]\nfrom = [\"id\"]\n\
             window = \"1h\"\n[[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n\
             map = [ {{ to = \"unmapped.h\", header = \"{header}\" }} ]\n"
        )
    };
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            "[parsers]\ndir = {:?}\n[sink]\npath = {:?}\n[[source]]\nname = \"acme\"\nvendor = \"acme\"\n\
             path = \"/in/acme\"\nauth = [{{ kind = \"header\", name = \"X-Hookgate-Key\", values = [\"acme-key-0123456789abcdef\"] }}]\n",
            dir.path().join("parsers"),
            dir.path().join("events.jsonl"),
        ),
    )
    .unwrap();
    let check = || crate::harness::check(&config);
    let acme = dir.path().join("parsers/acme.toml");
    std::fs::write(&acme, parser("X-Hookgate-Key")).unwrap();
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("reads header \"x-hookgate-key\", which carries the source's credentials"),
        "{err}"
    );
    assert!(!err.contains("acme-key-0123456789abcdef"), "{err}");
    // Another header is fine.
    std::fs::write(&acme, parser("X-Acme-Tenant")).unwrap();
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client that sends requests back to back and never reads the answers leaves the gateway
/// waiting on a full socket (outside re-check: such connections held their slots for ever and
/// locked every other sender out). Once none of its answers has gone out for the header
/// timeout, the connection is closed and counted.
#[test]
fn a_connection_whose_client_reads_no_answers_is_closed() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let gw = Gateway::start(&format!(
        "[listener]\naddress = \"127.0.0.1:0\"\nheader_read_timeout_ms = 800\nmax_connections = 1\n{}",
        hyprwatch_source()
    ));
    let mut hog = std::net::TcpStream::connect(gw.addr).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let batch = b"GET /ingest/hyprwatch HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000);
    let started = Instant::now();
    // Until the gateway stops taking requests (its answers fill both sockets) and the write
    // times out, or it closes the connection.
    while started.elapsed() < Duration::from_secs(30) && hog.write_all(&batch).is_ok() {}
    assert!(
        wait_until(Duration::from_secs(10), || gw.metrics().contains(
            "reason=\"answers_not_read\",source=\"unmatched\",stage=\"listener\""
        )),
        "{}",
        gw.metrics()
    );
    assert!(gw.logged("its answers could not be sent for 800 ms"));
    // The one connection slot is free again: a vendor's request is served.
    let body = event("evt_after_hog");
    let resp = reqwest::blocking::Client::new()
        .post(gw.url("/ingest/hyprwatch"))
        .header(
            "x-hyprwatch-signature",
            hyprwatch_signature(HW_SECRET, body.as_bytes()),
        )
        .timeout(Duration::from_secs(10))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(hog);
}

/// One address may hold at most its share of the connection slots (half by default): a
/// client keeping idle sockets open (reopened as each is closed) cannot take them all and
/// keep the vendors waiting in the accept queue (outside re-check). One more connection from
/// it is closed at once and counted; a trusted proxy, carrying every client, is exempt.
#[test]
fn one_address_holds_at_most_its_share_of_the_connections() {
    use std::time::Duration;
    let listener = "[listener]\naddress = \"127.0.0.1:0\"\nheader_read_timeout_ms = 3000\nmax_connections = 4\n";
    let gw = Gateway::start(&format!("{listener}{}", hyprwatch_source()));
    let connect = || std::net::TcpStream::connect(gw.addr).unwrap();
    let held = [connect(), connect()];
    std::thread::sleep(Duration::from_millis(200));
    let (_, took) = until_closed(&mut connect());
    assert!(took < Duration::from_secs(1), "open for {took:?}");
    assert!(
        gw.metrics().contains(
            "hookgate_rejections_total{reason=\"connections_per_address\",source=\"unmatched\",stage=\"listener\"} 1"
        ),
        "{}",
        gw.metrics()
    );
    assert!(gw.logged("its address already holds its share of the connections (2)"));
    drop(held);

    let behind = Gateway::start(&format!(
        "[trust]\ntrusted_proxies = [\"127.0.0.1\"]\n{listener}{}",
        hyprwatch_source()
    ));
    let connect = || std::net::TcpStream::connect(behind.addr).unwrap();
    let _held = [connect(), connect()];
    std::thread::sleep(Duration::from_millis(200));
    let (_, took) = until_closed(&mut connect());
    assert!(
        took > Duration::from_secs(2),
        "a trusted proxy's connection closed after {took:?}"
    );
}
