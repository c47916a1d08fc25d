"""Hoop.dev via Svix: requests signed by the official `svix` library and the Standard Webhooks
reference library, never by hookgate's code. Every refusal asserts nothing reached the sink."""
import base64
import datetime
import json
import signal

import requests
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from conftest import wait_until

SECRET = "whsec_" + base64.b64encode(b"hookgate-test-svix-key-32-bytes!").decode()
OTHER = "whsec_" + base64.b64encode(b"another-svix-key-for-rotation-32").decode()

CONFIG = """
[[source]]
name = "hoop"
vendor = "hoop"
path = "/ingest/hoop"
auth = [{ kind = "svix", secrets = [%s] }]
"""

BODY = json.dumps({"event_type": "session.open", "id": "sess_1", "user": "a@b.c"})


def start(gateway, secrets=(SECRET,)):
    return gateway(CONFIG % ", ".join('"%s"' % s for s in secrets))


def now():
    return datetime.datetime.now(tz=datetime.timezone.utc)


def svix_headers(msg_id, ts, signature, family="svix"):
    return {
        "content-type": "application/json",
        family + "-id": msg_id,
        family + "-timestamp": str(int(ts.timestamp())),
        family + "-signature": signature,
    }


def send(gw, headers, body=BODY):
    return requests.post(gw.url("/ingest/hoop"), data=body.encode(), headers=headers, timeout=10)


def refused(gw, response, status=401):
    assert response.status_code == status, response.text
    assert "authentication failed" in response.text
    assert gw.events() == []


def test_official_svix_signature_is_accepted(gateway):
    gw = start(gateway)
    ts = now()
    sig = SvixWebhook(SECRET).sign("msg_1", ts, BODY)
    r = send(gw, svix_headers("msg_1", ts, sig))
    assert r.status_code == 200, r.text
    assert len(gw.wait_events(1)) == 1


def test_standard_webhooks_headers_are_accepted(gateway):
    gw = start(gateway)
    ts = now()
    sig = StandardWebhook(SECRET).sign("msg_2", ts, BODY)
    r = send(gw, svix_headers("msg_2", ts, sig, family="webhook"))
    assert r.status_code == 200, r.text


def test_wrong_secret_is_refused(gateway):
    gw = start(gateway)
    ts = now()
    refused(gw, send(gw, svix_headers("m", ts, SvixWebhook(OTHER).sign("m", ts, BODY))))


def test_tampered_body_is_refused(gateway):
    gw = start(gateway)
    ts = now()
    sig = SvixWebhook(SECRET).sign("m", ts, BODY)
    tampered = BODY.replace("a@b.c", "a@b.d")
    assert len(tampered) == len(BODY)
    refused(gw, send(gw, svix_headers("m", ts, sig), body=tampered))


def test_truncated_and_bit_flipped_signatures_are_refused(gateway):
    gw = start(gateway)
    ts = now()
    sig = SvixWebhook(SECRET).sign("m", ts, BODY)
    raw = bytearray(base64.b64decode(sig[3:]))
    raw[0] ^= 0x01
    flipped = "v1," + base64.b64encode(bytes(raw)).decode()
    for bad in (sig[:-4], flipped, sig.replace("v1,", "v2,")):
        refused(gw, send(gw, svix_headers("m", ts, bad)))


def test_missing_headers_are_refused(gateway):
    gw = start(gateway)
    ts = now()
    full = svix_headers("m", ts, SvixWebhook(SECRET).sign("m", ts, BODY))
    for missing in ("svix-id", "svix-timestamp", "svix-signature"):
        headers = {k: v for k, v in full.items() if k != missing}
        refused(gw, send(gw, headers))


def test_timestamps_six_minutes_old_or_ahead_are_refused(gateway):
    gw = start(gateway)
    for offset in (-360, 360):
        ts = now() + datetime.timedelta(seconds=offset)
        sig = SvixWebhook(SECRET).sign("m", ts, BODY)
        refused(gw, send(gw, svix_headers("m", ts, sig)))
    assert "timestamp_out_of_tolerance" in gw.log_text()


def test_replayed_message_is_a_duplicate_published_once(gateway):
    gw = start(gateway)
    ts = now()
    headers = svix_headers("msg_replay", ts, SvixWebhook(SECRET).sign("msg_replay", ts, BODY))
    first = send(gw, headers)
    assert first.status_code == 200 and first.json()["events"] == 1, first.text
    gw.wait_events(1)
    second = send(gw, headers)
    assert second.status_code == 200, second.text
    assert second.json()["duplicates"] == 1
    assert len(gw.events()) == 1


def test_malformed_entries_are_no_match_never_an_error(gateway):
    gw = start(gateway)
    ts = now()
    sig = SvixWebhook(SECRET).sign("m", ts, BODY)
    # The official SDK raises on this list; hookgate skips the bad entry.
    r = send(gw, svix_headers("m", ts, "v1,!!!notbase64 " + sig))
    assert r.status_code == 200, r.text
    gw.wait_events(1)


def test_only_malformed_entries_are_a_401_not_a_500(gateway):
    gw = start(gateway)
    ts = now()
    for bad in ("v1,!!!notbase64", "v1,!!!notbase64 v1,AAAA v1", "garbage", "v1," + "A" * 5000):
        refused(gw, send(gw, svix_headers("m", ts, bad)))


def test_rotation_and_reload(gateway):
    gw = start(gateway, secrets=(SECRET, OTHER))
    for i, secret in enumerate((SECRET, OTHER)):
        ts = now()
        body = json.dumps({"event_type": "session.open", "id": "rot_%d" % i})
        r = send(gw, svix_headers("r%d" % i, ts, SvixWebhook(secret).sign("r%d" % i, ts, body)), body=body)
        assert r.status_code == 200, r.text
    gw.wait_events(2)
    text = gw.config_path.read_text().replace('"%s", "%s"' % (SECRET, OTHER), '"%s"' % OTHER)
    gw.config_path.write_text(text)
    gw.signal(signal.SIGHUP)
    assert wait_until(lambda: "config reloaded" in gw.log_text())
    ts = now()
    body = json.dumps({"event_type": "session.open", "id": "rot_after"})
    r = send(gw, svix_headers("r9", ts, SvixWebhook(SECRET).sign("r9", ts, body)), body=body)
    assert r.status_code == 401
    assert len(gw.events()) == 2
