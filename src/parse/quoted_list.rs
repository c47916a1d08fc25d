//! The `quoted_list` conversion: a bracketed list of quoted strings as vendors print it.
//!
//! Input: text such as JSON's `["dba","sre"]` or Go's `%q` of a `[]string`, `["dba" "sre"]`
//! (what Hoop's Teams review card carries in its "Approval Groups" fact: JSON only while
//! there is at most one group). Output: the strings, unescaped. Elements are separated by
//! commas and/or whitespace; escapes are JSON's and Go's (`\n`, `\"`, `\u00e9`, `\U0001F600`,
//! `\xff`, octal `\101`). Anything else (no brackets, an unquoted element, an unfinished
//! string or escape) is `None`: the value is left out and stays in `raw_data`.

/// The strings of a bracketed, quoted list; `None` when `text` is not one.
pub fn parse(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut rest = inner.as_bytes();
    let mut items = Vec::new();
    loop {
        rest = skip_separators(rest);
        let Some((&first, after)) = rest.split_first() else {
            return Some(items);
        };
        if first != b'"' {
            return None;
        }
        let (item, after) = string(after)?;
        items.push(item);
        rest = after;
    }
}

fn skip_separators(mut rest: &[u8]) -> &[u8] {
    while let Some((&b, after)) = rest.split_first() {
        if b == b',' || b.is_ascii_whitespace() {
            rest = after;
        } else {
            break;
        }
    }
    rest
}

/// One quoted string after its opening quote: the text and what follows the closing quote.
fn string(mut rest: &[u8]) -> Option<(String, &[u8])> {
    let mut out = Vec::new();
    loop {
        let (&b, after) = rest.split_first()?;
        rest = after;
        match b {
            b'"' => return Some((String::from_utf8_lossy(&out).into_owned(), rest)),
            b'\\' => rest = escape(rest, &mut out)?,
            _ => out.push(b),
        }
    }
}

/// One escape after its backslash, appended to `out` as UTF-8 (or as the raw byte for `\x`
/// and octal, as Go means them).
fn escape<'a>(rest: &'a [u8], out: &mut Vec<u8>) -> Option<&'a [u8]> {
    let (&kind, rest) = rest.split_first()?;
    let simple = match kind {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        b'\\' | b'"' | b'\'' | b'/' => Some(kind),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return Some(rest);
    }
    match kind {
        b'x' => {
            let (value, rest) = number(rest, 2, 16)?;
            out.push(u8::try_from(value).ok()?);
            Some(rest)
        }
        b'0'..=b'7' => {
            let digits = rest.get(..2)?;
            let text = [kind, *digits.first()?, *digits.get(1)?];
            let (value, _) = number(&text, 3, 8)?;
            out.push(u8::try_from(value).ok()?);
            rest.get(2..)
        }
        b'u' => {
            let (high, rest) = number(rest, 4, 16)?;
            // JSON writes a character beyond the BMP as a surrogate pair.
            if (0xd800..0xdc00).contains(&high) {
                let rest = rest.strip_prefix(b"\\u")?;
                let (low, rest) = number(rest, 4, 16)?;
                if !(0xdc00..0xe000).contains(&low) {
                    return None;
                }
                push_char(out, 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00))?;
                return Some(rest);
            }
            push_char(out, high)?;
            Some(rest)
        }
        b'U' => {
            let (value, rest) = number(rest, 8, 16)?;
            push_char(out, value)?;
            Some(rest)
        }
        _ => None,
    }
}

/// The first `digits` bytes of `rest` as a number in `radix`, and what follows them.
fn number(rest: &[u8], digits: usize, radix: u32) -> Option<(u32, &[u8])> {
    let bytes = rest.get(..digits)?;
    // Digits only: `from_str_radix` would take a sign (`\u+0e9`).
    if !bytes.iter().all(|b| char::from(*b).is_digit(radix)) {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let value = u32::from_str_radix(text, radix).ok()?;
    Some((value, rest.get(digits..)?))
}

fn push_char(out: &mut Vec<u8>, code: u32) -> Option<()> {
    let c = char::from_u32(code)?;
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn reads_go_s_quoted_slices_and_json_arrays_alike() {
        // What Go's fmt.Sprintf("%q", []string{...}) prints: no commas.
        assert_eq!(parse(r#"["dba" "sre"]"#), list(&["dba", "sre"]));
        assert_eq!(parse(r#"["dba","sre"]"#), list(&["dba", "sre"]));
        assert_eq!(parse(r#" [ "dba" ,  "sre" ] "#), list(&["dba", "sre"]));
        assert_eq!(parse(r#"["dba"]"#), list(&["dba"]));
        assert_eq!(parse("[]"), list(&[]));
    }

    #[test]
    fn unescapes_what_go_and_json_escape() {
        assert_eq!(
            parse(r#"["say \"hi\"" "a\\b" "tab\there"]"#),
            list(&["say \"hi\"", "a\\b", "tab\there"])
        );
        // Go keeps printable Unicode as is and escapes the rest; JSON may use surrogates.
        assert_eq!(
            parse(r#"["équipe" "\u00e9" "\U0001F600"]"#),
            list(&["équipe", "é", "😀"])
        );
        assert_eq!(parse(r#"["\ud83d\ude00"]"#), list(&["😀"]));
        assert_eq!(parse(r#"["\x41\102"]"#), list(&["AB"]));
        // A byte that is not UTF-8 on its own becomes the replacement character.
        assert_eq!(parse(r#"["\xff"]"#), list(&["\u{fffd}"]));
    }

    #[test]
    fn anything_else_is_not_a_list() {
        for text in [
            "dba",
            "[dba sre]",
            r#"["dba" sre]"#,
            r#"["dba"#,
            r#"["dba\"]"#,
            r#"["\u12"]"#,
            r#"["\ud83d"]"#,
            r#"["\q"]"#,
            r#"["\u+0e9"]"#,
            r#"["\x+f"]"#,
            r#"["\18"]"#,
            r#"{"a":1}"#,
            "",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }
}
