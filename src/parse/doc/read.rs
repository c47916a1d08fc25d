//! Reads JSON text into a [`Doc`] directly, without serde's visitor machinery.
//!
//! Input: a body's text (UTF-8, already checked). Output: the [`Doc`], or `None` when the
//! text is not JSON as serde_json reads it. `None` says nothing more: the caller asks
//! serde_json, which reports the line and column (and whether nesting was too deep), so the
//! refusals are serde_json's own. A body that serde_json reads but this reader does not
//! (none is known; the differential tests look for them) is thereby still read.
//!
//! Why: through serde's visitor, reading was ≈ 15 % of parse + normalize (issue #7); read
//! here it is ≈ 18 % cheaper (fixture mix, instructions). Gathering each object's members
//! on one shared stack and allocating the object once at its exact size was tried: the
//! extra move of every member cost more than the reallocations it saved.
//!
//! What it reads as serde_json does: RFC 8259's grammar (no trailing commas, no comments, no
//! leading zeros, no control characters in strings), at most 127 arrays and objects inside
//! one another, a lone UTF-16 surrogate escape refused, integers as `u64` / `i64` and every
//! other number (a fraction, an exponent, `-0`, an integer past 64 bits) converted by
//! serde_json itself from its text.

use std::borrow::Cow;
use std::ops::Range;

use super::{Doc, Members};

/// serde_json's recursion limit: a reading fails on entering the 128th array or object.
const DEPTH_LIMIT: usize = 128;

/// `text` as one JSON value (whitespace around it allowed).
pub fn document(text: &str) -> Option<Doc<'_>> {
    let mut r = Reader::new(text);
    r.skip_blank();
    let doc = r.value()?;
    r.skip_blank();
    r.at_end().then_some(doc)
}

