//! Secret values in the config file.
//!
//! A secret is written as `"${ENV_VAR}"` (read from the environment at load time; `$$` is a
//! literal `$`, and any other `$` is refused, so the shell's `"$ENV_VAR"` is an error), as
//! `{ file = "/run/secrets/x" }` (read from a file, trailing newline trimmed), or, for local
//! experiments only, as a literal string. The value never appears in `Debug` output or logs.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// A credential, key or token loaded from the config. `Debug` prints `Secret(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that is already resolved (tests, generated demo secrets).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's bytes. Call only where the value is compared or used as a key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSource {
    Inline(String),
    File {
        file: PathBuf,
    },
    /// Any other table: not a secret. Under `[kafka.properties]` it is a librdkafka name
    /// written with its dots unquoted (`security.protocol = ...` makes a table `security`).
    Table(std::collections::BTreeMap<String, de::IgnoredAny>),
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match SecretSource::deserialize(deserializer)? {
            SecretSource::Inline(text) => interpolate(&text).map(Secret).map_err(de::Error::custom),
            // No double quotes in the text: a message about a secret's line has them masked.
            SecretSource::Table(keys) => Err(de::Error::custom(format!(
                "a secret is text or a table holding only file, not a table of {}; under [kafka.properties] put a librdkafka name with dots in quotes, or it is read as nested tables",
                keys.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
            ))),
            SecretSource::File { file } => match std::fs::read_to_string(&file) {
                Ok(text) => Ok(Secret(text.trim_end_matches(['\r', '\n']).to_owned())),
                Err(e) => Err(de::Error::custom(format!(
                    "cannot read secret file {}: {e}",
                    file.display()
                ))),
            },
        }
    }
}

/// Every `${NAME}` in the config `text` (outside comment lines) whose variable is not set, in
/// order, each once.
pub fn unset_variables(text: &str) -> Vec<String> {
    let mut unset: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        // `$$` is a literal `$`, so `$${X}` names no variable.
        let line = line.replace("$$", "");
        let mut rest = line.as_str();
        while let Some(start) = rest.find("${") {
            let after = rest.get(start + 2..).unwrap_or_default();
            let Some(end) = after.find('}') else { break };
            let name = after.get(..end).unwrap_or_default();
            // Only a name is named: text that is none may be a literal secret's (an
            // unterminated `${` before a table's closing brace).
            let is_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if is_name && std::env::var_os(name).is_none() && !unset.iter().any(|n| n == name) {
                unset.push(name.to_owned());
            }
            rest = after.get(end + 1..).unwrap_or_default();
        }
    }
    unset
}

/// Replaces every `${NAME}` in `text` with the environment variable `NAME`, and `$$` with one
/// `$`. A missing variable is an error that names it (never its value), and so is any other
/// `$`: `"$NAME"`, the shell's form, would otherwise be taken as the literal secret `$NAME`
/// (the real one refused, the name itself accepted).
pub fn interpolate(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 1..).unwrap_or_default();
        if let Some(more) = after.strip_prefix('$') {
            out.push('$');
            rest = more;
            continue;
        }
        let Some(after) = after.strip_prefix('{') else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // The text after `$` may be part of a literal secret: named only when it is an
            // environment variable that is set, so surely a reference.
            return Err(if !name.is_empty() && std::env::var_os(&name).is_some() {
                format!(
                    "`${name}` would be taken literally: write `${{{name}}}` to read the \
                     environment variable (or `$$` for a literal `$`)"
                )
            } else {
                "a `$` in a secret starts `${NAME}` (an environment variable); write `$$` for a \
                 literal `$`"
                    .to_owned()
            });
        };
        let Some(end) = after.find('}') else {
            return Err("unterminated `${` in value".to_owned());
        };
        let name = after.get(..end).unwrap_or_default();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            // Not echoed: what is no name may be part of a literal secret.
            return Err(
                "a `${...}` holds no environment variable name (letters, digits, `_`)".to_owned(),
            );
        }
        match std::env::var(name) {
            Ok(value) => out.push_str(&value),
            Err(_) => return Err(format!("environment variable {name} is not set")),
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn interpolates_known_variable() {
        // PATH is set in every test environment.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(interpolate("a${PATH}b").unwrap(), format!("a{path}b"));
    }

    #[test]
    fn missing_variable_names_it() {
        let err = interpolate("${HOOKGATE_SURELY_UNSET_VAR_123}").unwrap_err();
        assert!(err.contains("HOOKGATE_SURELY_UNSET_VAR_123"), "{err}");
    }

    #[test]
    fn a_shell_style_reference_is_refused_and_a_doubled_dollar_is_one() {
        // PATH is set: surely a reference, named. An unset name may be part of a literal
        // secret: not echoed.
        let err = interpolate("$PATH").unwrap_err();
        assert!(err.contains("${PATH}"), "{err}");
        let err = interpolate("Tr0ub4dor$x9Kq2pLm").unwrap_err();
        assert!(!err.contains("x9Kq2pLm"), "{err}");
        assert!(err.contains("${NAME}") && err.contains("$$"), "{err}");
        assert!(interpolate("pa$").is_err());
        // An unterminated `${` in a literal secret: nothing of it is named as a variable.
        let text = "auth = [{ kind = \"basic\", credentials = [{ username = \"u\", password = \"Ab9${xK2mQ7vLs0PpZr\" }] }]\n";
        assert!(
            unset_variables(text).is_empty(),
            "{:?}",
            unset_variables(text)
        );
        assert!(!interpolate("Ab9${xK2mQ7vLs0PpZr")
            .unwrap_err()
            .contains("xK2m"));
        assert!(!interpolate("ab${cd!ef}gh").unwrap_err().contains("cd!ef"));
        assert!(interpolate("a$(cat x)").is_err());
        assert_eq!(interpolate("pa$$word$$").unwrap(), "pa$word$");
        let path = std::env::var("PATH").unwrap();
        assert_eq!(interpolate("$$${PATH}").unwrap(), format!("${path}"));
    }

    #[test]
    fn rejects_unterminated_reference() {
        assert!(interpolate("${ABC").is_err());
    }

    #[test]
    fn reads_secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "from-file\n").unwrap();
        let toml_text = format!("s = {{ file = {:?} }}", path.display().to_string());
        #[derive(Deserialize)]
        struct T {
            s: Secret,
        }
        let t: T = toml::from_str(&toml_text).unwrap();
        assert_eq!(t.s.expose(), "from-file");
    }
}
