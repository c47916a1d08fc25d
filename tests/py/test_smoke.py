"""Smoke test of the Python harness: the real binary answers on its admin port."""
import requests


def test_healthz_answers_ok(gateway):
    gw = gateway('''
[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = [{ kind = "hmac", secrets = ["whsec_x"] }]
''')
    r = requests.get(gw.admin_url("/healthz"), timeout=5)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
