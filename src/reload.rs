//! SIGHUP reload: re-read the config file, validate it fully, and swap it in.
//!
//! Input: SIGHUP. Output: a new [`Runtime`] (routes, verifiers, secrets, allowlists, trusted
//! proxies, token issuer) stored in `State.runtime`, and a new TLS certificate in the
//! listener's `ArcSwap`. Both are atomic pointer swaps: a request in flight keeps the runtime
//! it loaded, open connections keep their TLS session, new ones see the new config. A config
//! that fails to read, parse, validate or compile (parsers and TLS files included) changes
//! nothing: the running config stays and the reason is logged. Settings that need a restart
//! (listener and admin addresses, sink, TLS on/off) are reported, not applied. Never logs
//! secret values (config errors name keys, not values).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::app::{build_runtime, Runtime, State};
use crate::config::Config;
use crate::tls;

/// Installs the SIGHUP handler (replacing the default action, which would end the process).
pub fn hangups() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// What the process started with that a reload cannot change: the file to re-read, and each
/// restart-only section as written (its `Debug` text; secrets print masked).
#[derive(Debug)]
pub struct Started {
    path: PathBuf,
    restart_only: Vec<(&'static str, String)>,
}

impl Started {
    /// Takes note of `config`, the one the process runs with.
    pub fn from(config: &Config) -> Started {
        Started {
            path: config.path.clone(),
            restart_only: restart_only(config),
        }
    }
}

/// The sections a reload does not apply (the listener but for its certificate, which it
/// does), each with its `Debug` text.
fn restart_only(config: &Config) -> Vec<(&'static str, String)> {
    let l = &config.listener;
    vec![
        (
            "listener",
            format!(
                "{:?}",
                (
                    l.address,
                    l.tls.is_some(),
                    l.max_connections,
                    l.connections_per_address(),
                    l.backlog,
                    l.header_read_timeout_ms,
                    l.body_read_timeout_ms,
                    l.grace_period_ms,
                    l.shutdown_delay_ms,
                )
            ),
        ),
        ("admin", format!("{:?}", config.admin)),
        ("sink", format!("{:?}", config.sink)),
        ("delivery", format!("{:?}", config.delivery_mode())),
        (
            "kafka",
            format!(
                "{:?} {:?}",
                config.kafka,
                config
                    .kafka
                    .iter()
                    .flat_map(|k| k.properties.values())
                    .map(digest)
                    .collect::<Vec<_>>()
            ),
        ),
        ("spool", format!("{:?}", config.spool)),
        (
            "dedup",
            format!(
                "{:?} {:?}",
                config.dedup,
                config.dedup.redis_url.as_ref().map(digest)
            ),
        ),
        ("telemetry", format!("{:?}", config.telemetry)),
        ("process", format!("{:?}", config.process)),
    ]
}

/// A secret's SHA-256, so a changed one is told apart (its `Debug` text is masked); only ever
/// compared, never logged.
fn digest(secret: &crate::config::secret::Secret) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.expose().as_bytes()).into()
}

/// The restart-only sections `next` changes from what the process started with.
fn needing_restart(started: &Started, next: &Config) -> Vec<&'static str> {
    restart_only(next)
        .into_iter()
        .zip(&started.restart_only)
        .filter(|((_, now), (_, then))| now != then)
        .map(|((key, _), _)| key)
        .collect()
}

/// Reloads on every SIGHUP until `shutdown` is cancelled.
pub async fn watch(
    mut hangups: Signal,
    state: Arc<State>,
    tls: Option<Arc<ArcSwap<ServerConfig>>>,
    started: Started,
    shutdown: CancellationToken,
) {
    let path = started.path.clone();
    loop {
        tokio::select! {
            received = hangups.recv() => if received.is_none() { return },
            () = shutdown.cancelled() => return,
        }
        tracing::info!(path = %path.display(), "SIGHUP received; reloading config");
        // Parsing and building read files; keep that off the request-serving threads.
        let loaded = {
            let path = path.clone();
            let with_tls = tls.is_some();
            tokio::task::spawn_blocking(move || load(&path, with_tls)).await
        };
        match loaded {
            Ok(Ok(next)) => {
                let unapplied = needing_restart(&started, &next.config);
                if !unapplied.is_empty() {
                    tracing::warn!(
                        sections = %unapplied.join(", "),
                        "these settings changed but take a restart; they stay as the process started"
                    );
                }
                apply(&state, tls.as_deref(), next);
            }
            Ok(Err(reason)) => {
                tracing::error!(error = %reason, "config reload failed; the running config stays in place");
            }
            Err(e) => {
                tracing::error!(error = %e, "config reload task failed; the running config stays in place");
            }
        }
    }
}

