//! Unit tests of the engine through small inline definitions: one per `ParseError` variant,
//! plus routing, id and window rules.

use http::HeaderMap;
use serde_json::{json, Value};

use super::*;

const HEAD: &str = "[parser]\nproduct = \"P\"\nvendor_name = \"V\"\n";

fn parser(body: &str) -> Result<Parser, ParseError> {
    Parser::from_toml("t", &format!("{HEAD}{body}"), "t.toml")
}

fn ctx<'a>(headers: &'a HeaderMap) -> EventContext<'a> {
    EventContext {
        source: "s",
        vendor: "t",
        tenant: "tenant",
        request_id: "r",
        received_at_ms: 1_000,
        auth_scheme: "none",
        headers,
        raw: "{}",
    }
}

/// What a test looks at of a [`ParsedEvent`], owned (the event borrows its text).
#[derive(Debug)]
struct Parsed {
    class: &'static ClassInfo,
    activity_id: i64,
    activity_name: Option<String>,
    fields: Value,
    unmapped: Value,
    route: String,
}

/// Runs `p` over `event`, read from its JSON text as the gateway reads a body.
fn run(p: &Parser, event: Value) -> Result<Parsed, ParseError> {
    run_text(p, &event.to_string())
}

/// Runs `p` over the event in `text`.
fn run_text(p: &Parser, text: &str) -> Result<Parsed, ParseError> {
    let headers = HeaderMap::new();
    let event = Doc::parse(text).unwrap();
    let key = p.event_key(&event, &headers);
    let e = apply(p, event, key, &ctx(&headers))?;
    Ok(Parsed {
        class: e.class,
        activity_id: e.activity_id,
        activity_name: e.activity_name,
        fields: e.fields.to_value(),
        unmapped: e.unmapped.to_value(),
        route: e.route.to_owned(),
    })
}

const ROUTES: &str = r#"
[id]
from = ["id"]
hash = "t"
window = "1h"

[[route]]
name = "login"
when = { field = "kind", equals = "LOGIN", case_insensitive = true }
class = 3002
activity = 1
window = "none"
map = [ { to = "user.name", from = "who", required = true } ]

[[route]]
name = "other"
class = 0
activity = 99
activity_name = { from = "kind", default = "unknown" }
leftovers = [""]
"#;

#[test]
fn routes_first_match_and_falls_back() {
    let p = parser(ROUTES).unwrap();
    let e = run(&p, json!({"kind": "login", "who": "ann"})).unwrap();
    assert_eq!(
        (e.class.uid, e.activity_id, e.route.as_str()),
        (3002, 1, "login")
    );
    assert_eq!(e.fields["user"]["name"], "ann");
    let e = run(&p, json!({"kind": "noise", "x": 1})).unwrap();
    assert_eq!(
        (e.class.uid, e.activity_name.as_deref()),
        (0, Some("noise"))
    );
    assert_eq!(e.unmapped["x"], 1);
}

