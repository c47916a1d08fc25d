"""Shared fixtures for the Python oracle tests: start the real hookgate binary.

The binary comes from HOOKGATE_BIN (scripts/test.sh builds it and sets this), else
target/debug/hookgate. Each gateway gets its own temp dir, config and JSON-lines sink.
"""
import json
import os
import pathlib
import re
import signal
import subprocess
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("HOOKGATE_BIN", str(ROOT / "target" / "debug" / "hookgate"))


def wait_until(predicate, timeout=10.0, interval=0.02):
    """Polls predicate until it is truthy or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Gateway:
    def __init__(self, tmp_path, config_body, env=None):
        self.dir = tmp_path
        self.events_path = tmp_path / "events.jsonl"
        config = ""
        if "[listener]" not in config_body:
            config += '[listener]\naddress = "127.0.0.1:0"\n'
        if "[admin]" not in config_body:
            config += '[admin]\naddress = "127.0.0.1:0"\n'
        if "[sink]" not in config_body:
            config += "[sink]\npath = %s\n" % json.dumps(str(self.events_path))
        config += config_body
        self.config_path = tmp_path / "hookgate.toml"
        self.config_path.write_text(config)
        self.env = dict(os.environ, RUST_LOG="info,hookgate=debug", **(env or {}))
        self.logs = []
        self.proc = None
        self.start()

    def start(self):
        self.logs.clear()
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self.env,
            text=True,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

        def addresses():
            text = "\n".join(self.logs)
            admin = re.search(r"admin listening on (\S+)", text)
            public = re.search(r"(?<!admin )listening on (\S+)", text)
            if self.proc.poll() is not None:
                raise RuntimeError("hookgate exited:\n" + text)
            return (public.group(1), admin.group(1)) if public and admin else None

        found = wait_until(addresses, timeout=20)
        if not found:
            self.stop()
            raise RuntimeError("hookgate did not start:\n" + "\n".join(self.logs))
        self.addr, self.admin = found
        self.scheme = "https" if "scheme=\"https\"" in "\n".join(self.logs) or "scheme=https" in "\n".join(self.logs) else "http"

    def _pump(self, proc):
        for line in proc.stderr:
            self.logs.append(line.rstrip("\n"))

    def url(self, path):
        return "%s://%s%s" % (self.scheme, self.addr, path)

    def admin_url(self, path):
        return "http://%s%s" % (self.admin, path)

    def events(self):
        if not self.events_path.exists():
            return []
        out = []
        for line in self.events_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_events(self, n, timeout=10):
        wait_until(lambda: len(self.events()) >= n, timeout=timeout)
        return self.events()

    def log_text(self):
        return "\n".join(self.logs)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


@pytest.fixture
def gateway(tmp_path):
    """Factory: gateway(config_body, env=None) -> Gateway, stopped at test end."""
    started = []

    def make(config_body, env=None, subdir=None):
        d = tmp_path / (subdir or ("gw%d" % len(started)))
        d.mkdir(parents=True, exist_ok=True)
        gw = Gateway(d, config_body, env)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()
