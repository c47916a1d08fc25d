//! Finishing the Redis dedup calls that failed, on one task per store.
//!
//! A reserve, release or commit that failed or timed out may still have reached Redis (a
//! stalled Redis runs the queued `SET NX` when it wakes): left alone, its reservation would
//! hold every retry of the event off with 409 until its TTL, with no request delivering, and a
//! commit that failed after delivery would let a retry publish the event again once the
//! reservation lapsed. So the call's keys are handed to the [`Settler`]: releases (each key
//! with the token its request reserved it under) and commits. Its worker waits a second,
//! asks Redis with one `PING` whether it answers, and then settles everything queued in a few
//! calls: commits first (one pipeline), then releases (one script over every key and token).
//! A release is made twice, a second apart, for a `SET NX` still queued on a connection the
//! client gave up on.
//!
//! Bounded: at most [`QUEUED`] calls wait (more are dropped, logged once per episode: a
//! dropped release costs a 409 until the reservation's TTL, a dropped commit at worst a second
//! copy of an event); a release is given up after the reservation's TTL (it has lapsed by
//! itself), a commit after [`COMMIT_FOR`]. Nothing is settled at a stop: what waits then
//! lapses, as after a crash.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use tokio::sync::{mpsc, OnceCell};
use tokio::time::Instant;

use super::redis::{bounded, commit_prefixed, release_pairs};

/// Most failed calls waiting to be settled.
pub const QUEUED: usize = 10_000;
/// How long a failed commit is retried.
pub const COMMIT_FOR: Duration = Duration::from_secs(3600);
/// Pause before each settling round.
const PAUSE: Duration = Duration::from_secs(1);
/// Most keys in one settling call.
const CHUNK: usize = 1000;

/// What a failed call leaves to settle (keys with their prefix).
#[derive(Debug)]
pub enum Work {
    /// Delete each key while it still holds its token: `(key, token)`.
    Release(Vec<(String, String)>),
    /// Mark each key delivered for its window.
    Commit(Vec<(String, Duration)>),
}

/// The queue of failed calls and its worker.
#[derive(Debug)]
pub struct Settler {
    jobs: mpsc::Sender<Work>,
    /// Calls are being dropped (the queue was full); logged once per episode.
    dropping: AtomicBool,
}

impl Settler {
    /// Starts the worker; `release_for` is how long a reservation lives.
    pub fn start(
        conn: Arc<OnceCell<ConnectionManager>>,
        script: Script,
        release_for: Duration,
    ) -> Settler {
        let (jobs, queue) = mpsc::channel(QUEUED);
        tokio::spawn(run(queue, conn, script, release_for));
        Settler {
            jobs,
            dropping: AtomicBool::new(false),
        }
    }

    /// Queues `work`, or drops it (logged) when the queue is full.
    pub fn later(&self, work: Work) {
        match self.jobs.try_send(work) {
            Ok(()) => {
                if self.dropping.swap(false, Ordering::Relaxed) {
                    tracing::info!("dedup settlement queue has room again");
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.dropping.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        queued = QUEUED,
                        "dedup settlement queue full (Redis failing for a while): failed calls \
                         are no longer settled later; their reservations lapse after their TTL"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A queued call: its work, when it is given up, and (a release) how many rounds are left.
struct Waiting {
    work: Work,
    give_up: Instant,
    rounds: u8,
}

async fn run(
    mut queue: mpsc::Receiver<Work>,
    conn: Arc<OnceCell<ConnectionManager>>,
    script: Script,
    release_for: Duration,
) {
    let mut waiting: Vec<Waiting> = Vec::new();
    let admit = |work: Work, waiting: &mut Vec<Waiting>| {
        let (give_up, rounds) = match work {
            Work::Release(_) => (Instant::now() + release_for, 2),
            Work::Commit(_) => (Instant::now() + COMMIT_FOR, 1),
        };
        waiting.push(Waiting {
            work,
            give_up,
            rounds,
        });
    };
    loop {
        if waiting.is_empty() {
            let Some(work) = queue.recv().await else {
                return;
            };
            admit(work, &mut waiting);
        }
        tokio::time::sleep(PAUSE).await;
        while waiting.len() < QUEUED {
            let Ok(work) = queue.try_recv() else { break };
            admit(work, &mut waiting);
        }
        let now = Instant::now();
        let before = waiting.len();
        waiting.retain(|w| w.give_up > now);
        if waiting.len() < before {
            tracing::warn!(
                calls = before - waiting.len(),
                "Redis did not answer in time to settle failed dedup calls; their reservations lapse by themselves"
            );
        }
        let Some(mut c) = conn.get().cloned() else {
            continue;
        };
        if bounded(redis::cmd("PING").query_async::<String>(&mut c))
            .await
            .is_err()
        {
            continue;
        }
        settle(&mut waiting, &c, &script).await;
    }
}

/// One round: every commit, then every release, in chunks; what succeeded leaves `waiting`
/// (a release after its last round).
async fn settle(waiting: &mut Vec<Waiting>, conn: &ConnectionManager, script: &Script) {
    let commits: Vec<(String, Duration)> = waiting
        .iter()
        .filter_map(|w| match &w.work {
            Work::Commit(keys) => Some(keys.iter().cloned()),
            Work::Release(_) => None,
        })
        .flatten()
        .collect();
    let mut committed = true;
    for chunk in commits.chunks(CHUNK) {
        committed &= commit_prefixed(conn.clone(), chunk).await.is_ok();
    }
    let releases: Vec<(String, String)> = waiting
        .iter()
        .filter_map(|w| match &w.work {
            Work::Release(pairs) => Some(pairs.iter().cloned()),
            Work::Commit(_) => None,
        })
        .flatten()
        .collect();
    let mut released_ok = true;
    let mut released = 0u64;
    for chunk in releases.chunks(CHUNK) {
        match release_pairs(script, conn.clone(), chunk).await {
            Ok(n) => released += n,
            Err(_) => released_ok = false,
        }
    }
    if !commits.is_empty() && committed {
        tracing::info!(
            events = commits.len(),
            "dedup commits done once Redis answered"
        );
    }
    if released > 0 {
        tracing::info!(
            keys = released,
            "dedup reservations left by failed calls released"
        );
    }
    waiting.retain_mut(|w| match &w.work {
        Work::Commit(_) => !committed,
        Work::Release(_) => {
            if released_ok {
                w.rounds = w.rounds.saturating_sub(1);
            }
            w.rounds > 0
        }
    });
}
