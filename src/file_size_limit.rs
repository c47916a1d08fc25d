//! A file-size limit (`RLIMIT_FSIZE`: `ulimit -f`, systemd's `LimitFSIZE=`) reached by a
//! write: the kernel sends `SIGXFSZ`, whose default action ends the process at once, without
//! a log line, with requests in flight and a torn line in the output. Caught here instead, so
//! the write fails with `EFBIG` and is handled as a full disk is: the request is answered 503
//! with `Retry-After`, the output is cut back to whole lines, `/readyz` says not ready.

/// Catches `SIGXFSZ` for the life of the runtime and logs each one. Call inside the runtime
/// (`main` does, right after building it), before the first log line and any output opened.
#[cfg(unix)]
pub fn survive() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut limit) = signal(SignalKind::from_raw(rustix::process::Signal::XFSZ.as_raw())) else {
        tracing::warn!("cannot catch SIGXFSZ: a write past the file-size limit ends the process");
        return;
    };
    tokio::spawn(async move {
        while limit.recv().await.is_some() {
            tracing::warn!(
                "a write reached the process's file-size limit (RLIMIT_FSIZE); it fails and is answered 503"
            );
        }
    });
}

/// Nothing to catch off Unix.
#[cfg(not(unix))]
pub fn survive() {}