/// `text` as a JSON array: each element with the byte range it covers in `text` (without
/// the whitespace around it). Each element is read as a document of its own would be (its
/// own nesting limit), as the split reads the elements of a batch.
pub fn elements(text: &str) -> Option<Vec<(Range<usize>, Doc<'_>)>> {
    let mut r = Reader::new(text);
    r.skip_blank();
    r.eat(b'[')?;
    r.skip_blank();
    let mut out = Vec::new();
    if r.eat(b']').is_none() {
        loop {
            let start = r.pos;
            r.depth = 0;
            let doc = r.value()?;
            out.push((start..r.pos, doc));
            r.skip_blank();
            match r.next()? {
                b',' => r.skip_blank(),
                b']' => break,
                _ => return None,
            }
        }
    }
    r.skip_blank();
    r.at_end().then_some(out)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Arrays and objects open around the reading position.
    depth: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
        }
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The byte at the position, consumed.
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    fn skip_blank(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Option<Doc<'a>> {
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => {
                self.pos += 1;
                self.string().map(Doc::String)
            }
            b't' => self.literal(b"true", Doc::Bool(true)),
            b'f' => self.literal(b"false", Doc::Bool(false)),
            b'n' => self.literal(b"null", Doc::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], doc: Doc<'a>) -> Option<Doc<'a>> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| {
            self.pos = end;
            doc
        })
    }

    /// One more array or object open; `None` past serde_json's limit.
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth < DEPTH_LIMIT).then_some(())
    }

    fn object(&mut self) -> Option<Doc<'a>> {
        let mut members = Vec::new();
        self.nested(b'}', |r| {
            r.eat(b'"')?;
            let key = r.string()?;
            r.skip_blank();
            r.eat(b':')?;
            r.skip_blank();
            members.push((key, r.value()?));
            Some(())
        })?;
        Some(Doc::Object(Members(members)))
    }

    fn array(&mut self) -> Option<Doc<'a>> {
        let mut items = Vec::new();
        self.nested(b']', |r| {
            items.push(r.value()?);
            Some(())
        })?;
        Some(Doc::Array(items))
    }

    /// An array or object from its opening byte to `close`: `item` reads each member or
    /// element, the commas between them are checked here; one level deeper meanwhile.
    fn nested(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.enter()?;
        self.pos += 1;
        self.skip_blank();
        if self.eat(close).is_none() {
            loop {
                item(self)?;
                self.skip_blank();
                match self.next()? {
                    b',' => self.skip_blank(),
                    b if b == close => break,
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// The rest of a string whose opening quote is read: borrowed from the text unless it
    /// has escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.pos;
        let end = start + special(self.bytes.get(start..)?);
        match self.bytes.get(end)? {
            b'"' => {
                self.pos = end + 1;
                self.text.get(start..end).map(Cow::Borrowed)
            }
            b'\\' => {
                let mut owned = String::with_capacity(end - start + 16);
                owned.push_str(self.text.get(start..end)?);
                self.pos = end;
                self.escaped(owned).map(Cow::Owned)
            }
            // A control character, which JSON strings must escape.
            _ => None,
        }
    }

    /// The rest of a string from a backslash on, appended to `out`.
    fn escaped(&mut self, mut out: String) -> Option<String> {
        loop {
            // At a backslash.
            self.pos += 1;
            match self.next()? {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => out.push(self.unicode_escape()?),
                _ => return None,
            }
            let start = self.pos;
            let end = start + special(self.bytes.get(start..)?);
            out.push_str(self.text.get(start..end)?);
            self.pos = end;
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(out);
                }
                b'\\' => {}
                _ => return None,
            }
        }
    }

    /// The character of a `\u` escape whose `\u` is read; a surrogate pair is two escapes.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                // A high surrogate: a low one must follow, as its own escape.
                self.eat(b'\\')?;
                self.eat(b'u')?;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                let c = 0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                char::from_u32(c)
            }
            // A lone low surrogate.
            0xDC00..=0xDFFF => None,
            c => char::from_u32(u32::from(c)),
        }
    }

    fn hex4(&mut self) -> Option<u16> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut n: u16 = 0;
        for &d in digits {
            n = n * 16 + u16::from(char::from(d).to_digit(16)? as u8);
        }
        self.pos += 4;
        Some(n)
    }

    fn number(&mut self) -> Option<Doc<'a>> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        let digits_start = start + usize::from(negative);
        let mut n: u64 = 0;
        let mut end = digits_start;
        while let Some(d @ b'0'..=b'9') = self.bytes.get(end).copied() {
            // 19 digits fit in a u64; longer integers take serde_json's conversion below.
            n = n.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            end += 1;
        }
        let digits = end - digits_start;
        if digits == 0 || (digits > 1 && self.bytes.get(digits_start) == Some(&b'0')) {
            return None;
        }
        let integer = !matches!(self.bytes.get(end), Some(b'.' | b'e' | b'E'));
        if integer && digits <= 19 {
            if !negative {
                self.pos = end;
                return Some(Doc::Number(n.into()));
            }
            // `-0` is a float to serde_json; below `i64::MIN` too.
            if n != 0 && n <= i64::MIN.unsigned_abs() {
                self.pos = end;
                return Some(Doc::Number((n as i64).wrapping_neg().into()));
            }
        }
        // Fraction and exponent, by the grammar; then serde_json converts the text.
        if self.bytes.get(end) == Some(&b'.') {
            end = self.digits_from(end + 1)?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(end) {
            end += 1;
            if let Some(b'+' | b'-') = self.bytes.get(end) {
                end += 1;
            }
            end = self.digits_from(end)?;
        }
        let doc: Doc<'_> = serde_json::from_str(self.text.get(start..end)?).ok()?;
        self.pos = end;
        match doc {
            Doc::Number(n) => Some(Doc::Number(n)),
            // A float JSON cannot hold, read as serde_json's `Value` reads it.
            _ => Some(Doc::Null),
        }
    }

    /// The end of a run of at least one digit starting at `at`.
    fn digits_from(&self, at: usize) -> Option<usize> {
        let run = self
            .bytes
            .get(at..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (run > 0).then_some(at + run)
    }
}

