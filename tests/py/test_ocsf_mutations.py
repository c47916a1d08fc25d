"""OCSF oracle over vendor payloads the fixtures do not show: every fixture body is mutated
one member at a time (a string where a number was, a number, an array or an object where a
string was, null, the member left out), each mutant goes through the real binary's
`hookgate parse`, and every event it prints must still be valid OCSF 1.8.0 (the official
schema via ocsf_oracle) or be a dead letter. Vendors change shapes without notice; a field
the parser cannot use is left out, it never makes the published event invalid."""
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
VENDORS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())

# What each member is replaced with, in turn (`None` here means JSON null; a missing member is
# its own mutation below).
REPLACEMENTS = [12345, -1.5, True, None, ["x", 2], {"k": "v"}, "", "t\u00e9xt \U0001f642"]
MISSING = object()


def leaves(value, path=()):
    """Every (path, value) inside `value`, objects and arrays included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield path + (k,), v
            yield from leaves(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield path + (i,), v
            yield from leaves(v, path + (i,))


def replaced(value, path, new):
    """A copy of `value` with the member at `path` set to `new` (or removed: MISSING)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    out = dict(value) if isinstance(value, dict) else list(value)
    if rest:
        out[head] = replaced(value[head], rest, new)
    elif new is MISSING:
        del out[head]
    else:
        out[head] = new
    return out


def mutants(body):
    """Each member of `body` replaced by each replacement of another type, and left out."""
    seen = set()
    for path, old in leaves(body):
        for new in REPLACEMENTS + [MISSING]:
            if new is not MISSING and type(new) is type(old):
                continue
            mutant = replaced(body, path, new)
            text = json.dumps(mutant, ensure_ascii=False)
            if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
                text = json.dumps(mutant)  # a lone surrogate travels as its \u escape
            if text not in seen:
                seen.add(text)
                yield path, text


def cases(vendor):
    """(headers, body) of each fixture of `vendor` whose body is one JSON object or array."""
    out = []
    for case in sorted(p for p in (FIXTURES / vendor).iterdir() if p.is_dir()):
        req = tomllib.loads((case / "request.toml").read_text())
        try:
            body = json.loads((case / "body.json").read_text())
        except ValueError:
            continue  # the lenient parser's not-quite-JSON fixtures: mutated as text elsewhere
        if isinstance(body, (dict, list)):
            out.append((case.name, req.get("headers", {}), body))
    return out


@pytest.mark.parametrize("vendor", VENDORS)
def test_mutated_payloads_still_give_valid_ocsf_or_a_dead_letter(vendor, tmp_path):
    bad = []
    total = 0
    for name, headers, body in cases(vendor):
        files = []
        for n, (path, text) in enumerate(mutants(body)):
            f = tmp_path / ("%s-%d.json" % (name, n))
            f.write_text(text, encoding="utf-8")
            files.append(f)
        args = [BIN, "parse", "--vendor", vendor, "--received-at-ms", "1767225600000"]
        for k, v in headers.items():
            args += ["-H", "%s: %s" % (k, v)]
        out = subprocess.run(args + [str(f) for f in files], capture_output=True, timeout=300)
        assert out.returncode == 0, out.stderr.decode()[-2000:]
        for line in out.stdout.decode().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("heartbeat") or "dead_letter" in event:
                continue
            total += 1
            found = problems(event)
            if found:
                bad.append("%s: %s\n  raw_data: %s" % (name, found[:3], event.get("raw_data", "")[:300]))
    assert total > 0, "no event was produced at all"
    assert not bad, "%d of %d mutated events are not valid OCSF:\n%s" % (
        len(bad), total, "\n".join(bad[:40]))


# ConnectSecure's alerts are free text whose wording is documented for four samples only: the
# parser mines it with patterns. Bodies made of random subsets of the phrases the parser
# looks for (and some it must not be fooled by), under every kind of subject, must all give
# valid OCSF, whatever they leave out.
CS_SUBJECTS = ["New Asset(s) Added", "Asset Ports", "New Open Port Discovered (External Scan)",
               "Critical Vulnerabilities Found", "CISA Vulnerabilities Found", "High Problems Found",
               "Login Failure", "Login Success", "Probe Went Down", "Server Agent Went Down",
               "Certificate Expire in 30 Days", "Job Failed", "New Company Created",
               "Entra ID Audit", "Something Else Entirely"]
CS_PHRASES = ["with ip 192.168.1.100", "IP Address: 2001:db8::7", "on 999.1.1.1",
              "Hostname server-01.example.com.", "hostname: db", "Mac address 00:1B:44:11:3A:B7",
              "Open Port 443 Discovered", "port: 65536", "port 8080", "service ssh", "(service ms-wbt-server)",
              "in company Acme Corporation", "for company Initech, Inc.", "Asset name PRINTER-3F",
              "at 2024-01-15 10:30:00 UTC", "at 2024-13-45 99:99:99 UTC",
              "Product: Apache HTTP Server. VUL ID: CVE-2021-44228. Severity: Critical",
              "VUL ID: GHSA-xxxx-yyyy. Severity: Low", "\\ Product: nginx. VUL ID: CVE-2021-23017",
              "Login Failure for bob With IPAddress 10.0.0.5 on service VPN",
              "created by admin@msp.example", "Company \"Initech\" was created", "\n", "."]


def test_connectsecure_free_text_in_any_wording_gives_valid_ocsf(tmp_path):
    import random
    rng = random.Random(19)
    files = []
    for n in range(600):
        words = rng.sample(CS_PHRASES, rng.randint(0, 6))
        sep = rng.choice([" ", ". ", "\n", ", "])
        body = {"subject": rng.choice(CS_SUBJECTS), "body": sep.join(words)}
        f = tmp_path / ("cs-%d.json" % n)
        f.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")
        files.append(str(f))
    out = subprocess.run([BIN, "parse", "--vendor", "connectsecure", "--received-at-ms",
                          "1767225600000"] + files, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    events = [json.loads(l) for l in out.stdout.decode().splitlines() if l.strip()]
    assert len(events) == len(files)
    bad = ["%s\n  raw_data: %s" % (problems(e)[:3], e["raw_data"][:300])
           for e in events if "dead_letter" not in e and problems(e)]
    assert not bad, "%d of %d events are not valid OCSF:\n%s" % (len(bad), len(events), "\n".join(bad[:20]))