#[test]
fn event_key_uses_body_id_else_content_hash_and_route_window() {
    let p = parser(ROUTES).unwrap();
    let headers = HeaderMap::new();
    let k = p.event_key(&Doc::from(json!({"id": "e1", "kind": "x"})), &headers);
    assert_eq!(k.id, "e1");
    assert_eq!(k.window, Some(Duration::from_secs(3600)));
    let k = p.event_key(
        &Doc::parse(r#"{"kind":"LOGIN","b":2,"a":"é"}"#).unwrap(),
        &headers,
    );
    assert_eq!(k.window, None, "the login route never deduplicates");
    let want = hex::encode(Sha256::digest(
        "t\n{\"a\":\"é\",\"b\":2,\"kind\":\"LOGIN\"}".as_bytes(),
    ));
    assert_eq!(k.id, want);
}

#[test]
fn a_blank_id_is_no_id() {
    let p = parser(ROUTES).unwrap();
    let headers = HeaderMap::new();
    for blank in ["", " ", "\t \n"] {
        let (ta, tb) = (
            json!({"id": blank, "kind": "x", "n": 1}).to_string(),
            json!({"id": blank, "kind": "x", "n": 2}).to_string(),
        );
        let (a, b) = (Doc::parse(&ta).unwrap(), Doc::parse(&tb).unwrap());
        let (ka, kb) = (p.event_key(&a, &headers), p.event_key(&b, &headers));
        assert_eq!(ka.id.len(), 64, "{blank:?}: the content hash");
        assert_ne!(ka.id, kb.id, "{blank:?}: two events, two ids");
    }
}

#[test]
fn an_id_number_read_as_a_float_is_no_id() {
    let catalog = Catalog::load(None).unwrap();
    let hypr = catalog.get("hypr").unwrap();
    let headers = HeaderMap::new();
    let key = |id: &str| {
        let body = format!(r#"{{"id":"env-1","detail":{{"data":{{"id":{id},"eventName":"X"}}}}}}"#);
        hypr.event_key(&Doc::parse(&body).unwrap(), &headers).id
    };
    // Integers are read exactly, as before.
    assert_eq!(key("18446744073709551615"), "18446744073709551615");
    assert_eq!(key("-42"), "-42");
    // Past 64 bits the number is read as a double and has lost digits: the next path (HYPR's
    // EventBridge envelope id, unique per event) is the id, never the rounded float.
    assert_eq!(key("409878875789426688123"), "env-1");
    assert_eq!(key("1.5"), "env-1");
    // Without one, the content hash (which sees the same rounded number: a known limit).
    let body = r#"{"detail":{"data":{"id":409878875789426688123,"eventName":"X"}}}"#;
    let id = hypr.event_key(&Doc::parse(body).unwrap(), &headers).id;
    assert_eq!(id.len(), 64, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

#[test]
fn missing_required_field_is_a_missing_field_error() {
    let p = parser(ROUTES).unwrap();
    let err = run(&p, json!({"kind": "LOGIN"})).unwrap_err();
    assert_eq!(err.code(), "missing_field");
    assert!(err.to_string().contains("user.name"), "{err}");
}

#[test]
fn non_object_event_is_unmappable() {
    let p = parser(ROUTES).unwrap();
    let err = run(&p, json!([1, 2])).unwrap_err();
    assert_eq!(err.code(), "unmappable");
}

#[test]
fn no_matching_route_without_fallback_is_unmappable() {
    let p = parser(
        "[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nwhen = { field = \"k\", equals = \"a\" }\nclass = 0\nactivity = 99\n",
    )
    .unwrap();
    let err = run(&p, json!({"k": "b"})).unwrap_err();
    assert_eq!(err.code(), "unmappable");
}

#[test]
fn invalid_definitions_name_the_line() {
    for (body, line, needle) in [
        ("[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 4242\nactivity = 1\n", 7, "unknown class"),
        ("[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 3002\nactivity = 77\n", 7, "no activity 77"),
        ("[id]\nhash = \"t\"\nwindow = \"soon\"\n[[route]]\nname = \"a\"\nclass = 0\nactivity = 99\n", 1, "window"),
        ("[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 0\nactivity = 99\nmap = [\n { to = \"x\", lookup = \"nope\", from = \"a\" },\n]\n", 12, "unknown table"),
        ("[id]\nhash = \"t\"\nwindow = \"1h\"\nbogus = 1\n", 7, "unknown field"),
    ] {
        let err = parser(body).unwrap_err();
        assert_eq!(err.code(), "definition_invalid");
        let text = err.to_string();
        assert!(text.contains(&format!("line {line}")) && text.contains(needle), "{text}");
    }
}

/// Output paths must name attributes of the route's class (the official schema's): a typo
/// is refused at load, at any depth, in maps, list items and object fields alike.
#[test]
fn an_output_path_the_class_does_not_define_is_refused_at_load() {
    let route = "[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 5001\nactivity = 1\n";
    for (extra, needle) in [
        ("map = [ { to = \"servce.name\", from = \"a\" } ]\n", "`servce`"),
        ("map = [ { to = \"device.nmae\", from = \"a\" } ]\n", "`nmae`"),
        ("map = [ { to = \"observables[]\", object = { nme = { const = \"x\" } } } ]\n", "`nme`"),
        ("map = [ { to = \"message.text\", from = \"a\" } ]\n", "holds a value"),
        ("list = [ { to = \"enrichments\", from = \"a\", item = [ { to = \"vlue\", from = \"@\" } ] } ]\n", "`vlue`"),
    ] {
        let err = parser(&format!("{route}{extra}")).unwrap_err();
        assert_eq!(err.code(), "definition_invalid");
        assert!(err.to_string().contains(needle), "{err}");
    }
    for fine in [
        "map = [ { to = \"device.os.name\", from = \"a\" }, { to = \"unmapped.any.thing\", from = \"a\" } ]\n",
        "map = [ { to = \"observables[]\", object = { name = { const = \"x\" }, type_id = { const = 4 } } } ]\n",
        "list = [ { to = \"enrichments\", from = \"a\", item = [ { to = \"data.free\", from = \"@\" } ] } ]\n",
    ] {
        assert!(parser(&format!("{route}{fine}")).is_ok(), "{fine}");
    }
}

#[test]
fn unreadable_directory_is_a_read_error() {
    let err = Catalog::load(Some(Path::new("/nonexistent/hookgate/parsers"))).unwrap_err();
    assert_eq!(err.code(), "definition_unreadable");
}

#[test]
fn built_in_catalog_has_the_five_vendors() {
    let c = Catalog::load(None).unwrap();
    assert_eq!(
        c.names(),
        ["connectsecure", "hoop", "hyperproof", "hypr", "hyprwatch"]
    );
}

#[test]
fn leftovers_are_the_same_whichever_order_the_levels_are_listed_in() {
    let event = json!({
        "id": "e1", "top": 1,
        "detail": {"data": {"who": "ann", "extra": "x"}, "note": "n"}
    });
    let mut seen = Vec::new();
    for order in [
        r#"["detail.data", "detail", ""]"#,
        r#"["", "detail", "detail.data"]"#,
        r#"["detail", "", "detail.data"]"#,
    ] {
        let p = parser(&format!(
            "[id]\nfrom = [\"id\"]\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 3002\n\
             activity = 1\nmap = [ {{ to = \"user.name\", from = \"detail.data.who\" }} ]\n\
             leftovers = {order}\n"
        ))
        .unwrap();
        let e = run(&p, event.clone()).unwrap();
        assert_eq!(e.fields["user"]["name"], "ann");
        seen.push(e.unmapped);
    }
    // Only the mapped `who` is read; every other key is a leftover, under its own name.
    assert_eq!(
        seen[0],
        json!({"id": "e1", "top": 1, "note": "n", "extra": "x"})
    );
    assert!(seen.iter().all(|u| *u == seen[0]), "{seen:?}");
}

#[test]
fn a_key_at_two_leftover_levels_keeps_both_values_the_later_under_its_full_path() {
    // HYPR sends `version` in the envelope and in `detail.data`, `eventTags` in `detail` and
    // in `detail.data`: the level listed first takes the plain name, the other keeps its path.
    let p = parser(
        "[id]\nfrom = [\"id\"]\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 0\n\
         activity = 99\nleftovers = [\"\", \"detail\", \"detail.data\"]\n\
         map = [ { to = \"message\", from = \"detail.data.note\" } ]\n",
    )
    .unwrap();
    let e = run(
        &p,
        json!({"id": "e", "version": "0", "detail": {"eventTags": ["A"], "data": {"version": 4, "eventTags": "B", "note": "n"}}}),
    )
    .unwrap();
    assert_eq!(
        e.unmapped,
        json!({"id": "e", "version": "0", "eventTags": ["A"], "detail.data.version": 4, "detail.data.eventTags": "B"})
    );
}

#[test]
fn a_repeated_key_counts_once_with_its_last_value_as_serde_json_reads_it() {
    let p = parser(ROUTES).unwrap();
    let text = r#"{"kind":"a","x":1,"y":{"k":1},"x":2,"kind":"noise","x":3}"#;
    let e = run_text(&p, text).unwrap();
    assert_eq!(e.activity_name.as_deref(), Some("noise"));
    // `kind` is read (the activity name); the rest are leftovers, each once.
    assert_eq!(e.unmapped, json!({"x": 3, "y": {"k": 1}}));
    let p = parser(
        "[id]\nfrom = [\"id\"]\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 3002\n\
         activity = 1\nmap = [ { to = \"user.name\", from = \"d.who\" } ]\n\
         leftovers = [\"\", \"d\"]\n",
    )
    .unwrap();
    let e = run_text(
        &p,
        r#"{"d":{"who":"x","n":1},"d":{"who":"ann","n":2,"n":3},"t":0}"#,
    )
    .unwrap();
    assert_eq!(e.fields["user"]["name"], "ann");
    assert_eq!(e.unmapped, json!({"n": 3, "t": 0}));
}

#[test]
fn event_objects_iterate_in_key_order() {
    // Output objects are written in key order, and the content hash's canonical text is
    // checked against serde_json's (parse/doc.rs): serde_json's `preserve_order` feature
    // would break both, and this test says so first.
    let v: Value = serde_json::from_str(r#"{"b": 1, "a": 2, "c": {"z": 0, "y": 1}}"#).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["a", "b", "c"]);
}

#[test]
fn a_condition_over_several_paths_skips_empty_values_and_lists_but_one_path_is_tested_as_is() {
    let p = parser(
        r#"
[id]
from = ["id"]
window = "1h"
[[route]]
name = "tagged"
class = 3002
activity = 1
when = { field = ["tag", "tags.0"], equals = "LOGIN" }
[[route]]
name = "blank"
class = 3002
activity = 2
when = { field = "note", equals = "" }
[[route]]
name = "other"
class = 0
activity = 99
"#,
    )
    .unwrap();
    let route = |event: Value| run(&p, event).unwrap().route;
    assert_eq!(route(json!({"tag": "LOGIN"})), "tagged");
    for first in [json!(""), json!(null), json!(["LOGIN"])] {
        assert_eq!(route(json!({"tag": first, "tags": ["LOGIN"]})), "tagged");
    }
    assert_eq!(route(json!({"tag": "", "tags": ["LOGOFF"]})), "other");
    // A lone empty string is still a value a test can compare.
    assert_eq!(route(json!({"note": ""})), "blank");
}

#[test]
fn a_first_word_lookup_prefers_words_outside_quoted_names() {
    let p = parser(
        r#"
[id]
from = ["id"]
window = "1h"
[tables.verbs]
removed = 4
set = 3
high = 4
[[route]]
name = "any"
class = 3004
activity_from = { from = "description", lookup = "verbs", lookup_mode = "first_word", default = 99 }
"#,
    )
    .unwrap();
    let activity = |d: &str| run(&p, json!({"description": d})).unwrap().activity_id;
    assert_eq!(activity(r#"Label "Set A" was removed"#), 4);
    assert_eq!(activity("Ann set the status"), 3);
    // Nothing outside the quotes: the quoted text is searched too.
    assert_eq!(activity(r#"Vulnerability "High" found"#), 4);
    assert_eq!(activity("nothing here"), 99);
}

#[test]
fn a_zero_window_is_no_window_and_an_endless_one_is_refused() {
    for zero in ["0", "0s", "00h", " 0d ", "none"] {
        assert_eq!(compile::window(zero), Ok(None), "{zero:?}");
    }
    assert_eq!(compile::window("90m"), Ok(Some(Duration::from_secs(5400))));
    assert!(compile::window("999999999999999999d").is_err());
}

const LIST_ALL: &str = r#"
[id]
hash = "t"
window = "1h"

[[route]]
name = "findings"
class = 2002
activity = 1
list = [
  { to = "vulnerabilities", from = "text", split = '\n', match = 'VUL ID:\s*(?P<vul>[A-Z0-9-]+)', all = ALL, item = [ { to = "cve.uid", capture = "vul" } ] },
]
"#;

#[test]
fn a_text_list_with_all_makes_an_item_of_every_match_in_a_segment() {
    let text = "VUL ID: CVE-1. Product: B. VUL ID: CVE-2\nnothing here\nVUL ID: CVE-3";
    let uids = |all: &str| {
        let p = parser(&LIST_ALL.replace("ALL", all)).unwrap();
        let e = run(&p, json!({ "text": text })).unwrap();
        e.fields["vulnerabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["cve"]["uid"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(uids("true"), ["CVE-1", "CVE-2", "CVE-3"]);
    // Without it, a segment's first match only (segments without one make no item).
    assert_eq!(uids("false"), ["CVE-1", "CVE-3"]);
}

#[test]
fn a_list_with_all_but_no_match_is_refused() {
    let def = LIST_ALL
        .replace("ALL", "true")
        .replace(r#"match = 'VUL ID:\s*(?P<vul>[A-Z0-9-]+)', "#, "");
    let err = parser(&def).unwrap_err().to_string();
    assert!(err.contains("`all = true` needs a `match`"), "{err}");
}

#[test]
fn a_value_a_conversion_refuses_is_kept_in_unmapped_unless_another_mapping_placed_it() {
    let p = parser(
        "[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 3002\n\
         activity = 1\nmap = [\n\
           { to = \"src_endpoint.ip\", from = \"ip\", convert = \"ip\" },\n\
           { to = \"time\", from = \"at\", convert = \"rfc3339_ms\" },\n\
           { to = \"user.name\", from = \"mail\" },\n\
           { to = \"user.email_addr\", from = \"mail\", convert = \"email\" },\n\
         ]\n",
    )
    .unwrap();
    let e = run(
        &p,
        json!({"ip": "not-an-ip", "at": "yesterday", "mail": "renée@example.com"}),
    )
    .unwrap();
    assert_eq!(e.fields.get("src_endpoint"), None);
    // Neither `ip` nor `at` has a home now, so both stay; `mail` is user.name already.
    assert_eq!(e.unmapped, json!({"ip": "not-an-ip", "at": "yesterday"}));
    let e = run(
        &p,
        json!({"ip": "10.0.0.1, 10.0.0.2", "mail": "ann@example.com"}),
    )
    .unwrap();
    assert_eq!(e.fields["src_endpoint"]["ip"], "10.0.0.1");
    assert_eq!(e.fields["user"]["email_addr"], "ann@example.com");
    // The list's first address is the field; the whole list stays, so no address is lost.
    assert_eq!(e.unmapped, json!({"ip": "10.0.0.1, 10.0.0.2"}));
}

#[test]
fn an_array_where_one_value_belongs_is_converted_whole_unless_an_aggregate_says_how() {
    let p = parser(
        "[id]\nhash = \"t\"\nwindow = \"1h\"\n[tables.ok]\ntrue = 1\nfalse = 2\n\
         [[route]]\nname = \"a\"\nclass = 3002\nactivity = 1\nmap = [\n\
           { to = \"message\", from = \"text\", convert = \"string\" },\n\
           { to = \"time\", from = \"at\", convert = \"epoch_ms\" },\n\
           { to = \"status_id\", from = \"ok\", lookup = \"ok\", default = 0 },\n\
           { to = \"severity_id\", from = \"levels\", convert = \"int\", aggregate = \"max\" },\n\
           { to = \"metadata.labels\", from = \"levels\", convert = \"string\", aggregate = \"each\" },\n\
         ]\n",
    )
    .unwrap();
    let e = run(
        &p,
        json!({"text": ["a", 2], "at": [1, 2], "ok": [true], "levels": ["3", 4, "x"]}),
    )
    .unwrap();
    // One string wanted: the array's JSON text. One time or one table entry: none, so absent
    // (or the default), never an array in a scalar attribute.
    assert_eq!(e.fields["message"], "[\"a\",2]");
    assert_eq!(e.fields.get("time"), None);
    assert_eq!(e.fields["status_id"], 0);
    // An aggregate converts element by element: `max` reduces, `each` keeps them all.
    assert_eq!(e.fields["severity_id"], 4);
    assert_eq!(e.fields["metadata"]["labels"], json!(["3", "4", "x"]));
    let e = run(&p, json!({"text": {"k": 1}, "levels": [[], {}]})).unwrap();
    assert_eq!(e.fields["message"], "{\"k\":1}");
    assert_eq!(e.fields["metadata"]["labels"], json!(["[]", "{}"]));
    // `each` keeps a list even of one value sent alone.
    let e = run(&p, json!({"levels": 7})).unwrap();
    assert_eq!(e.fields["metadata"]["labels"], json!(["7"]));
    assert_eq!(e.fields["severity_id"], 7);
}

/// A parser may not copy a credential or signature header into events (they go to Kafka).
#[test]
fn a_parser_may_not_read_a_secret_header() {
    let route =
        "[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"a\"\nclass = 0\nactivity = 99\n";
    for header in [
        "Authorization",
        "svix-signature",
        "x-api-key",
        "X-Webhook-Secret",
    ] {
        let def = format!("{route}map = [ {{ to = \"unmapped.h\", header = \"{header}\" }} ]\n");
        let err = parser(&def).unwrap_err();
        assert_eq!(err.code(), "definition_invalid");
        assert!(err.to_string().contains("names a secret"), "{err}");
    }
    let fine = format!("{route}map = [ {{ to = \"unmapped.h\", header = \"svix-id\" }} ]\n");
    assert!(parser(&fine).is_ok());
}
