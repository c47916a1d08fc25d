"""Operations oracles against the running gateway, with real tools: promtool lints a live
scrape, a real Prometheus server scrapes the gateway and answers a query, and headless
Chromium renders the status page."""
import hashlib
import hmac
import html.parser
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile

import pytest
import requests

from conftest import ROOT, wait_until

HW_SECRET = "whsec_ops_python"
TOKEN = "status-token-python-0123456789"

CONFIG = '''
[status]
token = "%s"

[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = [{ kind = "hmac", secrets = ["%s"] }]
expect_event_secs = 3600

[[source]]
name = "hp"
vendor = "hyperproof"
path = "/ingest/hyperproof"
auth = [{ kind = "none" }]
expect_heartbeat_secs = 90000
''' % (TOKEN, HW_SECRET)


def need(tool):
    path = shutil.which(tool)
    assert path, "%s is not installed (scripts/test.sh installs it)" % tool
    return path


def send_event(gw, event_id, secret=HW_SECRET):
    body = json.dumps({
        "id": event_id, "event": "host.online", "timestamp": "2024-01-15T10:35:00Z",
        "data": {"host_id": "h1", "hostname": "server-01", "platform": "linux"},
        "password": "hunter2-must-not-show",
    }).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(gw.url("/ingest/hyprwatch"), data=body, timeout=10,
                         headers={"content-type": "application/json", "x-hyprwatch-signature": sig})


