//! `deploy/hookgate.example.toml` stays loadable: `hookgate check` accepts it once its
//! `${...}` secrets are set and its TLS files exist (generated here with the openssl CLI).

use std::process::Command;

#[test]
fn example_config_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl CLI");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/hookgate.example.toml"
    ))
    .unwrap();
    let text = example
        .replace(
            "/etc/hookgate/tls/fullchain.pem",
            &cert.display().to_string(),
        )
        .replace("/etc/hookgate/tls/privkey.pem", &key.display().to_string());
    assert_ne!(
        text, example,
        "the example's TLS paths changed; update this test"
    );
    let config = dir.path().join("hookgate.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(crate::harness::binary())
        .args(["check", "--config"])
        .arg(&config)
        .env("HYPRWATCH_SECRET", "whsec_example")
        .env("HOOP_SVIX_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .env(
            "HOOKGATE_TOKEN_KEY",
            "an-example-token-signing-key-of-32-bytes-or-more",
        )
        .env("HYPR_CLIENT_SECRET", "example-client-secret")
        .env("CONNECTSECURE_HEADER_VALUE", "example-header-value")
        .env("CONNECTSECURE_PASSWORD", "example-password")
        .env("HYPERPROOF_PATH_TOKEN", "0f5c2b8e9a7d4c1e8b3a6f9d2c5e8b1a")
        .env("HOOKGATE_STATUS_TOKEN", "example-status-token")
        .env("KAFKA_PASSWORD", "example-kafka-password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the environment the same file is refused, naming the missing variable.
    let out = Command::new(crate::harness::binary())
        .args(["check", "--config"])
        .arg(&config)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable") && err.contains("is not set"),
        "{err}"
    );
}

/// A spool larger than its volume is allowed (the volume may grow) but `check` says so.
#[test]
fn check_warns_of_a_spool_its_volume_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookgate.toml");
    let spool = dir.path().join("spool");
    // Two 1 PiB segments: more than any disk this runs on.
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"127.0.0.1:9\"\n[spool]\ndir = \"{}\"\nsegment_bytes = 1125899906842624\n\
             max_bytes = 2251799813685248\n{}",
            spool.display(),
            crate::foundation::hyprwatch_source()
        ),
    )
    .unwrap();
    let out = crate::harness::check(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: the file system under the spool") && err.contains("less than two"),
        "{err}"
    );
}
