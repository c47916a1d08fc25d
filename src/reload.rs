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

/// Reloads on every SIGHUP until `shutdown` is cancelled.
pub async fn watch(
    mut hangups: Signal,
    state: Arc<State>,
    tls: Option<Arc<ArcSwap<ServerConfig>>>,
    path: PathBuf,
    shutdown: CancellationToken,
) {
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
            Ok(Ok(next)) => apply(&state, tls.as_deref(), next),
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
    if next.config.listener.tls.is_some() != tls_slot.is_some() {
        tracing::warn!("listener.tls was added or removed; that takes a restart (kept as it was)");
    }
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
    fn refuses_a_missing_file() {
        let err = load(Path::new("/nonexistent/hookgate.toml"), false)
            .err()
            .unwrap();
        assert!(err.contains("cannot read config file"), "{err}");
    }
}
