//! `hookgate demo`: a config on the embedded defaults with freshly generated secrets, and the
//! curl command that sends a correctly signed sample event to it.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A generated demo setup.
#[derive(Debug)]
pub struct Demo {
    /// Config text (TOML).
    pub config_toml: String,
    /// What to paste into another terminal.
    pub instructions: String,
}

/// The Hyprwatch documentation's `host.online` sample.
const SAMPLE: &str = r#"{"id":"evt_demo_0001","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{"host_id":"h_abc123","hostname":"server-01","platform":"linux","os_version":"Ubuntu 22.04","ip_address":"192.168.1.100"}}"#;

impl Demo {
    /// Generates secrets and the config for `port`, writing events to `output`.
    pub fn generate(port: u16, output: &Path) -> Demo {
        let secret = format!("whsec_{}", uuid::Uuid::new_v4().simple());
        let admin_port = port.wrapping_add(1010);
        let config_toml = format!(
            r#"[listener]
address = "127.0.0.1:{port}"
[admin]
address = "127.0.0.1:{admin_port}"
[sink]
path = {output:?}

[[source]]
name = "hyprwatch-demo"
vendor = "hyprwatch"
path = "/ingest/hyprwatch/demo"
auth = [{{ kind = "hmac", header = "X-Hyprwatch-Signature", prefix = "sha256=", secrets = ["{secret}"] }}]
"#,
            output = output.display().to_string(),
        );
        let signature = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
            Ok(mut mac) => {
                mac.update(SAMPLE.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        };
        let instructions = format!(
            "hookgate demo: Hyprwatch source at http://127.0.0.1:{port}/ingest/hyprwatch/demo (demo secret generated for this run)\n\
             health: curl -s http://127.0.0.1:{admin_port}/healthz\n\
             send a signed sample event from another terminal:\n\n\
             curl -sS -X POST http://127.0.0.1:{port}/ingest/hyprwatch/demo \\\n  \
             -H 'Content-Type: application/json' \\\n  \
             -H 'X-Hyprwatch-Signature: sha256={signature}' \\\n  \
             --data-raw '{SAMPLE}'\n"
        );
        Demo {
            config_toml,
            instructions,
        }
    }
}