/// Where in `bytes` the first quote, backslash or control character is (`bytes.len()` if
/// none): eight bytes at a time, each test a word-wide comparison with borrows that only
/// ever run upward, so the lowest flagged byte is a true one.
fn special(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let hits = zero_in(w ^ (ONES * u64::from(b'"')))
            | zero_in(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS);
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(chunks.remainder().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// serde_json's reading of `text` into the same tree, through serde: the oracle.
    fn oracle(text: &str) -> Option<Doc<'_>> {
        serde_json::from_str(text).ok()
    }

    /// The reader and the oracle agree on `text`: both refuse it, or both read the same tree
    /// (members in the order sent, each string borrowed or not alike: compared as `Debug`).
    fn assert_agree(text: &str) -> bool {
        let (mine, theirs) = (document(text), oracle(text));
        assert_eq!(
            format!("{mine:?}"),
            format!("{theirs:?}"),
            "reader and serde_json differ on {text:?}"
        );
        mine.is_some()
    }

    #[test]
    fn reads_what_serde_json_reads_and_refuses_what_it_refuses() {
        let cases = [
            r#"{"b":1,"a":"x","c":[true,false,null,{"z":1,"y":2}]}"#,
            r#"{"id":"a\"b\\c\nd\u00e9\ud83d\ude00\/\b\f\r\t","é":"ü","a b":"  ","":0}"#,
            r#"{"k":1,"k":2,"j":{"k":[1],"k":"last"},"k":3}"#,
            " \t\r\n{ \"a\" : [ 1 , 2 ] } \n",
            "[]",
            "{}",
            "[[],{},[{}]]",
            "\"top\"",
            "true",
            "null",
            "0",
            "-0",
            "-0.0",
            "0.5",
            "1e3",
            "1E+3",
            "1e-3",
            "2.50",
            "1e400",
            "-1e400",
            "18446744073709551615",
            "18446744073709551616",
            "9999999999999999999",
            "10000000000000000000",
            "-9223372036854775808",
            "-9223372036854775809",
            "-1",
            "123456789012345678901234567890",
            // Refused by both.
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "[,1]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":}"#,
            "01",
            "-01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "1 2",
            "{} {}",
            "nul",
            "truex",
            "[true false]",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\ud800x\"",
            "\"tab\there\"",
            "\"line\nbreak\"",
            "\"\u{1}\"",
            "\"unterminated",
            "\"esc at end\\",
            "[1]x",
            "\u{feff}{}",
        ];
        for case in cases {
            assert_agree(case);
        }
    }

    #[test]
    fn nests_as_deep_as_serde_json_and_no_deeper() {
        for depth in [126, 127, 128, 129] {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
            assert_eq!(assert_agree(&arrays), depth < DEPTH_LIMIT, "{depth}");
            assert_eq!(assert_agree(&objects), depth < DEPTH_LIMIT, "{depth}");
        }
    }

    /// Every fixture body serde_json reads, read alike (as a document, and as a batch when
    /// it is an array, element by element).
    #[test]
    fn reads_every_fixture_as_serde_json_does() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
        let mut read = 0;
        for vendor in std::fs::read_dir(root).unwrap() {
            for case in std::fs::read_dir(vendor.unwrap().path()).unwrap() {
                let path = case.unwrap().path().join("body.json");
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                if assert_agree(&text) {
                    read += 1;
                }
                assert_elements_agree(&text);
            }
        }
        assert!(read > 60, "only {read} fixture bodies read");
    }

    /// `elements` agrees with serde_json's reading of the array into raw elements, each then
    /// read on its own (the split's reading before this reader).
    fn assert_elements_agree(text: &str) {
        let theirs: Option<Vec<(Range<usize>, Doc<'_>)>> =
            serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text)
                .ok()
                .and_then(|raw| {
                    raw.into_iter()
                        .map(|e| {
                            let start = e.get().as_ptr() as usize - text.as_ptr() as usize;
                            let doc = serde_json::from_str(e.get()).ok()?;
                            Some((start..start + e.get().len(), doc))
                        })
                        .collect()
                });
        assert_eq!(
            format!("{:?}", elements(text)),
            format!("{theirs:?}"),
            "{text:?}"
        );
    }

    #[test]
    fn reads_batches_as_serde_json_does() {
        let deep = format!("[{}{}]", "[".repeat(127), "]".repeat(127));
        let cases = [
            r#"[{"a":1}, {"b":"x"} ]"#,
            " [ ] ",
            "[1,2,[3]]",
            "[{}]x",
            "[1,]",
            "{}",
            &deep,
        ];
        for case in cases {
            assert_elements_agree(case);
        }
    }

    /// Small random edits of JSON texts (bytes cut, repeated and inserted, from the
    /// characters JSON's grammar turns on), each read by both: they agree on every one.
    #[test]
    fn agrees_with_serde_json_on_random_edits() {
        let seeds = [
            r#"{"id":"a\"b\\c\u00e9\ud83d\ude00","n":[0,-1,1.5e3,18446744073709551615],"t":true,"o":{"k":null}}"#,
            "[{\"a\": [1, {\"b\": \"x y\"}], \"c\": -0.25}, {\"d\": \"\\n\"}]",
            "{\n  \"detail\": {\n    \"data\": {\"x\": 12, \"é\": \"ü\"}\n  }\n}",
        ];
        let alphabet = b"\"\\{}[],:0123456789-+.eEu \t\n\r\x01/antrufl";
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let (mut read, mut refused) = (0, 0);
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(bytes.len() + 1);
                match next(3) {
                    0 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    1 if at < bytes.len() => bytes.insert(at, bytes[at]),
                    _ => bytes.insert(at, alphabet[next(alphabet.len())]),
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            if assert_agree(&text) {
                read += 1;
            } else {
                refused += 1;
            }
            assert_elements_agree(&text);
        }
        // Both kinds of outcome occur, so the comparison covers both.
        assert!(
            read > 1_000 && refused > 1_000,
            "{read} read, {refused} refused"
        );
    }

    #[test]
    fn finds_the_first_quote_backslash_or_control_character() {
        for len in 0..20 {
            for at in 0..=len {
                for special_byte in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    // Bytes that are near the specials in value, and multi-byte UTF-8.
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = [b'a', 0x20, 0x21, 0x5b, 0x5d, 0xc3, 0xa9, 0x7f][i % 8];
                    }
                    if at < len {
                        bytes[at] = special_byte;
                    }
                    assert_eq!(special(&bytes), at, "{bytes:?}");
                }
            }
        }
    }
}
