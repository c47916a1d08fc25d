//! TLS termination: load the PEM certificate chain and key into a rustls server config.
//!
//! Input: `[listener.tls]` file paths. Output: an `Arc<ServerConfig>` (TLS 1.2/1.3, ALPN h2 and
//! http/1.1). Fails with [`TlsError`] naming the file. The listener holds the config in an
//! `ArcSwap` and takes it per accepted connection, so `reload` can swap in a renewed
//! certificate on SIGHUP without a restart; established connections keep their session.
//! Never logs key material.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;

use crate::config::TlsConfig;

/// Why the certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Operator's fault: a file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Operator's fault: no certificate or no key in the file.
    #[error("{path} holds no {what}")]
    Empty {
        /// The file.
        path: String,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// Operator's fault: the certificate and key do not form a valid config.
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

fn reader(path: &Path) -> Result<BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
}

/// Builds a rustls server config (HTTP/2 and HTTP/1.1 via ALPN) from `config`.
pub fn server_config(config: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = rustls_pemfile::certs(&mut reader(&config.cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: config.cert_file.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: config.cert_file.display().to_string(),
            what: "certificate",
        });
    }
    let key = rustls_pemfile::private_key(&mut reader(&config.key_file)?)
        .map_err(|source| TlsError::Read {
            path: config.key_file.display().to_string(),
            source,
        })?
        .ok_or_else(|| TlsError::Empty {
            path: config.key_file.display().to_string(),
            what: "private key",
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}
