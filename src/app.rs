//! Wiring: build the shared state once, start the listeners, own the shutdown order.
//!
//! Shutdown order: stop accepting → finish in-flight requests within the grace period →
//! stop the spool forwarder (the batch it handed to librdkafka is awaited up to 5 s and
//! acknowledged; one still undecided is forwarded again after restart) → flush the producer, write the dedup journal's queued lines and close the
//! spool (its writer finishes its queue and syncs) → return. Each step is logged.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use http::Method;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Trust, Verifier};
use crate::config::{Config, LimitsConfig};
use crate::dedup::DedupStore;
use crate::health::Health;
use crate::limits::Protection;
use crate::listener::{self, ListenSettings};
use crate::metrics::Metrics;
use crate::parse::session_cache::shared::SharedSessions;
use crate::parse::Catalog;
use crate::route::{Routes, Source};
use crate::sink::{self, Sink};
use crate::{admin, reload, tls};

/// Everything a request needs, built once.
#[derive(Debug)]
pub struct State {
    /// Routes and limits; swapped whole on reload.
    pub runtime: ArcSwap<Runtime>,
    /// Where events go.
    pub sink: Sink,
    /// Dedup store.
    pub dedup: DedupStore,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Per-source health and recent events for `/status`; reconfigure on reload.
    pub health: Health,
    /// Body read timeout.
    pub body_read_timeout: Duration,
    /// Cancelled when shutdown starts (readiness turns false).
    pub draining: CancellationToken,
    /// Where the parsers' session caches are kept beside this process (Redis dedup only).
    pub sessions: Option<Arc<SharedSessions>>,
}

/// The parts of the config that a reload replaces.
#[derive(Debug)]
pub struct Runtime {
    /// Every source, by path.
    pub routes: Routes,
    /// Global limits.
    pub limits: LimitsConfig,
    /// Trusted proxies and the OAuth2 token issuer (`[trust]`).
    pub trust: Trust,
    /// Rate limiters and the in-flight cap (fresh buckets on reload).
    pub protection: Protection,
}

/// Reads the config file and the parsers it names (built-ins plus `[parsers] dir`), then
/// validates the config against them. Used at startup, by `check` and by SIGHUP reloads, so
/// all three judge a file the same way. `Err` lists every problem.
pub fn load_config(path: &std::path::Path) -> Result<(Config, Catalog), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    // The parser directory must be known before vendor names can be validated against it.
    let dir = toml::from_str::<toml::Value>(&text).ok().and_then(|v| {
        v.get("parsers")?
            .get("dir")?
            .as_str()
            .map(std::path::PathBuf::from)
    });
    let catalog = Catalog::load(dir.as_deref()).map_err(|e| match &dir {
        // Named by key, as every other config problem is.
        Some(_) => format!("config file {}: parsers.dir: {e}", path.display()),
        None => e.to_string(),
    })?;
    let config = Config::from_toml(&text, path, &catalog.names()).map_err(|e| e.to_string())?;
    Ok((config, catalog))
}

