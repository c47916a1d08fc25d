use super::repair::repair_strings;
use super::*;

#[test]
fn a_heartbeat_is_kept_when_it_says_more_than_a_ping() {
    for quiet in [
        &b""[..],
        b"ping",
        b"  healthcheck from Hyperproof \r\n",
        b"{\"type\":\"heartbeat\"}",
        &[b'x'; 64][..],
    ] {
        assert_eq!(heartbeat_says_more_than_a_ping(quiet), None, "{quiet:?}");
    }
    let long = b"<event><description>Alice deleted control C-7</description></event>";
    assert_eq!(
        heartbeat_says_more_than_a_ping(long),
        Some("heartbeat_text")
    );
    assert_eq!(
        heartbeat_says_more_than_a_ping(&[b'x'; 65]),
        Some("heartbeat_text")
    );
    let json = format!("{{\"type\":\"heartbeat\",\"pad\":\"{}\"}}", "p".repeat(80));
    assert_eq!(
        heartbeat_says_more_than_a_ping(json.as_bytes()),
        Some("heartbeat_json")
    );
    assert_eq!(
        heartbeat_says_more_than_a_ping(format!("\u{feff}{json}").as_bytes()),
        Some("heartbeat_json")
    );
}

fn hash_keyed() -> Parser {
    Parser::from_toml(
        "t",
        "[parser]\nproduct = \"T\"\nvendor_name = \"T\"\n[id]\nfrom = [\"id\"]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n",
        "t.toml",
    )
    .unwrap()
}

/// Each event's raw bytes and its value (as a `serde_json::Value`, the oracle's type).
fn split(body: &[u8]) -> Result<Vec<(Bytes, Value)>, SplitError> {
    let body = Bytes::copy_from_slice(body);
    match events(&body, &hash_keyed(), &HeaderMap::new(), 100)? {
        Split::Events(events) => Ok(events
            .into_iter()
            .map(|e| (e.raw, e.value.into_value()))
            .collect()),
        Split::Heartbeat => panic!("no heartbeat rule"),
    }
}

