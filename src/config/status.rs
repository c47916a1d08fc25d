//! `[status]`: the source-health page and its JSON on the admin listener (`/status`).

use serde::Deserialize;

use crate::config::secret::Secret;

/// `[status]`: who may read `/status` and `/status/page`, and how much they show.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// Token that opens the status endpoints: sent as `Authorization: Bearer <token>`, or as
    /// the password of HTTP Basic auth (any user name) so a browser can log in. Example:
    /// `"${HOOKGATE_STATUS_TOKEN}"`. Absent (default): the status endpoints answer only
    /// clients connecting from a loopback address (e.g. through `kubectl port-forward` or an
    /// SSH tunnel) and refuse everyone else with 403. The page shows recent (redacted) events,
    /// so set a token before exposing the admin port.
    #[serde(default)]
    pub token: Option<Secret>,
    /// How many of the latest normalized events per source the status shows. Default 20;
    /// 0 turns the lookback off. `raw_data` and fields named like secrets are redacted; an
    /// event over 64 KiB is shown as a note of its size, not kept.
    #[serde(default = "default_recent_events")]
    pub recent_events: usize,
    /// How far back an authentication failure marks a source `failing_auth`, in seconds,
    /// unless a request was accepted after it. Default 900 (15 minutes).
    #[serde(default = "default_auth_failure_window_secs")]
    pub auth_failure_window_secs: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            token: None,
            recent_events: default_recent_events(),
            auth_failure_window_secs: default_auth_failure_window_secs(),
        }
    }
}

impl StatusConfig {
    /// Problems with these settings, as (key, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            out.push((
                "status.token".to_owned(),
                "must be at least 16 characters (it guards recent events)".to_owned(),
            ));
        }
        // Each retained event may be as large as a request body; keep the lookback small.
        if self.recent_events > 200 {
            out.push((
                "status.recent_events".to_owned(),
                "must be at most 200".to_owned(),
            ));
        }
        if self.auth_failure_window_secs == 0 {
            out.push((
                "status.auth_failure_window_secs".to_owned(),
                "must be at least 1".to_owned(),
            ));
        }
        out
    }
}

fn default_recent_events() -> usize {
    20
}
fn default_auth_failure_window_secs() -> u64 {
    900
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_no_token_and_a_small_lookback() {
        let s: StatusConfig = toml::from_str("").unwrap();
        assert!(s.token.is_none());
        assert_eq!(s.recent_events, 20);
        assert!(s.problems().is_empty());
    }

    #[test]
    fn refuses_a_short_token_and_an_oversized_lookback() {
        let s: StatusConfig = toml::from_str("token = \"short\"\nrecent_events = 1000").unwrap();
        let keys: Vec<String> = s.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["status.token", "status.recent_events"]);
        assert!(!format!("{s:?}").contains("short"));
    }

    #[test]
    fn a_zero_health_expectation_is_reported_with_its_source() {
        let err = crate::config::Config::from_toml(
            "[[source]]\nname = \"hp\"\nvendor = \"hyperproof\"\npath = \"/hp\"\n\
             auth = [{ kind = \"none\" }]\nexpect_event_secs = 0\n",
            std::path::Path::new("t.toml"),
            &["hyperproof".to_owned()],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("source[hp].expect_event_secs"),
            "{err}"
        );
    }
}
