//! `[process]`: how the gateway's threads share the machine's CPUs.

use serde::Deserialize;

/// The Linux scheduling policy for every thread of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuScheduling {
    /// `SCHED_BATCH`: a thread the gateway wakes (a request worker when a request arrives,
    /// the spool writer when an event is appended) waits for the running thread's time slice
    /// to end instead of preempting it, so work gathers and is done in fewer, larger turns.
    /// Measured (BENCHMARKS.md): half the context switches and ≈ 10 % less CPU per request
    /// under load, with p99 at 5,000 requests/s unchanged; a sender with few connections
    /// taking turns gets ≈ 5 % fewer requests/s through. Priority (niceness) is unchanged.
    #[default]
    Batch,
    /// The policy the process was started with, left as it is: the kernel's default
    /// (`SCHED_OTHER`: every wake-up may preempt the running thread) unless the service
    /// manager set another.
    Normal,
}

/// `[process]`: process-wide settings, applied once at startup (a SIGHUP reload does not
/// change them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// `"batch"` (default) or `"normal"`; see [`CpuScheduling`]. The process's niceness
    /// (`nice`, `Nice=` in systemd) is kept either way.
    #[serde(default)]
    pub cpu_scheduling: CpuScheduling,
}
