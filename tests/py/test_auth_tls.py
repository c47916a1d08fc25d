"""TLS termination: a real handshake with Python's ssl (through requests) against a
certificate made at test time with the openssl CLI (no key is committed), and a certificate
swap on SIGHUP that keeps established connections open."""
import hashlib
import hmac
import json
import signal
import ssl
import subprocess

import pytest
import requests

from conftest import wait_until

SECRET = "whsec_tls_test"


def make_pki(directory, name):
    """Creates a CA and a server certificate for 127.0.0.1/localhost in `directory`.
    Returns (ca_pem, cert_pem, key_pem) paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = directory / (name + "-ca.key"), directory / (name + "-ca.pem")
    key, csr, cert = directory / (name + ".key"), directory / (name + ".csr"), directory / (name + ".pem")
    ext = directory / (name + ".ext")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                   "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "1", "-subj", "/CN=hookgate test CA " + name,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return ca, cert, key


def tls_listener(cert, key):
    return '[listener]\naddress = "127.0.0.1:0"\n[listener.tls]\ncert_file = %s\nkey_file = %s\n' % (
        json.dumps(str(cert)), json.dumps(str(key)))


CONFIG = """
[[source]]
name = "hw"
vendor = "hyprwatch"
path = "/ingest/hyprwatch"
auth = [{ kind = "hmac", secrets = ["%s"] }]
""" % SECRET


def signed_post(session, gw, n, verify):
    body = json.dumps({"id": "evt_tls_%d" % n, "event": "host.online",
                       "timestamp": "2024-01-15T10:35:00Z", "data": {}}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return session.post(gw.url("/ingest/hyprwatch"), data=body, verify=str(verify), timeout=10,
                        headers={"content-type": "application/json", "X-Hyprwatch-Signature": sig})


def test_tls_handshake_and_certificate_reload_on_sighup(gateway, tmp_path):
    ca_a, cert_a, key_a = make_pki(tmp_path / "pki", "a")
    live_cert, live_key = tmp_path / "live-cert.pem", tmp_path / "live-key.pem"
    live_cert.write_bytes(cert_a.read_bytes())
    live_key.write_bytes(key_a.read_bytes())
    gw = gateway(tls_listener(live_cert, live_key) + CONFIG)
    assert gw.url("/").startswith("https://")

    kept = requests.Session()
    assert signed_post(kept, gw, 1, ca_a).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(gw.url("/ingest/hyprwatch").replace("https://", "http://"), timeout=5)

    ca_b, cert_b, key_b = make_pki(tmp_path / "pki", "b")
    live_cert.write_bytes(cert_b.read_bytes())
    live_key.write_bytes(key_b.read_bytes())
    gw.signal(signal.SIGHUP)
    assert wait_until(lambda: "TLS certificate reloaded" in gw.log_text())

    # New handshakes present the new certificate.
    assert signed_post(requests.Session(), gw, 2, ca_b).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        signed_post(requests.Session(), gw, 3, ca_a)
    host, port = gw.addr.rsplit(":", 1)
    served = ssl.get_server_certificate((host, int(port)))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(cert_b.read_text())
    # The connection opened before the reload is still served.
    assert signed_post(kept, gw, 4, ca_a).status_code == 200
    assert len(gw.wait_events(3)) == 3


def test_broken_certificate_on_reload_keeps_the_running_one(gateway, tmp_path):
    ca, cert, key = make_pki(tmp_path / "pki", "c")
    live_cert = tmp_path / "live-cert.pem"
    live_cert.write_bytes(cert.read_bytes())
    gw = gateway(tls_listener(live_cert, key) + CONFIG)
    live_cert.write_text("not a certificate\n")
    gw.signal(signal.SIGHUP)
    assert wait_until(lambda: "config reload failed" in gw.log_text())
    assert signed_post(requests.Session(), gw, 1, ca).status_code == 200


def test_a_request_the_http_parser_refuses_over_tls_gets_a_json_answer(gateway, tmp_path):
    """hyper refuses a head of 150 header fields itself; the answer still carries the JSON
    body and request id every refusal has, also inside TLS."""
    ca, cert, key = make_pki(tmp_path / "pki", "r")
    gw = gateway(tls_listener(cert, key) + CONFIG)
    host, port = gw.addr.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    fields = "".join("X-Field-%d: v\r\n" % i for i in range(150))
    head = "POST /ingest/hyprwatch HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: 2\r\n\r\n{}" % fields
    import socket
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(head.encode())
            answer = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                answer += chunk
    status_line, rest = answer.split(b"\r\n", 1)
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large"
    headers, body = rest.split(b"\r\n\r\n", 1)
    fields = dict(line.split(b": ", 1) for line in headers.split(b"\r\n"))
    assert fields[b"content-type"] == b"application/json"
    assert int(fields[b"content-length"]) == len(body)
    parsed = json.loads(body)
    assert parsed["request_id"] == fields[b"x-request-id"].decode()
    assert "too large" in parsed["error"]
    assert wait_until(lambda: 'reason="headers_too_large"' in gw.log_text())


def test_a_body_over_the_cap_gets_its_413_over_tls(gateway, tmp_path):
    """The 413 goes out before the body is read; the client is still sending it. Closed at
    once, the connection's unread bytes made a reset that beat the answer (requests raised
    SSLError for bodies from 300 KB up); the gateway now drains them as it closes."""
    ca, cert, key = make_pki(tmp_path / "pki", "b")
    capped = CONFIG.replace('auth = [', 'max_body_bytes = 2000\nauth = [')
    gw = gateway(tls_listener(cert, key) + capped)
    for size in (300_000, 2_000_000):
        r = requests.post(gw.url("/ingest/hyprwatch"), data=b"x" * size, verify=str(ca), timeout=10,
                          headers={"content-type": "application/json",
                                   "X-Hyprwatch-Signature": "sha256=00"})
        assert r.status_code == 413, size
        assert r.json()["request_id"] == r.headers["x-request-id"]


def test_failed_and_unfinished_tls_handshakes_are_counted_and_logged(gateway, tmp_path):
    """A plain-HTTP request to the TLS port and a connection that never finishes its
    handshake are refusals like any other: a metric by reason and a log line."""
    _, cert, key = make_pki(tmp_path / "pki", "h")
    listener = tls_listener(cert, key).replace(
        '[listener.tls]', 'header_read_timeout_ms = 500\n[listener.tls]')
    gw = gateway(listener + CONFIG)
    host, port = gw.addr.rsplit(":", 1)
    import socket
    import time
    metrics = lambda: requests.get(gw.admin_url("/metrics"), timeout=5).text
    # A TCP check that connects and closes (a load balancer's) is no refusal.
    socket.create_connection((host, int(port)), timeout=10).close()
    time.sleep(0.3)
    assert 'reason="tls_handshake"' not in metrics()
    with socket.create_connection((host, int(port)), timeout=10) as plain:
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        plain.recv(1024)
    with socket.create_connection((host, int(port)), timeout=10) as silent:
        silent.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        assert silent.recv(1024) == b""  # closed at the header read timeout
    assert wait_until(lambda: 'reason="tls_handshake"' in metrics()), metrics()
    assert 'reason="request_timeout"' in metrics()
    assert "TLS handshake failed" in gw.log_text()
    assert "TLS handshake not complete" in gw.log_text()


def test_check_refuses_the_tls_files_serve_would_refuse(tmp_path):
    """`hookgate check` reads the certificate and key as `serve` does: a key of another
    certificate, or a file that is no certificate, exits 64 naming listener.tls."""
    from conftest import BIN
    _, cert, key = make_pki(tmp_path / "a", "a")
    _, _, other_key = make_pki(tmp_path / "b", "b")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")

    def check(cert_file, key_file):
        config = tmp_path / "hookgate.toml"
        config.write_text(tls_listener(cert_file, key_file) + CONFIG)
        return subprocess.run([BIN, "check", "--config", str(config)], capture_output=True, text=True)

    good = check(cert, key)
    assert good.returncode == 0, good.stderr
    for cert_file, key_file in [(cert, other_key), (garbage, key), (key, key)]:
        bad = check(cert_file, key_file)
        assert bad.returncode == 64, (cert_file, key_file, bad.stdout)
        assert "listener.tls" in bad.stderr, bad.stderr


def _speak(gw, ca, alpn, opening):
    """Connects over TLS offering `alpn`, sends `opening`, returns (negotiated, answer bytes)."""
    import socket
    host, port = gw.addr.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(alpn)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            negotiated = tls.selected_alpn_protocol()
            tls.sendall(opening)
            answer = b""
            try:
                while len(answer) < 65536:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except (ssl.SSLError, ConnectionResetError, TimeoutError, socket.timeout):
                pass
    return negotiated, answer


def test_the_protocol_spoken_over_tls_is_the_one_alpn_settled_on(gateway, tmp_path):
    """RFC 9113 §3.2: after ALPN chose `h2` the connection speaks HTTP/2 only, after
    `http/1.1` (or no ALPN) HTTP/1.1 only; before, either was served whatever was chosen."""
    ca, cert, key = make_pki(tmp_path / "pki", "a")
    gw = gateway(tls_listener(cert, key) + CONFIG)
    http1 = b"GET /ingest/hyprwatch HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    negotiated, answer = _speak(gw, ca, ["h2"], http1)
    assert negotiated == "h2"
    assert not answer.startswith(b"HTTP/1.1"), answer[:80]
    negotiated, answer = _speak(gw, ca, ["http/1.1"], preface)
    assert negotiated == "http/1.1"
    # Not HTTP/2 (whose answer opens with a SETTINGS frame): closed, or an HTTP/1.1 refusal.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]
    # Each protocol where it was chosen is served as before.
    negotiated, answer = _speak(gw, ca, ["http/1.1"], http1)
    assert answer.startswith(b"HTTP/1.1 "), answer[:80]
    negotiated, answer = _speak(gw, ca, ["h2"], preface)
    # A server SETTINGS frame (type 4) first: HTTP/2 spoken.
    assert len(answer) >= 9 and answer[3] == 4, answer[:80]
