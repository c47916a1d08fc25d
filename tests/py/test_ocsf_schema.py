"""OCSF oracle over the real binary: every fixture under fixtures/ goes through
`hookgate parse` (with the case's headers and fixed receive time), and EVERY event produced is
validated against the official OCSF 1.8.0 schema (PyPI ocsf-json-schema 1.2.0 + jsonschema),
plus the cross-field rules (type_uid, category, captions, metadata.version). The binary's
output must also equal the golden expected.json, so the goldens are schema-checked too.
Independent of the Rust code: the schema comes from the OCSF export, the hash from hashlib."""
import hashlib
import json
import os
import pathlib
import subprocess
import tomllib

import pytest

from ocsf_oracle import problems

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("HOOKGATE_BIN", str(ROOT / "target" / "debug" / "hookgate"))
FIXTURES = ROOT / "fixtures"
CASES = sorted(p for p in FIXTURES.glob("*/*") if p.is_dir())


def run_parse(case):
    req = tomllib.loads((case / "request.toml").read_text())
    vendor = case.parent.name
    args = [BIN, "parse", "--vendor", vendor, "--received-at-ms", str(req["received_at_ms"])]
    for k, v in req.get("headers", {}).items():
        args += ["-H", "%s: %s" % (k, v)]
    files = [str(case.parent / w / "body.json") for w in req.get("warm_up", [])]
    files.append(str(case / "body.json"))
    out = subprocess.run(args + files, capture_output=True, timeout=60, check=True)
    lines = [json.loads(l) for l in out.stdout.decode().splitlines() if l.strip()]
    # Warm-up bodies produce their own lines first; the case's lines are the last ones.
    return lines, req


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.name}" for c in CASES])
def test_fixture_events_are_valid_ocsf_and_match_golden(case):
    lines, req = run_parse(case)
    expected = json.loads((case / "expected.json").read_text())
    got = lines[len(lines) - len(expected):] if expected else lines
    assert got == expected, "binary output differs from expected.json"
    for ev in got:
        if ev.get("heartbeat"):
            continue
        assert "dead_letter" not in ev, ev
        assert problems(ev) == [], json.dumps(ev)[:2000]
        assert ev["unmapped"]["hookgate"]["received_time"] == req["received_at_ms"]


def test_every_vendor_has_fixtures():
    vendors = {p.parent.name for p in CASES}
    assert vendors == {"connectsecure", "hoop", "hyperproof", "hypr", "hyprwatch"}


def test_hyperproof_id_is_the_documented_content_hash():
    case = FIXTURES / "hyperproof" / "doc-activity"
    body = json.loads((case / "body.json").read_text())
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    want = hashlib.sha256(("hyperproof\n" + canonical).encode()).hexdigest()
    lines, _ = run_parse(case)
    assert lines[0]["metadata"]["uid"] == want


def test_hoop_uid_is_the_svix_message_id_not_the_session_id():
    lines, req = run_parse(FIXTURES / "hoop" / "session-open")
    assert lines[0]["metadata"]["uid"] == req["headers"]["svix-id"]
    assert lines[0]["time"] == int(req["headers"]["svix-timestamp"]) * 1000


def test_heartbeats_produce_no_event():
    for name in ["heartbeat-empty-object", "heartbeat-empty-body", "heartbeat-other-shape"]:
        lines, _ = run_parse(FIXTURES / "hyperproof" / name)
        assert lines == [{"heartbeat": True}]


def test_unknown_vendor_event_is_flagged_base_event_with_payload():
    lines, _ = run_parse(FIXTURES / "hyprwatch" / "unknown-event")
    ev = lines[0]
    assert (ev["class_uid"], ev["activity_id"], ev["activity_name"]) == (0, 99, "host.deleted")
    assert "unknown_event_type" in ev["metadata"]["labels"]
    assert ev["unmapped"]["data"] == {"host_id": "h_abc123"}
    assert ev["raw_data"] == (FIXTURES / "hyprwatch" / "unknown-event" / "body.json").read_text()