/// Builds routes (with compiled verifiers and parsers) from `config`.
pub fn build_runtime(config: &Config, catalog: &Catalog) -> anyhow::Result<Runtime> {
    let trust = Trust::build(config).context("trust")?;
    for entry in &config.trust.trusted_proxies {
        if crate::config::auth::lets_everyone_in(entry) {
            tracing::warn!(entry = %entry, "[trust] trusted_proxies trusts every address: any client can name itself in X-Forwarded-For and pass the ip_allow lists and per-address limits");
        }
    }
    let mut sources = Vec::with_capacity(config.sources.len());
    for s in &config.sources {
        let parser = catalog
            .get(&s.vendor)
            .with_context(|| format!("source[{}].vendor: unknown parser {:?}", s.name, s.vendor))?;
        let verifier = Verifier::build(&s.name, &s.auth, &trust)
            .with_context(|| format!("source[{}].auth", s.name))?;
        // A parser that read the header carrying the source's credentials would copy them
        // into every event (Kafka, the status page): refused, whatever the header is called.
        if let Some(h) = verifier.secret_headers().find(|h| parser.reads_header(h)) {
            anyhow::bail!(
                "source[{}]: its parser {:?} reads header {:?}, which carries the source's credentials; a parser may not read it",
                s.name,
                s.vendor,
                h.as_str()
            );
        }
        if verifier.max_event_age().is_some() && !parser.knows_sent_at() {
            anyhow::bail!(
                "source[{}].auth: max_age_s reads the event's signed send time, and its parser {:?} names none ([id] sent_at)",
                s.name,
                s.vendor
            );
        }
        if verifier.is_open() {
            tracing::warn!(source = %s.name, "source accepts UNAUTHENTICATED requests (auth kind = \"none\"); anyone who can reach it can inject events");
        }
        for scheme in &s.auth {
            for weakness in scheme.weaknesses() {
                tracing::warn!(source = %s.name, auth = scheme.kind(), "weak authentication: {weakness}");
            }
        }
        let methods: Vec<Method> = s
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        let allow = s.methods.join(", ");
        sources.push(Arc::new(Source {
            name: s.name.clone(),
            label: Arc::from(s.name.as_str()),
            vendor_label: Arc::from(s.vendor.as_str()),
            vendor: s.vendor.clone(),
            path: s.path.clone(),
            methods,
            allow,
            tenant: s.tenant.clone().unwrap_or_else(|| s.name.clone()),
            max_body_bytes: s.max_body_bytes.unwrap_or(config.limits.max_body_bytes),
            verifier,
            parser,
        }));
    }
    let protection = Protection::build(
        &config.limits,
        config.sources.iter().map(|s| s.name.as_str()),
    );
    Ok(Runtime {
        routes: Routes::new(sources),
        limits: config.limits.clone(),
        trust,
        protection,
    })
}

/// Keeps the session cache of every parser `runtime` uses in `shared` too.
pub fn share_sessions(runtime: &Runtime, shared: &Arc<SharedSessions>) {
    for source in runtime.routes.sources() {
        source.parser.share_sessions(shared);
    }
}

/// Where the memory dedup store journals delivered ids unless `[dedup] journal_path` says:
/// in the spool's directory in spool mode; beside the JSON-lines file when events go to one
/// (the embedded default with a `[sink] path`), so a vendor's retry after a restart is still
/// known there too. `None` when events go to standard output or straight to Kafka.
fn default_journal(config: &Config, sink: &Sink) -> Option<std::path::PathBuf> {
    match sink {
        Sink::Spooled { spool, .. } => Some(spool.dir().join("dedup.journal")),
        Sink::Direct(_) => {
            let events = config.events_file()?;
            let mut name = events.file_name()?.to_os_string();
            name.push(".dedup-journal");
            Some(events.with_file_name(name))
        }
    }
}

