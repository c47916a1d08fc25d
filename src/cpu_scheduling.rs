//! The threads' Linux scheduling policy, set once before any thread starts.
//!
//! On a busy machine (the gateway, its Kafka client's threads, a load balancer or broker on
//! the same cores) every wake-up under the default policy may preempt the running thread: a
//! request worker woken for one request, the spool writer woken for one append. Under
//! `SCHED_BATCH` a woken thread waits for the running one's slice to end, so requests and
//! appends gather and are handled in fewer turns. Measured on the 2-core benchmark machine
//! (BENCHMARKS.md, spool mode, 64 connections): context switches per request 0.58 → 0.28,
//! syncs per request 0.115 → 0.065, CPU per request ≈ 10 % lower; p99 at 5,000 requests/s
//! unchanged. `[process] cpu_scheduling = "normal"` leaves the policy the process was started
//! with (the kernel's default, unless the service manager set another).
//!
//! The policy is per thread and inherited by every thread created after it is set, so
//! [`apply`] runs first in `serve`, before telemetry, the async runtime and librdkafka start
//! theirs. Niceness is kept as it is (read back to be sure).

use crate::config::CpuScheduling;

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The threads run under `SCHED_BATCH`.
    Batch,
    /// The config asked to leave the policy as the process was started with.
    NormalOnRequest,
    /// The process runs at a niceness the switch could not keep.
    NormalForNiceness(i32),
    /// The kernel refused the switch (the text says why); the threads run as before.
    Unavailable(String),
}

/// Sets `wanted` for the calling thread (and so for every thread started after it).
pub fn apply(wanted: CpuScheduling) -> Outcome {
    match wanted {
        CpuScheduling::Normal => Outcome::NormalOnRequest,
        CpuScheduling::Batch => switch_to_batch(),
    }
}

#[cfg(target_os = "linux")]
fn switch_to_batch() -> Outcome {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, thread_schedule_policy,
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    // Set already (systemd's `CPUSchedulingPolicy=batch`, whose unit also refuses the call).
    if thread_schedule_policy().ok() == Some(batch) {
        return Outcome::Batch;
    }
    let niceness = || rustix::process::getpriority_process(None);
    let nice = match niceness() {
        Ok(nice) => nice,
        Err(e) => return Outcome::Unavailable(e.to_string()),
    };
    // thread_priority sets a normal policy's niceness along with it, from a 0–99 priority
    // of its own: the one its mapping turns into the niceness the process has keeps it.
    let keeping = (0..=99u8)
        .filter_map(|p| ThreadPriorityValue::try_from(p).ok())
        .map(ThreadPriority::Crossplatform)
        .find(|p| p.to_posix(batch).ok() == Some(nice));
    let Some(priority) = keeping else {
        return Outcome::NormalForNiceness(nice);
    };
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), priority, batch) {
        return Outcome::Unavailable(e.to_string());
    }
    // Read back, so the log says what the kernel holds.
    match (thread_schedule_policy(), niceness()) {
        (Ok(policy), Ok(now)) if policy == batch && now == nice => Outcome::Batch,
        (Ok(policy), Ok(now)) => Outcome::Unavailable(format!(
            "reads back as {policy:?} at niceness {now} (was {nice})"
        )),
        (Err(e), _) => Outcome::Unavailable(e.to_string()),
        (_, Err(e)) => Outcome::Unavailable(e.to_string()),
    }
}

#[cfg(not(target_os = "linux"))]
fn switch_to_batch() -> Outcome {
    Outcome::Unavailable("not Linux".to_owned())
}

impl Outcome {
    /// Writes one log line on the outcome (after telemetry starts).
    pub fn log(&self) {
        match self {
            Outcome::Batch => tracing::debug!("threads scheduled as SCHED_BATCH"),
            Outcome::NormalOnRequest => {
                tracing::info!(
                    "threads' scheduling policy left as started ([process] cpu_scheduling)"
                )
            }
            Outcome::NormalForNiceness(nice) => tracing::info!(
                nice,
                "threads left as SCHED_OTHER: the switch would change the process's niceness"
            ),
            Outcome::Unavailable(why) => {
                tracing::warn!(reason = %why, "threads left as SCHED_OTHER: the kernel refused SCHED_BATCH")
            }
        }
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    /// Runs `f` on a thread of its own, so the policy it sets stays there.
    fn on_own_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(f).join().unwrap()
    }

    #[test]
    fn batch_is_set_keeps_the_niceness_and_is_inherited_by_threads_started_after_it() {
        let nice_before = rustix::process::getpriority_process(None).unwrap();
        let (outcome, child, nice_after) = on_own_thread(|| {
            let outcome = apply(CpuScheduling::Batch);
            let child = std::thread::spawn(thread_priority::thread_schedule_policy)
                .join()
                .unwrap();
            (
                outcome,
                child,
                rustix::process::getpriority_process(None).unwrap(),
            )
        });
        assert_eq!(outcome, Outcome::Batch);
        assert_eq!(nice_after, nice_before);
        assert_eq!(
            child.unwrap(),
            thread_priority::ThreadSchedulePolicy::Normal(
                thread_priority::NormalThreadSchedulePolicy::Batch
            )
        );
    }

    #[test]
    fn normal_leaves_the_thread_as_it_is() {
        let before = thread_priority::thread_schedule_policy().unwrap();
        let (outcome, policy) = on_own_thread(|| {
            (
                apply(CpuScheduling::Normal),
                thread_priority::thread_schedule_policy(),
            )
        });
        assert_eq!(outcome, Outcome::NormalOnRequest);
        assert_eq!(policy.unwrap(), before);
    }
}