/// A fully validated replacement.
struct Next {
    runtime: Runtime,
    tls: Option<Arc<ServerConfig>>,
    config: Config,
}

/// Reads, validates and compiles everything a reload swaps; `Err` names the first problem
/// (or lists all config problems).
fn load(path: &Path, with_tls: bool) -> Result<Next, String> {
    let (config, catalog) = crate::app::load_config(path)?;
    let runtime = build_runtime(&config, &catalog).map_err(|e| format!("{e:#}"))?;
    let tls = match (&config.listener.tls, with_tls) {
        (Some(t), true) => Some(tls::server_config(t).map_err(|e| format!("listener.tls: {e}"))?),
        _ => None,
    };
    Ok(Next {
        runtime,
        tls,
        config,
    })
}

fn apply(state: &State, tls_slot: Option<&ArcSwap<ServerConfig>>, next: Next) {
    if let (Some(slot), Some(server)) = (tls_slot, next.tls) {
        slot.store(server);
        tracing::info!("TLS certificate reloaded");
    }
    let sources = next.runtime.routes.sources().count();
    let mut runtime = next.runtime;
    let running = state.runtime.load();
    runtime.protection.carry_over(&running.protection);
    // The parsers were compiled anew: their session caches take over the running ones'
    // entries (or every open Hoop session would lose its user), and are shared as before.
    for source in runtime.routes.sources() {
        if let Some(old) = running.routes.sources().find(|o| o.vendor == source.vendor) {
            source.parser.adopt_sessions(&old.parser);
        }
    }
    if let Some(shared) = &state.sessions {
        crate::app::share_sessions(&runtime, shared);
    }
    drop(running);
    state.runtime.store(Arc::new(runtime));
    // Per-source expectations and health tracking follow the new source list.
    state.metrics.configure(&next.config);
    state.health.configure(&next.config);
    tracing::info!(sources, "config reloaded");
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[[source]]\nname = \"hw\"\nvendor = \"hyprwatch\"\npath = \"/in\"\nauth = [{ kind = \"hmac\", secrets = [\"whsec_a\"] }]\n";

    #[test]
    fn loads_a_valid_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, GOOD).unwrap();
        let next = load(&path, false).unwrap();
        assert_eq!(next.runtime.routes.sources().count(), 1);
        assert!(next.tls.is_none());
    }

    #[test]
    fn refuses_an_invalid_config_naming_the_key_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, GOOD.replace("\"whsec_a\"", "\"whsec_a\", \"\"")).unwrap();
        let err = load(&path, false).err().unwrap();
        assert!(err.contains("source[hw].auth[0].secrets"), "{err}");
        assert!(!err.contains("whsec_a"), "{err}");
    }

    #[test]
    fn names_the_sections_a_reload_cannot_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, GOOD).unwrap();
        let started = Started::from(&load(&path, false).unwrap().config);
        // Secrets, sources and limits are what a reload is for: nothing to report.
        let reloadable =
            GOOD.replace("whsec_a", "whsec_b") + "[limits]\nmax_in_flight_requests = 9\n";
        std::fs::write(&path, reloadable).unwrap();
        assert!(needing_restart(&started, &load(&path, false).unwrap().config).is_empty());
        // A secret in a restart-only section changed: named too, though it prints masked.
        let with_password = |p: &str| {
            format!(
                "[dedup]\nbackend = \"redis\"\nredis_url = \"redis://:{p}@127.0.0.1:6379\"\n{GOOD}"
            )
        };
        std::fs::write(&path, with_password("one")).unwrap();
        let first = Started::from(&load(&path, false).unwrap().config);
        std::fs::write(&path, with_password("two")).unwrap();
        let next = load(&path, false).unwrap().config;
        assert_eq!(needing_restart(&first, &next), ["dedup"]);
        let moved = format!(
            "[listener]\naddress = \"127.0.0.1:1\"\n[kafka]\nbrokers = \"k:9092\"\ntopic = \"changed\"\n{GOOD}"
        );
        std::fs::write(&path, moved).unwrap();
        let next = load(&path, false).unwrap().config;
        assert_eq!(
            needing_restart(&started, &next),
            ["listener", "delivery", "kafka"]
        );
    }

    #[test]
    fn refuses_a_missing_file() {
        let err = load(Path::new("/nonexistent/hookgate.toml"), false)
            .err()
            .unwrap();
        assert!(err.contains("cannot read config file"), "{err}");
    }
}
