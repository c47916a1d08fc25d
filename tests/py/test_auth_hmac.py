"""Hyprwatch: the vendor doc's Python verification snippet run in reverse (Python `hmac`
signs; the key is the secret string's bytes, `whsec_` prefix included). Each refusal asserts
nothing reached the sink."""
import hashlib
import hmac
import json
import signal

import requests

from conftest import wait_until

SECRET = "whsec_hyprwatch_test_secret"
NEW_SECRET = "whsec_hyprwatch_rotated_secret"

CONFIG = """
[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = [{ kind = "hmac", secrets = [%s] }]
"""


def body(n=1):
    return json.dumps(
        {"id": "evt_%d" % n, "event": "host.online", "timestamp": "2024-01-15T10:35:00Z",
         "data": {"host_id": "h_abc123", "hostname": "server-01"}}
    ).encode()


def sign(payload, secret=SECRET):
    # The doc's verify_signature(), reversed: expected = hmac.new(secret.encode(), ...).
    return "sha256=" + hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def send(gw, payload, signature):
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["X-Hyprwatch-Signature"] = signature
    return requests.post(gw.url("/ingest/hyprwatch"), data=payload, headers=headers, timeout=10)


def start(gateway, *secrets):
    return gateway(CONFIG % ", ".join('"%s"' % s for s in (secrets or (SECRET,))))


def test_doc_snippet_signature_is_accepted(gateway):
    gw = start(gateway)
    r = send(gw, body(), sign(body()))
    assert r.status_code == 200, r.text
    assert gw.wait_events(1)[0]["metadata"]["uid"] == "evt_1"


def test_negative_cases_are_401_and_reach_nothing(gateway):
    gw = start(gateway)
    good = sign(body())
    digest = bytearray.fromhex(good[len("sha256="):])
    digest[-1] ^= 0x80
    cases = {
        "wrong secret": (body(), sign(body(), "whsec_wrong")),
        "key without whsec_ prefix": (body(), sign(body(), SECRET[len("whsec_"):])),
        "tampered body": (body().replace(b"server-01", b"server-02"), good),
        "truncated signature": (body(), good[:-2]),
        "bit-flipped signature": (body(), "sha256=" + digest.hex()),
        "missing header": (body(), None),
        "missing prefix": (body(), good[len("sha256="):]),
    }
    for name, (payload, signature) in cases.items():
        r = send(gw, payload, signature)
        assert r.status_code == 401, name
        assert gw.events() == [], name


def test_rotation_then_reload_refuses_the_removed_secret(gateway):
    gw = start(gateway, SECRET, NEW_SECRET)
    assert send(gw, body(1), sign(body(1), SECRET)).status_code == 200
    assert send(gw, body(2), sign(body(2), NEW_SECRET)).status_code == 200
    gw.wait_events(2)
    text = gw.config_path.read_text().replace('"%s", ' % SECRET, "")
    gw.config_path.write_text(text)
    gw.signal(signal.SIGHUP)
    assert wait_until(lambda: "config reloaded" in gw.log_text())
    assert send(gw, body(3), sign(body(3), SECRET)).status_code == 401
    assert send(gw, body(4), sign(body(4), NEW_SECRET)).status_code == 200
    assert len(gw.wait_events(3)) == 3
