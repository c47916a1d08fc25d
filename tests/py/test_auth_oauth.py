"""OAuth2 client credentials against hookgate's token endpoint, driven by standard client
libraries (authlib and requests-oauthlib), with POST and with GET; then the token is used as
HYPR does (`Authorization: Bearer`). Each refusal asserts nothing reached the sink."""
import base64
import gzip
import hashlib
import hmac
import http.client
import json
import time

import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from oauthlib.oauth2 import BackendApplicationClient, LegacyApplicationClient
from requests_oauthlib import OAuth2Session as OauthlibSession

from test_auth_tls import make_pki, tls_listener

SIGNING_KEY = "py-test-signing-key-0123456789abcdef"

CONFIG = """
[trust]
token_signing_keys = ["%s"]

[[source]]
name = "hypr-prod"
vendor = "hypr"
path = "/ingest/hypr/prod"
methods = ["POST", "PUT"]
auth = [{ kind = "oauth", clients = [{ client_id = "hypr-client", client_secret = "s3cret/with+chars" }] }]

[[source]]
name = "hypr-other"
vendor = "hypr"
path = "/ingest/hypr/other"
auth = [{ kind = "oauth", clients = [{ client_id = "other-client", client_secret = "other-secret" }] }]

[[source]]
name = "cs"
vendor = "connectsecure"
path = "/ingest/connectsecure"
auth = [{ kind = "header", name = "X-CS-Key", values = ["cs-header-value"] }, { kind = "basic", credentials = [{ username = "cs-user", password = "cs-pass" }] }]
""" % SIGNING_KEY

CID, CSECRET = "hypr-client", "s3cret/with+chars"


def event(n):
    return json.dumps({"version": "0", "id": "env-%d" % n, "detail-type": "log",
                       "detail": {"data": {"id": str(9000 + n), "eventName": "LOGIN"}}})


def deliver(gw, token, n, path="/ingest/hypr/prod"):
    return requests.post(gw.url(path), data=event(n),
                         headers={"content-type": "application/json",
                                  "authorization": "Bearer " + token}, timeout=10)


def check_token(token):
    assert token["token_type"].lower() == "bearer"
    assert token["expires_in"] == 900
    return token["access_token"]


def test_authlib_post_and_get_with_basic_and_post_client_auth(gateway):
    gw = gateway(CONFIG)
    url = gw.url("/oauth/token")
    n = 0
    for auth_method in ("client_secret_basic", "client_secret_post"):
        for method in ("POST", "GET"):
            session = AuthlibSession(CID, CSECRET, token_endpoint_auth_method=auth_method,
                                     scope="api://hookgate/.default")
            token = check_token(session.fetch_token(url, grant_type="client_credentials",
                                                    method=method))
            n += 1
            r = deliver(gw, token, n)
            assert r.status_code == 200, (auth_method, method, r.text)
    assert len(gw.wait_events(n)) == n


