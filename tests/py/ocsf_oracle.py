"""Independent OCSF 1.8.0 oracle: the official schema export from PyPI `ocsf-json-schema`
(per-class JSON Schema, additionalProperties false) plus the cross-field rules of
docs/ocsf.md that a JSON Schema cannot state. Used by test_ocsf_schema.py; also runnable by
hand: `python3 tests/py/ocsf_oracle.py < events.jsonl`."""
import functools
import json
import sys

import jsonschema
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

VERSION = "1.8.0"


@functools.lru_cache(maxsize=1)
def _schema():
    return get_ocsf_schema(VERSION)


@functools.lru_cache(maxsize=None)
def _validator(class_uid):
    emb = OcsfJsonSchemaEmbedded(_schema())
    name = emb.lookup_class_name_from_uid(class_uid)
    sc = emb.get_class_schema(name)
    jsonschema.Draft202012Validator.check_schema(sc)
    return jsonschema.Draft202012Validator(sc)


def _class_def(class_uid):
    for c in _schema()["classes"].values():
        if c.get("uid") == class_uid:
            return c
    raise KeyError(class_uid)


def _caption(attr, value):
    enum = attr.get("enum") or {}
    item = enum.get(str(value))
    return item and item["caption"]


def problems(event):
    """Every way `event` breaks the schema or our cross-field rules (empty = valid)."""
    out = []
    cls = event.get("class_uid")
    try:
        validator = _validator(cls)
    except Exception as e:  # unknown class
        return ["unknown class_uid %r: %s" % (cls, e)]
    for err in validator.iter_errors(event):
        out.append("schema: %s at %s" % (err.message[:300], "/".join(map(str, err.absolute_path))))
    cdef = _class_def(cls)
    attrs = cdef["attributes"]
    if event.get("type_uid") != cls * 100 + event.get("activity_id", -1):
        out.append("type_uid %r != class_uid*100+activity_id" % event.get("type_uid"))
    if event.get("category_uid") != cdef.get("category_uid", 0):
        out.append("category_uid %r, class says %r" % (event.get("category_uid"), cdef.get("category_uid")))
    if event.get("class_name") != cdef["caption"]:
        out.append("class_name %r != %r" % (event.get("class_name"), cdef["caption"]))
    cats = {v["uid"]: v["caption"] for v in _schema()["categories"]["attributes"].values()}
    want_cat = cats.get(event.get("category_uid"), "Uncategorized")
    if event.get("category_name") != want_cat:
        out.append("category_name %r != %r" % (event.get("category_name"), want_cat))
    for id_field, text_field in [("activity_id", "activity_name"), ("severity_id", "severity"), ("status_id", "status")]:
        if id_field not in event:
            continue
        cap = _caption(attrs[id_field], event[id_field])
        if cap is None:
            out.append("%s %r is not in the enum" % (id_field, event[id_field]))
        elif event[id_field] == 99:
            if not event.get(text_field):
                out.append("%s 99 needs the source word in %s" % (id_field, text_field))
        elif event.get(text_field) != cap:
            out.append("%s %r != caption %r" % (text_field, event.get(text_field), cap))
    meta = event.get("metadata", {})
    if meta.get("version") != VERSION:
        out.append("metadata.version %r" % meta.get("version"))
    if not meta.get("uid"):
        out.append("metadata.uid missing")
    if not isinstance(event.get("raw_data"), str):
        out.append("raw_data missing")
    if cls == 3002 and not (event.get("service") or event.get("dst_endpoint")):
        out.append("authentication needs service or dst_endpoint")
    if cls == 2002:
        for i, v in enumerate(event.get("vulnerabilities", [])):
            if sum(k in v for k in ("advisory", "cve", "cwe")) != 1:
                out.append("vulnerabilities[%d] needs just one of advisory/cve/cwe" % i)
    return out


if __name__ == "__main__":
    bad = 0
    for n, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        ev = json.loads(line)
        if "class_uid" not in ev:
            print("line %d: not an event: %s" % (n, line[:200]))
            continue
        for p in problems(ev):
            bad += 1
            print("line %d (class %s): %s" % (n, ev.get("class_uid"), p))
    sys.exit(1 if bad else 0)
