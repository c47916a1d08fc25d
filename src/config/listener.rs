//! `[listener]` and `[admin]`: where hookgate accepts vendor traffic and where operators probe it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[listener]`: the public port that vendors' webhooks reach.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address and port to bind. Default `0.0.0.0:8080`. Example: `"0.0.0.0:8443"`.
    /// Port 0 picks a free port (the bound address is logged as `listening on`).
    #[serde(default = "default_address")]
    pub address: SocketAddr,
    /// TLS termination with rustls. Absent: plain HTTP (only behind a TLS-terminating load
    /// balancer; vendors require `https://` URLs).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Most TCP connections served at once. Default 4096. Further connections wait in the
    /// kernel's accept queue until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most TCP connections one client address may hold at once. Default: half of
    /// `max_connections` (at least 1), so that one address (idle sockets reopened as each is
    /// closed, say) can never hold every slot and keep the vendors waiting. One more from that
    /// address is closed at once, counted and logged as `connections_per_address`. The TCP
    /// peer is what counts: a `[trust] trusted_proxies` load balancer is exempt; behind one
    /// that is not listed there, every connection has its address, so set this to
    /// `max_connections`. Example: `64`.
    #[serde(default)]
    pub max_connections_per_address: Option<usize>,
    /// Length of the kernel's queue of connections not yet accepted. Default 1024 (Linux caps
    /// it at `net.core.somaxconn`, 4096 by default). A burst of new connections longer than
    /// the queue loses SYNs, and each lost one delays its sender by TCP's 1 s retransmission.
    #[serde(default = "default_backlog")]
    pub backlog: u32,
    /// Time allowed for a client to send the request line and headers, in milliseconds.
    /// Default 10000; at least 1. A slower client is disconnected, and so is a connection this
    /// long with no request in flight (before its first request, or kept alive between
    /// requests; HTTP/2 frames that are not a whole request, PINGs say, do not count), or
    /// whose answers cannot be sent for this long because its client does not read them (or
    /// reads too little for the socket to take more: requests sent back to back, answers left
    /// unread), so idle sockets cannot hold the `max_connections` slots.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Time allowed to receive the whole body once headers are in, in milliseconds.
    /// Default 30000; at least 1. A slower client gets 408.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish, in milliseconds;
    /// connections still open then are closed (their senders retry elsewhere).
    /// Default 25000 (under Kubernetes' default 30 s termination grace period).
    #[serde(default = "default_grace_period_ms")]
    pub grace_period_ms: u64,
    /// On SIGTERM/SIGINT, how long the public port keeps accepting new connections after
    /// `/readyz` has turned 503, in milliseconds, before the drain (`grace_period_ms`)
    /// starts. Default 0 (stop accepting at once). Behind a Kubernetes Service or a load
    /// balancer, set it to how long they take to stop routing to a pod that is not ready
    /// (a few seconds): connections made meanwhile are served, not refused. Restart-only.
    /// Example: `5000`.
    #[serde(default)]
    pub shutdown_delay_ms: u64,
}

/// `[listener.tls]`: certificate and key for HTTPS. Both files are PEM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Example: `"/etc/hookgate/tls/cert.pem"`.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1). Example: `"/etc/hookgate/tls/key.pem"`.
    pub key_file: PathBuf,
}

/// `[admin]`: health, readiness and metrics. Never served on the public port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener. Default `127.0.0.1:9090` (loopback only).
    #[serde(default = "default_admin_address")]
    pub address: SocketAddr,
}

impl ListenerConfig {
    /// `max_connections_per_address`, or its default: half of `max_connections`, at least 1.
    pub fn connections_per_address(&self) -> usize {
        self.max_connections_per_address
            .unwrap_or((self.max_connections / 2).max(1))
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            address: default_address(),
            tls: None,
            max_connections: default_max_connections(),
            max_connections_per_address: None,
            backlog: default_backlog(),
            header_read_timeout_ms: default_header_read_timeout_ms(),
            body_read_timeout_ms: default_body_read_timeout_ms(),
            grace_period_ms: default_grace_period_ms(),
            shutdown_delay_ms: 0,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: default_admin_address(),
        }
    }
}

fn default_address() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_admin_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_max_connections() -> usize {
    4096
}
fn default_backlog() -> u32 {
    1024
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_body_read_timeout_ms() -> u64 {
    30_000
}
fn default_grace_period_ms() -> u64 {
    25_000
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    #[test]
    fn the_accept_queue_defaults_to_1024_and_cannot_be_empty() {
        let load = |listener: &str| {
            let text = format!(
                "[listener]\n{listener}\n[[source]]\nname = \"hw\"\nvendor = \"hyprwatch\"\n\
                 path = \"/ingest/hyprwatch\"\nauth = [{{ kind = \"hmac\", secrets = [\"s\"] }}]\n"
            );
            Config::from_toml(&text, Path::new("t.toml"), &["hyprwatch".to_owned()])
                .map_err(|e| e.to_string())
        };
        assert_eq!(load("").unwrap().listener.backlog, 1024);
        assert_eq!(load("backlog = 64").unwrap().listener.backlog, 64);
        let err = load("backlog = 0").unwrap_err();
        assert!(err.contains("listener.backlog"), "{err}");
    }
}