def test_requests_oauthlib_backend_flow_post_and_get_over_tls(gateway, tmp_path):
    # oauthlib insists on https: a certificate made at test time (see test_auth_tls.py).
    ca, cert, key = make_pki(tmp_path / "pki", "oauth")
    gw = gateway(tls_listener(cert, key) + CONFIG)
    url = gw.url("/oauth/token")
    assert url.startswith("https://")
    for n, method in enumerate(("POST", "GET")):
        session = OauthlibSession(client=BackendApplicationClient(client_id=CID))
        token = check_token(session.fetch_token(token_url=url, client_id=CID, client_secret=CSECRET,
                                                method=method, verify=str(ca)))
        # requests-oauthlib's own session attaches the bearer token.
        r = session.put(gw.url("/ingest/hypr/prod"), data=event(10 + n), verify=str(ca),
                        headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == 200, (method, r.text)
    assert len(gw.wait_events(2)) == 2


def test_hypr_style_query_parameters_on_post(gateway):
    gw = gateway(CONFIG)
    r = requests.post(gw.url("/oauth/token") + "?grant_type=client_credentials&scope=x",
                      auth=(CID, CSECRET), timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.json()["scope"] == "x"


def test_token_for_another_source_is_refused(gateway):
    gw = gateway(CONFIG)
    session = AuthlibSession("other-client", "other-secret")
    token = check_token(session.fetch_token(gw.url("/oauth/token"), grant_type="client_credentials"))
    r = deliver(gw, token, 1)
    assert r.status_code == 401
    assert "invalid_token" in r.headers["www-authenticate"]
    assert gw.events() == []


def forge(source, client_id, expires_at, key=SIGNING_KEY):
    """Builds a token in hookgate's documented format (auth/oauth.rs) with Python's hmac."""
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = "hgt1." + enc(("%s\n%s\n%d" % (source, client_id, expires_at)).encode())
    tag = hmac.new(key.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + enc(tag)


def test_expired_token_is_refused_and_the_format_is_as_documented(gateway):
    gw = gateway(CONFIG)
    assert deliver(gw, forge("hypr-prod", CID, int(time.time()) + 60), 1).status_code == 200
    gw.wait_events(1)
    before = len(gw.events())
    r = deliver(gw, forge("hypr-prod", CID, int(time.time()) - 1), 2)
    assert r.status_code == 401
    r = deliver(gw, forge("hypr-prod", CID, int(time.time()) + 60, key="x" * 40), 3)
    assert r.status_code == 401
    assert len(gw.events()) == before
    assert "token_expired" in gw.log_text()


def test_token_survives_a_restart(gateway):
    gw = gateway(CONFIG)
    token = check_token(AuthlibSession(CID, CSECRET).fetch_token(
        gw.url("/oauth/token"), grant_type="client_credentials"))
    gw.stop()
    gw.start()
    assert deliver(gw, token, 1).status_code == 200


def test_hypr_console_example_parameters_get_a_token(gateway):
    """HYPR's console example: header parameters `Content-Type: application/json` and
    `Content-Encoding: gzip`, query parameters `scope` and `grant_type`, and no body."""
    gw = gateway(CONFIG)
    r = requests.post(gw.url("/oauth/token") + "?grant_type=client_credentials&scope=api%3A%2F%2Fyour-api%2F.default",
                      auth=(CID, CSECRET), timeout=10,
                      headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "api://your-api/.default"
    assert deliver(gw, check_token(r.json()), 77).status_code == 200
    # The console's method choice for the token request includes PUT.
    r = requests.put(gw.url("/oauth/token") + "?grant_type=client_credentials",
                     auth=(CID, CSECRET), timeout=10, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert deliver(gw, check_token(r.json()), 78).status_code == 200
    # EventBridge adds the header parameter to whatever body it sends, uncompressed: a form
    # labelled gzip that is not is read as sent, and one that is gzip is inflated.
    form = b"grant_type=client_credentials&scope=plain"
    for body, scope in [(form, "plain"), (gzip.compress(form.replace(b"plain", b"packed")), "packed")]:
        r = requests.post(gw.url("/oauth/token"), data=body, auth=(CID, CSECRET), timeout=10,
                          headers={"content-type": "application/x-www-form-urlencoded",
                                   "content-encoding": "gzip"})
        assert r.status_code == 200, r.text
        assert r.json()["scope"] == scope
    # Read as sent, a body still has to be what its Content-Type says.
    r = requests.post(gw.url("/oauth/token"), data=b"grant_type=client_credentials",
                      auth=(CID, CSECRET), timeout=10,
                      headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def error_of(r, status, code):
    """An RFC 6749 error body, with the request id the gateway gives every rejection."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body == {"error": code, "request_id": r.headers["x-request-id"]}, body
    return body


def test_rfc_6749_errors(gateway):
    gw = gateway(CONFIG)
    url = gw.url("/oauth/token")
    r = requests.post(url, data={"grant_type": "client_credentials"}, auth=(CID, "wrong"), timeout=10)
    error_of(r, 401, "invalid_client")
    assert r.headers["www-authenticate"].startswith("Basic")
    r = requests.post(url, data={"grant_type": "authorization_code", "code": "x"}, auth=(CID, CSECRET), timeout=10)
    error_of(r, 400, "unsupported_grant_type")
    # Without grant_type, credentials as parameters get a token as Basic ones do (the setup
    # docs call grant_type recommended); two client authentications at once are invalid.
    r = requests.post(url, data={"client_id": CID, "client_secret": CSECRET}, timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(url, data={"client_id": CID, "client_secret": CSECRET}, auth=(CID, CSECRET), timeout=10)
    error_of(r, 400, "invalid_request")
    r = requests.post(url, data="grant_type=client_credentials&grant_type=client_credentials",
                      headers={"content-type": "application/x-www-form-urlencoded", "x-request-id": "probe-42"},
                      auth=(CID, CSECRET), timeout=10)
    # A client's own X-Request-Id is not taken (no trusted proxy here): the gateway's is.
    assert error_of(r, 400, "invalid_request")["request_id"] != "probe-42"
    r = requests.delete(url, auth=(CID, CSECRET), timeout=10)
    error_of(r, 405, "invalid_request")
    assert r.headers["allow"] == "GET, POST, PUT"
    # Two Authorization lines, a good one among them: two client authentications.
    good = "Basic " + base64.b64encode(("%s:%s" % (CID, CSECRET)).encode()).decode()
    conn = http.client.HTTPConnection(gw.url("").split("//")[1].rstrip("/"), timeout=10)
    body = "grant_type=client_credentials"
    conn.putrequest("POST", "/oauth/token")
    for value in (good, "Basic " + base64.b64encode(b"x:y").decode()):
        conn.putheader("Authorization", value)
    conn.putheader("Content-Type", "application/x-www-form-urlencoded")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body.encode())
    twice = conn.getresponse()
    assert twice.status == 400 and json.loads(twice.read())["error"] == "invalid_request"
    conn.close()
    # A JSON body with a key twice, as a form with a parameter twice.
    r = requests.post(url, data='{"grant_type":"client_credentials","grant_type":"client_credentials"}',
                      headers={"content-type": "application/json"}, auth=(CID, CSECRET), timeout=10)
    error_of(r, 400, "invalid_request")
    ok = requests.post(url, data={"grant_type": "client_credentials"}, auth=(CID, CSECRET), timeout=10)
    assert ok.status_code == 200 and len(ok.headers["x-request-id"]) > 0
    assert CSECRET not in gw.log_text()


def test_connectsecure_authentication_url_and_delivery(gateway, monkeypatch):
    gw = gateway(CONFIG)
    # The undocumented handshake: username/password as Basic, nothing else.
    for call in (requests.post, requests.get):
        r = call(gw.url("/oauth/token"), auth=("cs-user", "cs-pass"), timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["access_token"]
    r = requests.post(gw.url("/oauth/token"), auth=("cs-user", "nope"), timeout=10)
    assert r.status_code == 401
    # Or the username and password as parameters: a form, a JSON body, the query string, and
    # the resource-owner password grant as requests-oauthlib's LegacyApplicationClient sends it.
    for kwargs in ({"data": {"username": "cs-user", "password": "cs-pass"}},
                   {"json": {"username": "cs-user", "password": "cs-pass"}},
                   {"params": {"username": "cs-user", "password": "cs-pass"}}):
        r = requests.post(gw.url("/oauth/token"), timeout=10, **kwargs)
        assert r.status_code == 200, (kwargs, r.text)
        wrong = {k: dict(v, password="nope") for k, v in kwargs.items()}
        r = requests.post(gw.url("/oauth/token"), timeout=10, **wrong)
        assert r.status_code == 401, (wrong, r.text)
        assert r.json()["error"] == "invalid_client"
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP on loopback
    session = OauthlibSession(client=LegacyApplicationClient(client_id="cs-user"))
    token = session.fetch_token(gw.url("/oauth/token"), username="cs-user", password="cs-pass",
                                include_client_id=True)
    assert token["access_token"]
    body = json.dumps({"subject": "Login Failure", "body": "user x failed"})
    ok = {"content-type": "application/json", "X-CS-Key": "cs-header-value"}
    r = requests.post(gw.url("/ingest/connectsecure"), data=body, headers=ok, auth=("cs-user", "wrong"), timeout=10)
    assert r.status_code == 401 and gw.events() == []
    bad = dict(ok, **{"X-CS-Key": "cs-header-valuf"})
    r = requests.post(gw.url("/ingest/connectsecure"), data=body, headers=bad, auth=("cs-user", "cs-pass"), timeout=10)
    assert r.status_code == 401 and gw.events() == []
    r = requests.post(gw.url("/ingest/connectsecure"), data=body, headers=ok, auth=("cs-user", "cs-pass"), timeout=10)
    assert r.status_code == 200, r.text