#[test]
fn a_lone_surrogate_escape_is_read_as_the_replacement_character_and_raw_bytes_stay() {
    // A lone low surrogate, a lone high one at a string's end, a valid pair, and an
    // escaped backslash before "udcff" (text, not an escape).
    let body = br#"[{"id":"a","path":"/tmp/bad\udcff name"},{"id":"b","d":"cut \ud83d","ok":"\ud83d\ude00","t":"\\udcff"}]"#;
    let events = split(body).unwrap();
    assert_eq!(events.len(), 2);
    let (raw_a, a) = &events[0];
    assert_eq!(
        raw_a.as_ref(),
        br#"{"id":"a","path":"/tmp/bad\udcff name"}"#
    );
    assert_eq!(a["path"], "/tmp/bad\u{FFFD} name");
    let (raw_b, b) = &events[1];
    assert_eq!(
        raw_b.as_ref(),
        br#"{"id":"b","d":"cut \ud83d","ok":"\ud83d\ude00","t":"\\udcff"}"#
    );
    assert_eq!(b["d"], "cut \u{FFFD}");
    assert_eq!(b["ok"], "\u{1F600}");
    assert_eq!(b["t"], "\\udcff");
    // A single object and NDJSON too; the whole body, or each line, is the raw bytes.
    let one = br#"{"id":"c","x":"\uDC00\uD800"}"#;
    let events = split(one).unwrap();
    assert_eq!(events[0].0.as_ref(), one.as_slice());
    assert_eq!(events[0].1["x"], "\u{FFFD}\u{FFFD}");
    let lines = b"{\"id\":\"d\",\"x\":\"\\udfff\"}\n{\"id\":\"e\"}\n";
    let events = split(lines).unwrap();
    assert_eq!(events[0].0.as_ref(), b"{\"id\":\"d\",\"x\":\"\\udfff\"}");
    // Still refused: a body broken otherwise, even with a lone surrogate in it.
    assert!(matches!(
        split(br#"{"id":"f","x":"\udcff""#),
        Err(SplitError::Malformed { .. })
    ));
}

#[test]
fn a_batch_is_a_heartbeat_only_when_every_element_is_one() {
    let parser = Parser::from_toml(
        "hb",
        "[parser]\nproduct = \"T\"\nvendor_name = \"T\"\nheartbeat_on_empty = true\nheartbeat = { not = { field = \"description\", exists = true } }\n[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n",
        "hb.toml",
    )
    .unwrap();
    let split = |body: &str| {
        let body = Bytes::copy_from_slice(body.as_bytes());
        match events(&body, &parser, &HeaderMap::new(), 100).unwrap() {
            Split::Heartbeat => None,
            Split::Events(events) => Some(events.len()),
        }
    };
    // Every framing split reads: one value, an array, NDJSON lines, JSON-seq records.
    for heartbeat in [
        "",
        "{}",
        "[]",
        "null",
        "\"ping\"",
        "[{}, {\"x\": 1}]",
        "{}\n{\"x\": 1}\n",
        "{}\r\n{}",
        "\u{1e}{}\n\u{1e}{\"x\": 1}\n",
    ] {
        assert_eq!(split(heartbeat), None, "{heartbeat:?}");
    }
    assert_eq!(split(r#"[{}, {"description": "a"}]"#), Some(2));
    assert_eq!(split("{}\n{\"description\": \"a\"}"), Some(2));
    assert_eq!(split("\u{1e}{\"description\": \"a\"}\n\u{1e}{}\n"), Some(2));
    assert_eq!(split(r#"{"description": "a"}"#), Some(1));
    // Without a heartbeat rule, the same shapes are refused, not acknowledged.
    for refused in ["[]", "null"] {
        let body = Bytes::copy_from_slice(refused.as_bytes());
        assert!(events(&body, &hash_keyed(), &HeaderMap::new(), 100).is_err());
    }
}

#[test]
fn a_batch_under_one_header_id_gives_each_element_its_own_key() {
    let catalog = crate::parse::Catalog::load(None).unwrap();
    let hoop = catalog.get("hoop").unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("svix-id", "msg_2X".parse().unwrap());
    let keys = |body: &'static str| {
        let body = Bytes::from_static(body.as_bytes());
        match events(&body, &hoop, &headers, 100) {
            Ok(Split::Events(e)) => e.iter().map(|e| e.key.id.clone()).collect::<Vec<_>>(),
            _ => panic!("not events"),
        }
    };
    let batch = r#"[{"event_type":"session.open","a":1},{"event_type":"session.close","a":2},{"event_type":"session.close","a":3}]"#;
    assert_eq!(keys(batch), ["msg_2X", "msg_2X#1", "msg_2X#2"]);
    // A retry of the batch has the same keys (so it is a duplicate), and one event is
    // keyed by the header alone, as before.
    assert_eq!(keys(batch), ["msg_2X", "msg_2X#1", "msg_2X#2"]);
    assert_eq!(keys(r#"{"event_type":"session.open"}"#), ["msg_2X"]);
    // Ids from the body are left as they are.
    let hyprwatch = catalog.get("hyprwatch").unwrap();
    let body = Bytes::from_static(br#"[{"id":"evt_1","event":"x"},{"id":"evt_2","event":"x"}]"#);
    let Ok(Split::Events(e)) = events(&body, &hyprwatch, &headers, 100) else {
        panic!("not events");
    };
    assert_eq!(e[1].key.id, "evt_2");
}

#[test]
fn a_text_body_is_a_heartbeat_only_where_the_parser_says_and_never_a_broken_object() {
    let parser = |flag: bool| {
        Parser::from_toml(
            "hb",
            &format!("[parser]\nproduct = \"T\"\nvendor_name = \"T\"\nheartbeat_on_text = {flag}\n[id]\nhash = \"t\"\nwindow = \"1h\"\n[[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n"),
            "hb.toml",
        )
        .unwrap()
    };
    let (text_ok, strict) = (parser(true), parser(false));
    let split = |parser: &Parser, body: &[u8]| {
        let body = Bytes::copy_from_slice(body);
        match events(&body, parser, &HeaderMap::new(), 100) {
            Ok(Split::Heartbeat) => Ok(None),
            Ok(Split::Events(events)) => Ok(Some(events.len())),
            Err(e) => Err(e.code()),
        }
    };
    for text in [
        &b"ping"[..],
        b"OK\n",
        b"  heartbeat",
        b"nope",
        b"ping\npong",
        b"\xff\xfe",
    ] {
        assert_eq!(split(&text_ok, text), Ok(None), "{text:?}");
        assert_eq!(split(&strict, text), Err("json_malformed"), "{text:?}");
    }
    // Opening like an object or an array but broken, or an object behind stray bytes:
    // refused, so the vendor retries.
    for broken in [
        &b"{\"description\": \"cut"[..],
        b"[{\"a\":1}",
        b"{ping}",
        b"\xc2\xa0{\"description\": \"a\"}",
        b"x{\"description\": \"a\"}",
    ] {
        assert_eq!(split(&text_ok, broken), Err("json_malformed"), "{broken:?}");
    }
    // A byte order mark is whitespace, not text: the event behind it is an event.
    let bom = Bytes::from_static(b"\xEF\xBB\xBF{\"description\": \"a\"}");
    let body = without_bom(&bom);
    assert_eq!(&body[..], b"{\"description\": \"a\"}");
    assert!(matches!(
        events(&body, &text_ok, &HeaderMap::new(), 100),
        Ok(Split::Events(e)) if e.len() == 1
    ));
    assert_eq!(without_bom(&body), body);
    // Behind the mark too, and the event's raw bytes are the body as received.
    match events(&bom, &text_ok, &HeaderMap::new(), 100) {
        Ok(Split::Events(e)) => {
            assert_eq!(e.len(), 1);
            assert_eq!(e[0].raw, bom);
            assert_eq!(e[0].value.to_value()["description"], "a");
        }
        _ => panic!("the event behind a byte order mark"),
    }
    // In a batch behind the mark, each element is its own bytes.
    let batch = Bytes::from_static(b"\xEF\xBB\xBF[{\"d\": 1}, {\"d\": 2}]");
    match events(&batch, &text_ok, &HeaderMap::new(), 100) {
        Ok(Split::Events(e)) => {
            let raws: Vec<&[u8]> = e.iter().map(|e| e.raw.as_ref()).collect();
            assert_eq!(raws, [&b"{\"d\": 1}"[..], b"{\"d\": 2}"]);
        }
        _ => panic!("a batch behind a byte order mark"),
    }
    // JSON is still read as JSON, and NDJSON of objects is still events.
    assert_eq!(split(&text_ok, b"{\"a\": 1}"), Ok(Some(1)));
    assert_eq!(split(&text_ok, b"{\"a\": 1}\n{\"a\": 2}\n"), Ok(Some(2)));
}

#[test]
fn text_bodies_keep_each_event_exact_bytes_and_non_ascii_values() {
    let array = "[{\"id\":\"é1\",\"m\":\"naïve\"} , {\"id\":\"2\",\"m\":\"\\u00e9\"}]";
    let events = split(array.as_bytes()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        &events[0].0[..],
        "{\"id\":\"é1\",\"m\":\"naïve\"}".as_bytes()
    );
    assert_eq!(events[0].1["m"], "naïve");
    assert_eq!(events[1].1["m"], "é");
    let ndjson = "{\"id\":\"a\",\"m\":\"ü\"}\n{\"id\":\"b\"}\n";
    let events = split(ndjson.as_bytes()).unwrap();
    assert_eq!(events[0].1["m"], "ü");
    assert_eq!(&events[1].0[..], b"{\"id\":\"b\"}");
}

#[test]
fn crlf_lines_and_json_text_sequences_give_each_event_its_own_bytes() {
    let raws = |body: &[u8]| -> Vec<Vec<u8>> {
        split(body)
            .unwrap()
            .into_iter()
            .map(|(raw, _)| raw.to_vec())
            .collect()
    };
    // NDJSON with CRLF line ends: the CR ends the line, it is not the event's.
    assert_eq!(
        raws(b"{\"id\":\"a\"}\r\n{\"id\":\"b\"} \r\n\r\n"),
        [b"{\"id\":\"a\"}".to_vec(), b"{\"id\":\"b\"} ".to_vec()]
    );
    // RFC 7464: RS before each record, LF after it; a record may span lines; one record
    // is a sequence too.
    assert_eq!(
        raws(b"\x1e{\"id\":\"a\"}\n\x1e{\n  \"id\": \"b\"\n}\r\n"),
        [
            b"{\"id\":\"a\"}".to_vec(),
            b"{\n  \"id\": \"b\"\n}".to_vec()
        ]
    );
    assert_eq!(raws(b"\x1e{\"id\":\"a\"}\n"), [b"{\"id\":\"a\"}".to_vec()]);
    // A record that is not JSON is refused, with its position.
    assert!(matches!(
        split(b"\x1e{\"id\":\"a\"}\n\x1e{\"id\":\n"),
        Err(SplitError::Malformed { line: 2, .. })
    ));
}

#[test]
fn json_nested_past_the_limit_is_too_deep_not_malformed() {
    let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
    // 126 arrays inside the object: within the limit, an ordinary event.
    assert_eq!(split(deep(126).as_bytes()).map(|e| e.len()).ok(), Some(1));
    assert!(matches!(
        split(deep(127).as_bytes()),
        Err(SplitError::TooDeep { .. })
    ));
    match split(deep(200).as_bytes()) {
        Err(e @ SplitError::TooDeep { line: 1, .. }) => {
            assert_eq!(e.code(), "json_too_deep");
            assert!(e.to_string().contains("deeper than 127 levels"), "{e}");
        }
        other => panic!("expected too deep, got {other:?}"),
    }
    let array = format!("[{}]", deep(200));
    assert!(matches!(
        split(array.as_bytes()),
        Err(SplitError::TooDeep { .. })
    ));
    // In NDJSON, the line is the event's.
    let ndjson = format!("{{\"id\":\"a\"}}\n{}\n", deep(200));
    assert!(matches!(
        split(ndjson.as_bytes()),
        Err(SplitError::TooDeep { line: 2, .. })
    ));
    // Broken JSON stays malformed.
    assert!(matches!(
        split(b"{\"a\":[1,}"),
        Err(SplitError::Malformed { .. })
    ));
}

#[test]
fn a_body_that_is_not_utf8_is_malformed_where_the_bad_byte_is() {
    let mut body = b"{\"id\":\"x\",\"m\":\"".to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(b"\"}");
    match split(&body) {
        Err(SplitError::Malformed { line, column }) => assert_eq!((line, column), (1, 16)),
        other => panic!("expected malformed, got {other:?}"),
    }
    let mut array = b"[{\"id\":\"x\"},{\"m\":\"".to_vec();
    array.extend_from_slice(&[0xc3]);
    array.extend_from_slice(b"\"}]");
    assert!(matches!(split(&array), Err(SplitError::Malformed { .. })));
}

#[test]
fn repairs_only_stray_backslashes_and_raw_control_characters_inside_strings() {
    let fixed = repair_strings(br#"{"b":"Acme\ Product \n \u00e9 \""}"#);
    assert_eq!(fixed, br#"{"b":"Acme\\ Product \n \u00e9 \""}"#.to_vec());
    let v: Value = serde_json::from_slice(&fixed).unwrap();
    assert_eq!(v["b"], "Acme\\ Product \n \u{e9} \"");
    // A templated multi-line value; the whitespace between members stays as it is.
    let body = b"{\n\t\"subject\": \"Job\",\r\n \"body\": \"line 1\nline\t2\r\n\x01end \\q\"\n}";
    let fixed = repair_strings(body);
    assert!(serde_json::from_slice::<Value>(body).is_err());
    let v: Value = serde_json::from_slice(&fixed).unwrap();
    assert_eq!(v["body"], "line 1\nline\t2\r\n\u{1}end \\q");
    assert_eq!(v["subject"], "Job");
    assert!(fixed.starts_with(b"{\n\t\"subject\""));
    // Valid JSON comes out unchanged.
    let valid = br#"{"a":"x\"y\\","b":["\u0041\n",1,{"c":"\/"}]}"#;
    assert_eq!(repair_strings(valid), valid.to_vec());
}

/// A lenient parser's array that only the repair reads: each element keeps its own bytes
/// as sent, found where strings, nesting and commas put them.
#[test]
fn a_repaired_array_gives_each_element_its_own_bytes() {
    let lenient = Parser::from_toml(
        "t",
        "[parser]\nproduct = \"T\"\nvendor_name = \"T\"\nlenient_json = true\n\
         [id]\nfrom = [\"id\"]\nhash = \"t\"\nwindow = \"1h\"\n\
         [[route]]\nname = \"any\"\nclass = 0\nactivity = 99\n",
        "t.toml",
    )
    .unwrap();
    let elements: [&[u8]; 3] = [
        b"{\"subject\": \"A, [b]\", \"body\": \"Acme\\ Product\nline 2\"}",
        b"{\"subject\": \"q\\\"}\", \"n\": [1, {\"x\": \"]\"}]}",
        b"{\"body\": \"tab\there \\d\"}",
    ];
    let body = [
        b"\n [ ".as_slice(),
        elements[0],
        b" ,\r\n",
        elements[1],
        b",",
        elements[2],
        b" ]\n",
    ]
    .concat();
    assert!(
        serde_json::from_slice::<Value>(&body).is_err(),
        "strict JSON reads it"
    );
    let body = Bytes::from(body);
    let Ok(Split::Events(events)) = events(&body, &lenient, &HeaderMap::new(), 100) else {
        panic!("the repaired array is not split");
    };
    let raws: Vec<&[u8]> = events.iter().map(|e| e.raw.as_ref()).collect();
    assert_eq!(raws, elements);
    assert_eq!(events[1].value.to_value()["subject"], "q\"}");
    // Not an array of that shape: no spans (the caller then keeps the whole body).
    assert_eq!(element_spans(b"[{\"a\": 1}] x"), None);
    assert_eq!(element_spans(b"[{\"a\": 1},]"), None);
    assert_eq!(element_spans(b"{\"a\": [1, 2]}"), None);
}
