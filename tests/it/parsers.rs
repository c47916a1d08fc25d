//! Parser fixtures: every case under `fixtures/<vendor>/<case>/` runs through split → parse →
//! normalize in process (the `hookgate parse` path) with the case's headers and a fixed
//! receive time, and must equal its `expected.json` exactly. Fails when a parser has no
//! fixture or a fixture names a parser that does not exist.
//!
//! `HOOKGATE_BLESS=1 cargo test --test it parsers::` rewrites the golden files (review the
//! diff before committing).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use hookgate::parse::Catalog;
use hookgate::preview;
use serde_json::Value;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn dirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

struct Request {
    headers: Vec<String>,
    received_at_ms: i64,
    warm_up: Vec<String>,
}

fn request(case: &Path) -> Request {
    let text = std::fs::read_to_string(case.join("request.toml"))
        .unwrap_or_else(|e| panic!("{}: request.toml: {e}", case.display()));
    let v: toml::Value = toml::from_str(&text).unwrap();
    let headers = v
        .get("headers")
        .and_then(toml::Value::as_table)
        .map(|t| {
            t.iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap()))
                .collect()
        })
        .unwrap_or_default();
    Request {
        headers,
        received_at_ms: v["received_at_ms"].as_integer().unwrap(),
        warm_up: v
            .get("warm_up")
            .and_then(toml::Value::as_array)
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default(),
    }
}

/// Runs one case (after its warm-ups) through a fresh parser instance.
fn run_case(vendor: &str, case: &Path) -> Vec<Value> {
    let catalog = Catalog::load(None).unwrap();
    let parser = catalog.get(vendor).unwrap();
    let req = request(case);
    for w in &req.warm_up {
        let dir = case.parent().unwrap().join(w);
        let wreq = request(&dir);
        let body = std::fs::read(dir.join("body.json")).unwrap();
        let headers = preview::header_map(&wreq.headers).unwrap();
        preview::render(&parser, &headers, Bytes::from(body), wreq.received_at_ms).unwrap();
    }
    let body = std::fs::read(case.join("body.json")).unwrap();
    let headers = preview::header_map(&req.headers).unwrap();
    preview::render(&parser, &headers, Bytes::from(body), req.received_at_ms)
        .unwrap_or_else(|e| panic!("{}: {e}", case.display()))
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn every_parser_has_fixtures_and_every_fixture_a_parser() {
    let catalog = Catalog::load(None).unwrap();
    let parsers: BTreeSet<String> = catalog.names().into_iter().collect();
    let fixture_vendors: BTreeSet<String> = dirs(&fixtures_root())
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        parsers, fixture_vendors,
        "parsers without fixtures, or fixtures without a parser"
    );
    for vendor in &fixture_vendors {
        assert!(
            !dirs(&fixtures_root().join(vendor)).is_empty(),
            "fixtures/{vendor} has no case"
        );
    }
}

#[test]
fn every_fixture_matches_its_golden_output() {
    let bless = std::env::var_os("HOOKGATE_BLESS").is_some();
    let mut failures = Vec::new();
    let mut cases = 0;
    for vendor_dir in dirs(&fixtures_root()) {
        let vendor = vendor_dir.file_name().unwrap().to_str().unwrap().to_owned();
        for case in dirs(&vendor_dir) {
            cases += 1;
            let got = Value::Array(run_case(&vendor, &case));
            let path = case.join("expected.json");
            if bless {
                let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
                std::fs::write(&path, text).unwrap();
                continue;
            }
            let want: Value = match std::fs::read_to_string(&path) {
                Ok(t) => serde_json::from_str(&t).unwrap(),
                Err(e) => {
                    failures.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            if got != want {
                failures.push(format!(
                    "{}: output differs from expected.json\n got: {}\n",
                    case.display(),
                    serde_json::to_string(&got).unwrap()
                ));
            }
        }
    }
    assert!(cases > 0, "no fixtures found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hyprwatch_query_keeps_first_100_rows_and_flags_truncation() {
    let case = fixtures_root().join("hyprwatch/query-completed-over-100-rows");
    let events = run_case("hyprwatch", &case);
    let e = &events[0];
    assert_eq!(e["evidences"].as_array().unwrap().len(), 100);
    assert_eq!(e["evidences"][99]["data"]["pid"], "99");
    assert_eq!(e["metadata"]["is_truncated"], true);
}

#[test]
fn hoop_close_takes_user_from_the_open_of_its_session() {
    let root = fixtures_root().join("hoop");
    let hit = run_case("hoop", &root.join("session-close-cache-hit"));
    assert_eq!(hit[0]["user"]["name"], "alice@example.com");
    assert_eq!(hit[0]["service"]["name"], "pg-prod");
    assert!(hit[0]["metadata"].get("labels").is_none());
    let miss = run_case("hoop", &root.join("session-close-cache-miss"));
    assert_eq!(miss[0]["user"]["name"], "unknown");
    assert_eq!(miss[0]["metadata"]["labels"][0], "user_unresolved");
}

#[test]
fn hypr_audit_id_stays_an_exact_string() {
    let case = fixtures_root().join("hypr/doc-registration-initiated");
    let events = run_case("hypr", &case);
    assert_eq!(events[0]["metadata"]["uid"], "409878875789426688");
}

#[test]
fn connectsecure_invalid_json_sample_keeps_exact_raw_bytes() {
    let case = fixtures_root().join("connectsecure/doc-critical-problems-invalid-json");
    let body = std::fs::read_to_string(case.join("body.json")).unwrap();
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "the sample must stay invalid JSON"
    );
    let events = run_case("connectsecure", &case);
    assert_eq!(events[0]["raw_data"], body.as_str());
    assert_eq!(
        events[0]["vulnerabilities"][0]["cve"]["uid"],
        "CVE-2021-44228"
    );
}

#[test]
fn broken_definition_reports_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[parser]\nproduct = \"X\"\nvendor_name = \"X\"\n[id]\nhash = \"x\"\nwindow = \"1h\"\n\n[[route]]\nname = \"r\"\nclass = 3002\nactivity = 1\nextract = [\n  { from = \"a\", regex = '(?P<x' },\n]\n";
    std::fs::write(dir.path().join("broken.toml"), text).unwrap();
    let err = Catalog::load(Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("broken.toml"), "{err}");
    assert!(err.contains("line 13"), "{err}");
}

#[test]
fn the_parse_tool_stops_quietly_when_its_reader_stops() {
    // `hookgate parse … | head`: the reader is gone before the tool writes. The real binary
    // must end without a panic, and with success, since the parse itself worked.
    let body = fixtures_root().join("hypr/access-token-revoke/body.json");
    let mut child = std::process::Command::new(crate::harness::binary())
        .args(["parse", "--vendor", "hypr"])
        .arg(&body)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
}
