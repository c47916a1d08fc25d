//! Transparent huge pages off for the gateway's process, before it allocates in earnest.
//!
//! mimalloc asks the kernel for huge pages on its arena (`madvise(MADV_HUGEPAGE)`), and on a
//! kernel set to `madvise` (Debian's default) each first touch of a 2 MiB region then makes
//! a whole 2 MiB page resident. For a gateway whose heap is many small, short-lived events
//! that is memory held, not speed gained: measured over three alternating load runs (spool
//! mode, c=64, c=256, then 5,000 requests/s; BENCHMARKS.md), peak RSS was 153–162 MB with
//! huge pages and 116–123 MB without, with no difference in CPU per request beyond the
//! machine's drift. Operators size pods by that figure.
//!
//! The switch is the kernel's per-process flag (`prctl(PR_SET_THP_DISABLE)`), inherited by
//! every thread started later; `MIMALLOC_ALLOW_THP=1` in the environment (mimalloc's own
//! option) leaves huge pages on.

/// What [`keep_off`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HugePages {
    /// The process's huge pages are off.
    Off,
    /// `MIMALLOC_ALLOW_THP=1` asked to keep them.
    KeptOnRequest,
    /// The kernel refused the switch (the text says why); the process runs as before.
    Unavailable(String),
}

/// The environment variable that keeps huge pages on when set to `1`.
pub const KEEP_VAR: &str = "MIMALLOC_ALLOW_THP";

/// True unless the operator's `MIMALLOC_ALLOW_THP` value asks for huge pages.
pub fn wanted_off(env_value: Option<&str>) -> bool {
    env_value.is_none_or(|v| v.trim() != "1")
}

/// Turns huge pages off for this process unless [`KEEP_VAR`] says otherwise. Call it first
/// thing in `main`: pages touched before it may already be huge.
pub fn keep_off() -> HugePages {
    if !wanted_off(std::env::var(KEEP_VAR).ok().as_deref()) {
        return HugePages::KeptOnRequest;
    }
    switch_off()
}

#[cfg(target_os = "linux")]
fn switch_off() -> HugePages {
    match rustix::thread::disable_transparent_huge_pages(true) {
        Ok(()) => HugePages::Off,
        Err(e) => HugePages::Unavailable(e.to_string()),
    }
}

#[cfg(not(target_os = "linux"))]
fn switch_off() -> HugePages {
    HugePages::Unavailable("not Linux".to_owned())
}

impl HugePages {
    /// Writes one log line on the outcome (after telemetry starts).
    pub fn log(&self) {
        match self {
            HugePages::Off => tracing::debug!("transparent huge pages off for this process"),
            HugePages::KeptOnRequest => {
                tracing::info!("transparent huge pages kept on ({KEEP_VAR}=1)")
            }
            HugePages::Unavailable(why) => {
                tracing::debug!(reason = %why, "transparent huge pages left as the kernel has them")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_explicit_one_keeps_huge_pages() {
        assert!(wanted_off(None));
        assert!(wanted_off(Some("0")));
        assert!(wanted_off(Some("")));
        assert!(wanted_off(Some("yes")));
        assert!(!wanted_off(Some("1")));
        assert!(!wanted_off(Some(" 1\n")));
    }
}
