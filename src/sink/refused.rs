//! Records Kafka refuses for good (too large for the topic, or invalid), set aside so that
//! one of them cannot hold up every record behind it.
//!
//! Input: the envelope [`PublishError::Refused`](crate::publish::PublishError::Refused) named.
//! Output: an event becomes a dead letter carrying the vendor's raw bytes (its OCSF event's
//! `raw_data`), reason `kafka_refused`, for the dead-letter topic: smaller than the OCSF
//! event, which holds those bytes escaped and more. A dead letter Kafka refuses too is, in
//! spool mode, appended to `refused.jsonl` in the spool directory (synced) before the spool
//! lets it go, so nothing the gateway acknowledged is lost; in direct mode the request fails.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use bytes::Bytes;

use super::envelope::{Envelope, Kind};

/// The dead-letter reason code of an event Kafka refused.
pub const REASON_CODE: &str = "kafka_refused";

/// The file, in the spool directory, that keeps dead letters Kafka refused too.
pub const KEPT_FILE: &str = "refused.jsonl";

/// What became of a refused envelope.
#[derive(Debug, PartialEq, Eq)]
pub enum SetAside {
    /// An event, replaced in place by its dead letter; send the slice again.
    DeadLettered,
    /// Already a dead letter: Kafka takes it nowhere. Keep it elsewhere ([`keep`]) or fail.
    NoTopicLeft,
}

/// Sets aside the envelope at `index` that Kafka refused with `why`.
pub fn set_aside(
    envelopes: &mut [Envelope],
    index: usize,
    why: &dyn std::fmt::Display,
) -> SetAside {
    let Some(envelope) = envelopes.get_mut(index) else {
        return SetAside::NoTopicLeft;
    };
    if matches!(envelope.kind, Kind::DeadLetter { .. }) {
        return SetAside::NoTopicLeft;
    }
    let ocsf_bytes = envelope.body.len();
    envelope.kind = Kind::DeadLetter {
        reason_code: REASON_CODE.to_owned(),
        reason: format!("Kafka refused the normalized event ({ocsf_bytes} bytes): {why}"),
    };
    envelope.body = raw_bytes(&envelope.body);
    SetAside::DeadLettered
}

/// Logs the event at `index` that [`set_aside`] just made a dead letter.
pub fn warn_dead_lettered(envelopes: &[Envelope], index: usize) {
    if let Some(e) = envelopes.get(index) {
        let reason = match &e.kind {
            Kind::DeadLetter { reason, .. } => reason.as_str(),
            Kind::Event { .. } => "",
        };
        tracing::warn!(
            source = %e.source,
            request_id = %e.request_id,
            uid = %e.uid,
            raw_bytes = e.body.len(),
            reason,
            "Kafka refused an event for good; its raw bytes go to the dead-letter topic (raise the topic's max.message.bytes to take events this large)"
        );
    }
}

/// The vendor's bytes inside an OCSF event (`raw_data`); the event itself when it has none.
fn raw_bytes(ocsf: &Bytes) -> Bytes {
    #[derive(serde::Deserialize)]
    struct RawOnly<'a> {
        #[serde(borrow)]
        raw_data: Option<Cow<'a, str>>,
    }
    match serde_json::from_slice::<RawOnly<'_>>(ocsf) {
        Ok(RawOnly {
            raw_data: Some(raw),
        }) => Bytes::from(raw.into_owned()),
        _ => ocsf.clone(),
    }
}

/// Appends `envelope` (a dead letter) as one JSON line to [`KEPT_FILE`] in `dir` and syncs
/// it; the bytes go base64-encoded (`raw_base64`), since a dead letter's need not be text.
pub fn keep(dir: &Path, envelope: &Envelope) -> std::io::Result<PathBuf> {
    let (reason_code, reason) = match &envelope.kind {
        Kind::DeadLetter {
            reason_code,
            reason,
        } => (reason_code.as_str(), reason.as_str()),
        Kind::Event { .. } => ("", ""),
    };
    let line = serde_json::json!({
        "source": envelope.source,
        "vendor": envelope.vendor,
        "request_id": envelope.request_id,
        "uid": envelope.uid,
        "reason_code": reason_code,
        "reason": reason,
        "raw_base64": base64::engine::general_purpose::STANDARD.encode(&envelope.body),
    });
    let mut text = line.to_string();
    text.push('\n');
    let path = dir.join(KEPT_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(body: &str) -> Envelope {
        Envelope {
            kind: Kind::Event {
                class_uid: 3002,
                class_name: "Authentication".to_owned(),
            },
            source: "hypr".to_owned(),
            vendor: "hypr".to_owned(),
            request_id: "r1".to_owned(),
            uid: "u1".to_owned(),
            body: Bytes::from(body.to_owned()),
            window_s: 60,
        }
    }

    #[test]
    fn an_event_becomes_a_dead_letter_of_its_raw_bytes() {
        let raw = r#"{"id":"e\"1","n":[1, 2]}"#;
        let ocsf = serde_json::json!({"class_uid": 3002, "raw_data": raw}).to_string();
        let mut envelopes = vec![event("{}"), event(&ocsf)];
        let outcome = set_aside(&mut envelopes, 1, &"Broker: Message size too large");
        assert_eq!(outcome, SetAside::DeadLettered);
        let dead = &envelopes[1];
        assert_eq!(dead.body, Bytes::from(raw));
        assert_eq!(dead.uid, "u1");
        match &dead.kind {
            Kind::DeadLetter {
                reason_code,
                reason,
            } => {
                assert_eq!(reason_code, REASON_CODE);
                assert!(reason.contains("Message size too large"), "{reason}");
                assert!(
                    reason.contains(&format!("({} bytes)", ocsf.len())),
                    "{reason}"
                );
            }
            Kind::Event { .. } => panic!("still an event"),
        }
        assert!(
            matches!(envelopes[0].kind, Kind::Event { .. }),
            "only the refused one"
        );
        // Refused again as a dead letter: nowhere left in Kafka.
        assert_eq!(
            set_aside(&mut envelopes, 1, &"again"),
            SetAside::NoTopicLeft
        );
        assert_eq!(
            set_aside(&mut envelopes, 7, &"no such index"),
            SetAside::NoTopicLeft
        );
    }

    #[test]
    fn an_event_without_raw_data_goes_whole() {
        let mut envelopes = vec![event(r#"{"class_uid":3002}"#)];
        set_aside(&mut envelopes, 0, &"too large");
        assert_eq!(envelopes[0].body, Bytes::from(r#"{"class_uid":3002}"#));
    }

    #[test]
    fn kept_dead_letters_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut envelopes = vec![event(r#"{"raw_data":"\u00ff bytes"}"#), event("{}")];
        set_aside(&mut envelopes, 0, &"too large");
        let path = keep(dir.path(), &envelopes[0]).unwrap();
        keep(dir.path(), &envelopes[1]).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["uid"], "u1");
        assert_eq!(lines[0]["reason_code"], REASON_CODE);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(lines[0]["raw_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(raw, "\u{ff} bytes".as_bytes());
        assert_eq!(lines[1]["reason_code"], "");
    }
}
