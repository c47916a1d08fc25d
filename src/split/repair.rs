//! Lenient reading, for parsers that allow it (`lenient_json`): bodies vendors send that are
//! not strict JSON. ConnectSecure's templated strings carry raw control characters and stray
//! backslashes (its own sample has `Corporation\ Product`); any sender may put a lone UTF-16
//! surrogate escape in a string. Each repair keeps the original bytes for `raw_data`: only
//! the parse reads the repaired copy.

use bytes::Bytes;
use serde_json::Value;

use super::{malformed, SplitError};
use crate::parse::Parser;

/// After strict parsing failed with `strict`: for parsers that allow it, parse again with
/// the strings repaired ([`repair_strings`]; ConnectSecure's own sample has
/// `Corporation\ Product`, and its `body` "may contain multi-line text").
pub(super) fn repaired(
    body: &Bytes,
    parser: &Parser,
    strict: &serde_json::Error,
) -> Result<Value, SplitError> {
    if !parser.lenient_json() || !strict.is_syntax() {
        return Err(malformed(strict));
    }
    serde_json::from_slice(&repair_strings(body)).map_err(|_| malformed(strict))
}

/// Where the elements of the top-level array in `body` are, each without the whitespace
/// around it, found by bytes alone: strings (a backslash escaping the byte after it, as
/// [`repair_strings`] reads them too), nesting, and the commas between elements. For a body
/// that is not strict JSON but repairs into an array. `None` when it is not that shape.
pub(super) fn element_spans(body: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let blank = |b: &u8| b.is_ascii_whitespace();
    let open = body
        .iter()
        .position(|b| !blank(b))
        .filter(|&i| body.get(i) == Some(&b'['))?;
    let mut spans = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut start = open + 1;
    for (i, &b) in body.iter().enumerate().skip(open) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    spans.push(trimmed(body, start..i)?);
                    let rest = body.get(i + 1..)?;
                    return rest.iter().all(blank).then_some(spans);
                }
            }
            b',' if depth == 1 => {
                spans.push(trimmed(body, start..i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    None
}

/// `range` of `body` without the whitespace at its ends; `None` when nothing is left.
fn trimmed(body: &[u8], range: std::ops::Range<usize>) -> Option<std::ops::Range<usize>> {
    let part = body.get(range.clone())?;
    let lead = part.iter().position(|b| !b.is_ascii_whitespace())?;
    let trail = part.iter().rev().position(|b| !b.is_ascii_whitespace())?;
    Some(range.start + lead..range.end - trail)
}

/// Inside JSON strings, doubles every backslash that does not start a valid escape (`\"`,
/// `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\uXXXX`) and escapes raw control characters
/// (a templated multi-line value: `\n`, `\r`, `\t`, else `\u00XX`). Bytes outside strings
/// are kept, so whitespace between members stays whitespace.
pub(super) fn repair_strings(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        i += 1;
        if !in_string {
            in_string = b == b'"';
            out.push(b);
            continue;
        }
        match b {
            b'"' => {
                in_string = false;
                out.push(b);
            }
            b'\\' => {
                let next = body.get(i).copied();
                let valid = match next {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => true,
                    Some(b'u') => body
                        .get(i + 1..i + 5)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)),
                    _ => false,
                };
                match next {
                    Some(n) if valid => {
                        out.extend_from_slice(&[b'\\', n]);
                        i += 1;
                    }
                    _ => out.extend_from_slice(b"\\\\"),
                }
            }
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let hex = |n: u8| HEX.get(usize::from(n)).copied().unwrap_or(b'0');
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex(b >> 4), hex(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out
}

/// `body` with every `\uXXXX` escape of a UTF-16 surrogate that is not half of a high-low
/// pair, inside a string, rewritten as `\ufffd` (six bytes for six, so offsets hold); `None`
/// when it has none.
pub(super) fn without_lone_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                match surrogate_at(body, i) {
                    Some(0xD800..=0xDBFF)
                        if matches!(surrogate_at(body, i + 6), Some(0xDC00..=0xDFFF)) =>
                    {
                        i += 12;
                        continue;
                    }
                    Some(_) => {
                        let copy = out.get_or_insert_with(|| body.to_vec());
                        if let Some(escape) = copy.get_mut(i..i + 6) {
                            escape.copy_from_slice(b"\\ufffd");
                        }
                        i += 6;
                        continue;
                    }
                    // Any other escape: step over the escaped character too.
                    None => i += 1,
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The UTF-16 code unit of the `\uXXXX` escape at `i`, if it is one of a surrogate.
fn surrogate_at(body: &[u8], i: usize) -> Option<u16> {
    let escape = body.get(i..i + 6)?;
    let hex = escape.strip_prefix(b"\\u")?;
    let unit = u16::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
    (0xD800..=0xDFFF).contains(&unit).then_some(unit)
}

/// The part of `body` at the offsets `part` has in `copy` (a same-length rewrite of it).
pub(super) fn same_range(body: &Bytes, copy: &Bytes, part: &Bytes) -> Bytes {
    let start = (part.as_ptr() as usize).saturating_sub(copy.as_ptr() as usize);
    body.get(start..start + part.len())
        .map_or_else(|| body.clone(), |bytes| body.slice_ref(bytes))
}