def exercise(gw):
    """Traffic of every kind, so most series exist in the scrape."""
    assert send_event(gw, "evt_ops_1").status_code == 200
    assert send_event(gw, "evt_ops_1").status_code == 200  # duplicate
    assert send_event(gw, "evt_bad", secret="wrong").status_code == 401
    assert requests.post(gw.url("/ingest/hyperproof"), data=b"{}", timeout=10).status_code == 200
    assert requests.post(gw.url("/nowhere"), data=b"{}", timeout=10).status_code == 404


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_promtool_check_metrics_accepts_a_live_scrape(gateway):
    promtool = need("promtool")
    gw = gateway(CONFIG)
    exercise(gw)
    scrape = requests.get(gw.admin_url("/metrics"), timeout=5)
    assert scrape.status_code == 200
    text = scrape.text
    for series in ('hookgate_requests_total{source="unmatched",status="404"}',
                   'hookgate_heartbeats_total{source="hp"} 1',
                   'outcome="published"', 'outcome="duplicate"',
                   'hookgate_rejections_total{reason="signature_mismatch",source="hw",stage="auth"} 1',
                   "hookgate_source_last_event_timestamp_seconds{source=\"hw\"}",
                   "hookgate_build_info{version="):
        assert series in text, series
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_real_prometheus_scrapes_the_gateway_and_answers_a_query(gateway, tmp_path):
    prometheus = need("prometheus")
    gw = gateway(CONFIG)
    exercise(gw)
    config = tmp_path / "prometheus.yml"
    shutil.copy(ROOT / "deploy" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - %s\n"
        "scrape_configs:\n  - job_name: hookgate\n    static_configs:\n"
        "      - targets: ['%s']\n" % (tmp_path / "alerts.yml", gw.admin))
    port = free_port()
    proc = subprocess.Popen(
        [prometheus, "--config.file=%s" % config, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
         "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        api = "http://127.0.0.1:%d/api/v1/query" % port

        def heartbeats():
            try:
                r = requests.get(api, params={"query": 'hookgate_heartbeats_total{source="hp"}'}, timeout=2)
            except requests.RequestException:
                return None
            if r.status_code != 200:
                return None
            result = r.json()["data"]["result"]
            return result or None

        result = wait_until(heartbeats, timeout=60, interval=0.5)
        assert result, "Prometheus never returned hookgate_heartbeats_total"
        assert result[0]["metric"]["job"] == "hookgate"
        assert result[0]["metric"]["source"] == "hp"
        assert result[0]["value"][1] == "1"
        up = requests.get(api, params={"query": 'up{job="hookgate"}'}, timeout=5).json()
        assert up["data"]["result"][0]["value"][1] == "1"

        # Every dashboard query runs on this server (Grafana variables filled in).
        dashboard = json.loads((ROOT / "deploy" / "grafana" / "hookgate-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = (target["expr"].replace("$__rate_interval", "1m")
                        .replace("$job", ".*").replace("$instance", ".*"))
                r = requests.get(api, params={"query": expr}, timeout=5)
                assert r.status_code == 200 and r.json()["status"] == "success", (expr, r.text)

        # The alert rules load and evaluate without errors against real hookgate series.
        def rules_evaluated():
            groups = requests.get("http://127.0.0.1:%d/api/v1/rules" % port, timeout=5).json()
            rules = [r for g in groups["data"]["groups"] for r in g["rules"]]
            done = rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules)
            return rules if done else None

        rules = wait_until(rules_evaluated, timeout=30, interval=0.5)
        assert rules, "alert rules were never evaluated"
        assert len(rules) >= 9
        for rule in rules:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class StatusDom(html.parser.HTMLParser):
    """Collects the source rows (data-source, data-health, cell texts) and lookback texts."""

    def __init__(self):
        super().__init__()
        self.rows = {}
        self.lookback = {}
        self._row = None
        self._section = None
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-source" in a:
            self._row = a["data-source"]
            self.rows[self._row] = {"health": a.get("data-health"), "cells": []}
        elif tag == "td" and self._row:
            self._in_cell = True
            self.rows[self._row]["cells"].append("")
        elif tag == "section" and "data-source" in a:
            self._section = a["data-source"]
            self.lookback[self._section] = ""

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        elif tag == "td":
            self._in_cell = False
        elif tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._row and self._in_cell:
            self.rows[self._row]["cells"][-1] += data
        if self._section:
            self.lookback[self._section] += data


def chromium_binary():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("chromium is not installed (scripts/test.sh installs it)")


def test_status_page_renders_sources_and_health_in_headless_chromium(gateway):
    chromium = chromium_binary()
    gw = gateway(CONFIG)
    exercise(gw)
    # A bad signature after the last accepted request: hw is failing authentication.
    assert send_event(gw, "evt_ops_2", secret="wrong").status_code == 401
    profile = tempfile.mkdtemp(prefix="hookgate-chromium-")
    url = "http://soc:%s@%s/status/page" % (TOKEN, gw.admin)
    try:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--user-data-dir=%s" % profile, "--dump-dom", url],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = StatusDom()
    dom.feed(result.stdout)
    assert set(dom.rows) == {"hw", "hp"}, result.stdout[:2000]
    hw, hp = dom.rows["hw"], dom.rows["hp"]
    assert hw["health"] == "failing_auth"
    assert hw["cells"][:4] == ["hw", "hyprwatch", "/ingest/hyprwatch", "Failing auth"]
    assert hp["health"] == "healthy"
    assert hp["cells"][:4] == ["hp", "hyperproof", "/ingest/hyperproof", "Healthy"]
    assert hp["cells"][5] != "never"  # last heartbeat
    assert hp["cells"][4] == "never"  # a heartbeat is not an event
    assert "evt_ops_1" in dom.lookback["hw"]
    assert "[redacted]" in dom.lookback["hw"]
    assert "hunter2" not in result.stdout
    assert TOKEN not in result.stdout


def test_status_page_refuses_chromium_without_the_token(gateway):
    chromium = chromium_binary()
    gw = gateway(CONFIG)
    profile = tempfile.mkdtemp(prefix="hookgate-chromium-")
    try:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", "--user-data-dir=%s" % profile, "--dump-dom",
             "http://%s/status/page" % gw.admin],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = StatusDom()
    dom.feed(result.stdout)
    assert dom.rows == {}
    assert "hookgate sources" not in result.stdout
    # The same page with the token renders (so the refusal above is the token's doing).
    ok = requests.get(gw.admin_url("/status/page"), auth=("soc", TOKEN), timeout=5)
    assert ok.status_code == 200 and "hookgate sources" in ok.text