/// Runs hookgate on already-bound listeners until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    catalog: Catalog,
    public: TcpListener,
    admin_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = build_runtime(&config, &catalog)?;
    let (sink, tasks) = Sink::build(&config).await?;
    let journal = default_journal(&config, &sink);
    let dedup = DedupStore::build(&config.dedup, journal.as_deref()).await?;
    // A crash may have left events durable whose ids the journal (written behind) lost.
    sink::remember::last_ids(&config, &sink, &runtime.routes, &dedup).await;
    // With Redis dedup, the parsers' session caches are kept there too (other replicas,
    // restarts); one writer task for all of them.
    let sessions = dedup
        .redis()
        .map(|(conn, prefix)| SharedSessions::start(conn, prefix));
    if let Some(shared) = &sessions {
        share_sessions(&runtime, shared);
    }
    let metrics = Metrics::new()?;
    metrics.configure(&config);
    let health = Health::new(&config);
    let tls = match &config.listener.tls {
        Some(t) => Some(Arc::new(ArcSwap::new(tls::server_config(t)?))),
        None => None,
    };
    let state = Arc::new(State {
        runtime: ArcSwap::from_pointee(runtime),
        sink,
        dedup,
        metrics,
        health,
        body_read_timeout: Duration::from_millis(config.listener.body_read_timeout_ms),
        draining: shutdown.clone(),
        sessions,
    });

    // SIGHUP → re-read, validate and swap the config and TLS certificate (issue #3). The
    // handler is installed before "listening on" is logged, so a SIGHUP sent as soon as the
    // gateway is up cannot end the process (the default action).
    let hangups = reload::hangups()?;
    let public_addr = public.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    for source in state.runtime.load().routes.sources() {
        tracing::info!(source = %source.name, vendor = %source.vendor, "route configured");
    }
    tracing::info!(address = %public_addr, scheme, "listening on {public_addr}");
    tracing::info!(address = %admin_addr, "admin listening on {admin_addr}");

    let reload_task = tokio::spawn(reload::watch(
        hangups,
        Arc::clone(&state),
        tls.clone(),
        reload::Started::from(&config),
        shutdown.clone(),
    ));
    // Background delivery work: the spool writer (blocking thread), the forwarder, the probe.
    let background_stop = CancellationToken::new();
    let writer_task = tasks
        .writer
        .map(|w| tokio::task::spawn_blocking(move || w.run()));
    let forwarder_task = tasks
        .forwarder
        .map(|f| tokio::spawn(f.run(background_stop.clone(), MetricsOf(Arc::clone(&state)))));
    let probe_task = tasks
        .kafka
        .map(|k| tokio::spawn(sink::watch_reachability(k, background_stop.clone())));

    let shed_log_task = tokio::spawn(crate::limits::shed_log::flush_every_second(
        background_stop.clone(),
    ));
    // The admin port outlives the drain: /readyz answers 503 while requests finish (so the
    // Service stops routing here) and Prometheus still scrapes; it closes at the very end.
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        Arc::clone(&state),
        admin_stop.clone(),
    ));
    let settings = ListenSettings {
        max_connections: config.listener.max_connections,
        max_connections_per_address: config.listener.connections_per_address(),
        header_read_timeout: Duration::from_millis(config.listener.header_read_timeout_ms),
        grace_period: Duration::from_millis(config.listener.grace_period_ms),
    };
    // Readiness turns 503 at the signal; the port keeps accepting for the shutdown delay,
    // while load balancers stop routing here, and only then stops and drains.
    let stop_accepting = CancellationToken::new();
    tokio::spawn({
        let (signal, stop) = (shutdown.clone(), stop_accepting.clone());
        let delay = Duration::from_millis(config.listener.shutdown_delay_ms);
        async move {
            signal.cancelled().await;
            if !delay.is_zero() {
                tracing::info!(
                    shutdown_delay_ms = delay.as_millis() as u64,
                    "not ready; still accepting until load balancers stop routing here"
                );
                tokio::time::sleep(delay).await;
            }
            stop.cancel();
        }
    });
    listener::serve(public, tls, Arc::clone(&state), settings, stop_accepting).await?;

    tracing::info!("stopping spool forwarder");
    background_stop.cancel();
    for (name, task) in [
        ("forwarder", forwarder_task),
        ("kafka probe", probe_task),
        ("shed log", Some(shed_log_task)),
    ] {
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(task = name, error = %e, "background task failed");
            }
        }
    }
    tracing::info!("flushing sink");
    match state.sink.flush().await {
        Ok(()) => tracing::info!("sink flushed"),
        Err(e) => tracing::error!(error = %crate::telemetry::causes(&e), "sink flush failed"),
    }
    state.dedup.flush();
    if let Some(task) = writer_task {
        match task.await {
            Ok(()) => tracing::info!("spool closed"),
            Err(e) => tracing::error!(task = "spool writer", error = %e, "background task failed"),
        }
    }
    admin_stop.cancel();
    admin_task.abort();
    reload_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Lends the forwarder the state's metrics registry without a second registry.
struct MetricsOf(Arc<State>);

impl AsRef<Metrics> for MetricsOf {
    fn as_ref(&self) -> &Metrics {
        &self.0.metrics
    }
}
