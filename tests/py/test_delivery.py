"""Independent oracle for delivery: a Python Kafka client (confluent-kafka) reads back what
hookgate published, in both delivery modes, and checks key, headers, body and dedup.

Needs HOOKGATE_TEST_KAFKA (scripts/test.sh starts tansu); skipped loudly otherwise.
"""
import hashlib
import hmac
import json
import os
import time
import uuid

import pytest
import requests

KAFKA = os.environ.get("HOOKGATE_TEST_KAFKA")
SECRET = "whsec_py_delivery"

pytestmark = pytest.mark.skipif(not KAFKA, reason="SKIPPED (no HOOKGATE_TEST_KAFKA)")


def config(tmp_dir, topic, mode):
    return f'''
[delivery]
mode = "{mode}"

[kafka]
brokers = "{KAFKA}"
topic = "{topic}.{{vendor}}"
dead_letter_topic = "{topic}.dlq"
compression = "lz4"
linger_ms = 1

[spool]
dir = "{tmp_dir}/spool"

[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = [{{ kind = "hmac", secrets = ["{SECRET}"] }}]
'''


def post(gw, event):
    body = json.dumps(event).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(
        gw.url("/ingest/hyprwatch"),
        data=body,
        headers={"content-type": "application/json", "x-hyprwatch-signature": sig},
        timeout=30,
    )


def consume(topic, want, timeout=30.0):
    """Reads every partition of topic from offset 0 (high watermarks are not trusted)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({
        "bootstrap.servers": KAFKA,
        "group.id": "py-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    deadline = time.monotonic() + timeout
    while True:
        md = c.list_topics(topic, timeout=5)
        t = md.topics.get(topic)
        if t is not None and t.error is None and t.partitions:
            break
        assert time.monotonic() < deadline, f"topic {topic} never appeared"
        time.sleep(0.2)
    c.assign([TopicPartition(topic, p, 0) for p in t.partitions])
    out, last = [], time.monotonic()
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error():
            if len(out) >= want and time.monotonic() - last > 1.5:
                break
            continue
        out.append(m)
        last = time.monotonic()
    c.close()
    return out


@pytest.mark.parametrize("mode", ["spool", "direct"])
def test_events_reach_kafka_once_with_key_and_headers(gateway, tmp_path, mode):
    topic = "py-" + uuid.uuid4().hex[:12]
    gw = gateway(config(tmp_path, topic, mode))
    ids = [f"py-{mode}-{i}" for i in range(5)]
    for i in ids:
        event = {"id": i, "event": "host.online", "timestamp": "2024-01-15T10:35:00Z",
                 "data": {"host_id": "h1"}}
        r = post(gw, event)
        assert r.status_code == 200, r.text
        # A vendor retry of the same event: accepted as a duplicate, not published again.
        r = post(gw, event)
        assert r.status_code == 200 and r.json()["duplicates"] == 1, r.text
    msgs = consume(f"{topic}.hyprwatch", len(ids))
    keys = sorted(m.key().decode() for m in msgs)
    assert keys == sorted(ids)
    for m in msgs:
        headers = {k: v.decode() for k, v in (m.headers() or [])}
        assert headers["source"] == "hw"
        assert headers["vendor"] == "hyprwatch"
        assert headers["ocsf.version"] == "1.8.0"
        body = json.loads(m.value())
        assert body["metadata"]["uid"] == m.key().decode()
        assert json.loads(body["raw_data"])["id"] == m.key().decode()
