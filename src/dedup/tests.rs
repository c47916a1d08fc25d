//! Dedup behaviour: reserve/commit/release, scoping, exemption, the cap, the journal, and
//! (with `HOOKGATE_TEST_REDIS`) the Redis backend.

use super::*;

fn key(id: &str) -> EventKey {
    EventKey {
        id: id.to_owned(),
        window: Some(Duration::from_secs(3600)),
    }
}

/// A memory store of `max` ids journaled to `path` (replaying what the file holds).
fn journaled(path: &std::path::Path, max: usize) -> MemoryStore {
    MemoryStore::with_journal(
        max,
        Duration::from_secs(120),
        journal::Journal::open(path.to_path_buf()).unwrap(),
    )
}

fn memory(max: usize) -> DedupStore {
    DedupStore::new(
        Backend::Memory(MemoryStore::new(max, Duration::from_secs(120))),
        None,
    )
}

async fn reserve_commit_release_semantics(s: &DedupStore, source: &str) {
    let h = s.holder();
    assert_eq!(s.reserve(source, &key("1"), &h).await.unwrap(), Dedup::New);
    assert_eq!(
        s.reserve(source, &key("1"), &h).await.unwrap(),
        Dedup::InFlight
    );
    s.commit(source, &key("1")).await.unwrap();
    assert_eq!(s.reserve(source, &key("1"), &h).await.unwrap(), Dedup::Seen);
    // A committed key is not undone by a late release.
    s.release(source, &key("1"), &h).await.unwrap();
    assert_eq!(s.reserve(source, &key("1"), &h).await.unwrap(), Dedup::Seen);

    assert_eq!(s.reserve(source, &key("2"), &h).await.unwrap(), Dedup::New);
    s.release(source, &key("2"), &h).await.unwrap();
    assert_eq!(s.reserve(source, &key("2"), &h).await.unwrap(), Dedup::New);
}

#[tokio::test]
async fn reserve_then_commit_makes_repeats_seen_and_release_lets_the_retry_through() {
    reserve_commit_release_semantics(&memory(10), "a").await;
}

#[tokio::test]
async fn keys_are_scoped_by_source() {
    let s = memory(10);
    s.reserve("a", &key("1"), &s.holder()).await.unwrap();
    s.commit("a", &key("1")).await.unwrap();
    assert_eq!(
        s.reserve("b", &key("1"), &s.holder()).await.unwrap(),
        Dedup::New
    );
}

#[tokio::test]
async fn exempt_keys_are_never_held() {
    let s = memory(10);
    let k = EventKey {
        id: "x".into(),
        window: None,
    };
    assert_eq!(
        s.reserve("a", &k, &s.holder()).await.unwrap(),
        Dedup::Exempt
    );
    s.commit("a", &k).await.unwrap();
    assert_eq!(
        s.reserve("a", &k, &s.holder()).await.unwrap(),
        Dedup::Exempt
    );
}

#[test]
fn the_memory_store_stays_within_its_entry_cap_and_evicts_the_soonest_expiry() {
    let s = MemoryStore::new(3, Duration::from_secs(120));
    for i in 0..10 {
        s.reserve(&i.to_string()).unwrap();
        s.commit(&i.to_string(), Duration::from_secs(3600 + i))
            .unwrap();
    }
    assert!(s.len() <= 3, "{}", s.len());
    assert_eq!(s.reserve("9").unwrap(), Dedup::Seen);
    assert_eq!(s.reserve("0").unwrap(), Dedup::New);
}

#[test]
fn the_parser_s_window_applies_unless_the_operator_sets_one_for_all() {
    let catalog = crate::parse::Catalog::load(None).unwrap();
    let connectsecure = catalog.get("connectsecure").unwrap();
    let body =
        crate::parse::doc::Doc::parse(r#"{"subject":"Probe Went Down","body":"x"}"#).unwrap();
    let key = connectsecure.event_key(&body, &http::HeaderMap::new());
    // A daily "Probe Went Down" is a new alert the next day, not a retry.
    assert_eq!(memory(10).window(&key), Some(Duration::from_secs(3600)));
    let exempt = EventKey {
        id: "x".into(),
        window: None,
    };
    let set = DedupStore::new(
        Backend::Memory(MemoryStore::new(10, Duration::from_secs(120))),
        Some(Duration::from_secs(7200)),
    );
    assert_eq!(set.window(&key), Some(Duration::from_secs(7200)));
    assert_eq!(set.window(&exempt), None);
}

#[test]
fn committed_keys_survive_a_restart_through_the_journal_but_reservations_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.journal");
    {
        let s = journaled(&path, 100);
        s.reserve("a\u{1f}1").unwrap();
        s.commit("a\u{1f}1", Duration::from_secs(3600)).unwrap();
        s.reserve("a\u{1f}expired").unwrap();
        s.commit("a\u{1f}expired", Duration::from_millis(1))
            .unwrap();
        s.reserve("a\u{1f}2").unwrap();
    }
    // A torn last line (crash mid-write) is skipped.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, b"[\"a\\u001f3\", 99").unwrap();
    drop(f);
    std::thread::sleep(Duration::from_millis(5));
    let s = journaled(&path, 100);
    assert_eq!(s.reserve("a\u{1f}1").unwrap(), Dedup::Seen);
    assert_eq!(s.reserve("a\u{1f}2").unwrap(), Dedup::New);
    assert_eq!(s.reserve("a\u{1f}expired").unwrap(), Dedup::New);
    // Compacted at startup: only the live key is left in the file.
    let lines = std::fs::read_to_string(&path).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
}

#[test]
fn a_journal_written_before_fingerprints_still_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.journal");
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    let ms = later
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    // The earlier format: the scoped key's text.
    std::fs::write(&path, format!("[\"a\\u001f1\",{ms}]\n")).unwrap();
    let s = journaled(&path, 100);
    assert_eq!(s.reserve("a\u{1f}1").unwrap(), Dedup::Seen);
    assert_eq!(s.reserve("a\u{1f}2").unwrap(), Dedup::New);
    // Compacted at startup into the fingerprint form, which replays too.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("a\\u001f1"), "{text}");
    drop(s);
    let s = journaled(&path, 100);
    assert_eq!(s.reserve("a\u{1f}1").unwrap(), Dedup::Seen);
}

/// A journal line for `key` (a scoped key's text, or a fingerprint's hex) expiring
/// `from_now` from now, and that expiry in unix milliseconds.
fn journal_line(key: &str, from_now: Duration) -> (String, u128) {
    let ms = (std::time::SystemTime::now() + from_now)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    (format!("{}\n", serde_json::json!([key, ms as u64])), ms)
}

/// The journal's lines as (key, expiry in unix ms).
fn journal_lines(path: &std::path::Path) -> Vec<(String, u128)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<(String, u128)>(l).unwrap())
        .collect()
}

#[test]
fn replay_keeps_the_latest_expiries_whatever_the_journal_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.journal");
    let hour = Duration::from_secs(3600);
    // Latest first, three ids for a cap of two: the one ending soonest is dropped.
    let text: String = [("a\u{1f}k1", 3), ("a\u{1f}k2", 2), ("a\u{1f}k3", 1)]
        .iter()
        .map(|(k, h)| journal_line(k, hour * *h).0)
        .collect();
    std::fs::write(&path, text).unwrap();
    let s = journaled(&path, 2);
    assert_eq!(s.reserve("a\u{1f}k1").unwrap(), Dedup::Seen);
    assert_eq!(s.reserve("a\u{1f}k2").unwrap(), Dedup::Seen);
    assert_eq!(s.reserve("a\u{1f}k3").unwrap(), Dedup::New);
    drop(s);

    // One key journaled twice, the later line with the earlier expiry: the later expiry holds.
    let (first, three_h) = journal_line("a\u{1f}twice", hour * 3);
    let (second, _) = journal_line("a\u{1f}twice", hour);
    std::fs::write(&path, first + &second).unwrap();
    drop(journaled(&path, 10));
    let lines = journal_lines(&path);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].1, three_h);
}

#[test]
fn restarts_do_not_move_journaled_expiries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.journal");
    // Half a second past a whole second: a rounded-up tick written back would move it.
    let (line, ms) = journal_line("a\u{1f}1", Duration::from_millis(3_600_500));
    std::fs::write(&path, line).unwrap();
    for _ in 0..10 {
        let s = journaled(&path, 10);
        assert_eq!(s.reserve("a\u{1f}1").unwrap(), Dedup::Seen);
    }
    let lines = journal_lines(&path);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].1, ms);
}

#[test]
fn a_journal_of_128_bit_fingerprints_replays_and_is_rewritten_in_96() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.journal");
    let hex = hex::encode(sha2::Sha256::digest("a\u{1f}old".as_bytes()));
    std::fs::write(&path, journal_line(&hex[..32], Duration::from_secs(3600)).0).unwrap();
    let s = journaled(&path, 10);
    assert_eq!(s.reserve("a\u{1f}old").unwrap(), Dedup::Seen);
    assert_eq!(s.reserve("a\u{1f}new").unwrap(), Dedup::New);
    let lines = journal_lines(&path);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0, hex[..24]);
}

#[tokio::test]
async fn a_request_committed_at_once_is_journaled_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.journal");
    let open = || DedupStore::new(Backend::Memory(journaled(&path, 100)), None);
    let exempt = EventKey {
        id: "api".to_owned(),
        window: None,
    };
    let keys = [key("x"), key("y"), exempt.clone(), key("z")];
    {
        let s = open();
        for k in &keys {
            s.reserve("src", k, &s.holder()).await.unwrap();
        }
        commit_all(&s, "src", &keys).await.unwrap();
        for k in &keys[..2] {
            assert_eq!(s.reserve("src", k, &s.holder()).await.unwrap(), Dedup::Seen);
        }
    }
    // One line per windowed key (the exempt one is never stored), each readable on replay.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    let s = open();
    for k in [&keys[0], &keys[1], &keys[3]] {
        assert_eq!(
            s.reserve("src", k, &s.holder()).await.unwrap(),
            Dedup::Seen,
            "{}",
            k.id
        );
    }
    assert_eq!(
        s.reserve("src", &exempt, &s.holder()).await.unwrap(),
        Dedup::Exempt
    );
    assert_eq!(
        s.reserve("other", &keys[0], &s.holder()).await.unwrap(),
        Dedup::New
    );
}

#[test]
fn the_journal_is_compacted_in_the_background_and_loses_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.journal");
    let s = journaled(&path, 5);
    let wait = |s: &MemoryStore| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while s.compacting() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!s.compacting(), "compaction did not finish");
    };
    for i in 0..40 {
        s.reserve(&i.to_string()).unwrap();
        // Windows a second apart: the cap keeps the latest expiries, and the journal's
        // millisecond times must not tie.
        s.commit(&i.to_string(), Duration::from_secs(3600 + i))
            .unwrap();
        // Lines count once the writer thread has written them, and on a loaded machine it
        // falls behind this loop (then no commit sees the file long enough to compact it):
        // written here, as a writer that keeps up would have.
        s.flush_journal();
        if i == 20 {
            wait(&s);
        }
    }
    wait(&s);
    let lines = std::fs::read_to_string(&path).unwrap().lines().count();
    assert!(lines < 30, "journal was not compacted: {lines} lines");
    drop(s);
    // The cap keeps the five latest keys; after a restart exactly those are still seen,
    // whether they were committed before, during or after a compaction.
    let s = journaled(&path, 5);
    for i in 35..40 {
        assert_eq!(s.reserve(&i.to_string()).unwrap(), Dedup::Seen, "key {i}");
    }
    assert_eq!(s.reserve("34").unwrap(), Dedup::New);
}

fn redis_url() -> Option<String> {
    let url = std::env::var("HOOKGATE_TEST_REDIS").ok();
    if url.is_none() {
        eprintln!("SKIPPED (no HOOKGATE_TEST_REDIS): Redis dedup backend");
    }
    url
}

async fn redis_store(prefix: &str) -> DedupStore {
    let url = redis_url().unwrap();
    DedupStore::new(
        Backend::Redis(
            RedisStore::connect(&url, prefix.to_owned(), Duration::from_secs(120))
                .await
                .unwrap(),
        ),
        None,
    )
}

#[tokio::test]
async fn the_redis_store_has_the_same_semantics() {
    if redis_url().is_none() {
        return;
    }
    let prefix = format!("hookgate-test:{}:", uuid::Uuid::new_v4());
    reserve_commit_release_semantics(&redis_store(&prefix).await, "a").await;
}

/// The wait polls the store, so it serves Redis (several instances) alike.
#[tokio::test]
async fn a_request_waits_for_a_delivery_in_flight_on_redis_too() {
    if redis_url().is_none() {
        return;
    }
    let prefix = format!("hookgate-test:{}:", uuid::Uuid::new_v4());
    let store = redis_store(&prefix).await.waiting(Duration::from_secs(5));
    waits_for_the_delivery_in_flight(std::sync::Arc::new(store)).await;
}

#[tokio::test]
async fn two_redis_backed_instances_see_each_others_keys() {
    if redis_url().is_none() {
        return;
    }
    let prefix = format!("hookgate-test:{}:", uuid::Uuid::new_v4());
    let one = redis_store(&prefix).await;
    let two = redis_store(&prefix).await;
    assert_eq!(
        one.reserve("a", &key("x"), &one.holder()).await.unwrap(),
        Dedup::New
    );
    assert_eq!(
        two.reserve("a", &key("x"), &two.holder()).await.unwrap(),
        Dedup::InFlight
    );
    one.commit("a", &key("x")).await.unwrap();
    assert_eq!(
        two.reserve("a", &key("x"), &two.holder()).await.unwrap(),
        Dedup::Seen
    );
}

/// A release takes only its own request's reservation: one made by another request (after
/// the first lapsed, or by a call that failed and is being released late) stays.
#[tokio::test]
async fn a_redis_release_never_takes_another_requests_reservation() {
    if redis_url().is_none() {
        return;
    }
    let prefix = format!("hookgate-test:{}:", uuid::Uuid::new_v4());
    let s = redis_store(&prefix).await;
    let (mine, theirs) = (s.holder(), s.holder());
    assert_eq!(
        s.reserve("a", &key("x"), &theirs).await.unwrap(),
        Dedup::New
    );
    s.release("a", &key("x"), &mine).await.unwrap();
    assert_eq!(
        s.reserve("a", &key("x"), &mine).await.unwrap(),
        Dedup::InFlight
    );
    s.release("a", &key("x"), &theirs).await.unwrap();
    assert_eq!(s.reserve("a", &key("x"), &mine).await.unwrap(), Dedup::New);
}

#[test]
fn the_scoped_key_is_source_unit_separator_id_as_stores_already_hold_it() {
    // Redis keys and journal fingerprints written by earlier versions use this text.
    assert_eq!(DedupStore::scoped("hw", &key("evt-1")), "hw\u{1f}evt-1");
    assert_eq!(
        Fingerprint::scoped("hw", "evt-1"),
        Fingerprint::of(&DedupStore::scoped("hw", &key("evt-1")))
    );
}

/// A one-event request carrying `id` (its body does not matter to dedup).
fn request(ids: &[&str]) -> Vec<RawEvent<'static>> {
    ids.iter()
        .map(|id| RawEvent {
            raw: bytes::Bytes::from_static(b"{}"),
            value: crate::parse::doc::Doc::Null,
            key: key(id),
            route: crate::parse::RouteChoice::default(),
        })
        .collect()
}

/// The ids `reservation` holds for delivery and how many duplicates it counts; `None` when
/// the events were found in flight.
fn held(reservation: &Reservation<'_>) -> Option<(Vec<String>, usize)> {
    match reservation {
        Reservation::Held {
            fresh, duplicates, ..
        } => Some((
            fresh.iter().map(|e| e.key.id.clone()).collect(),
            *duplicates,
        )),
        Reservation::InFlight(_) => None,
    }
}

/// On `store` (waiting 5 s): a retry that arrives while the first attempt is still being
/// delivered is a duplicate once that delivery is committed, and delivers the event itself
/// once it was released.
async fn waits_for_the_delivery_in_flight(store: std::sync::Arc<DedupStore>) {
    for (id, other, commits) in [
        ("committed", "other-1", true),
        ("released", "other-2", false),
    ] {
        let holder = store.holder();
        assert_eq!(
            store.reserve("s", &key(id), &holder).await.unwrap(),
            Dedup::New
        );
        let first = std::sync::Arc::clone(&store);
        let ends = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(60)).await;
            if commits {
                first.commit("s", &key(id)).await.unwrap();
            } else {
                first.release("s", &key(id), &holder).await.unwrap();
            }
        });
        let started = std::time::Instant::now();
        let retry = check_waiting(&store, "s", request(&[id, other]))
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(60),
            "{id}: did not wait"
        );
        ends.await.unwrap();
        let expected = if commits {
            (vec![other.to_owned()], 1)
        } else {
            (vec![id.to_owned(), other.to_owned()], 0)
        };
        assert_eq!(held(&retry), Some(expected), "{id}");
    }
}

/// A vendor's retry that arrives while its first attempt is still being delivered waits
/// for that delivery ([`waits_for_the_delivery_in_flight`]); without a wait (or past it) it
/// is in flight, its events handed back intact.
#[tokio::test]
async fn a_request_finding_its_event_in_flight_waits_for_that_delivery() {
    waits_for_the_delivery_in_flight(std::sync::Arc::new(
        memory(100).waiting(Duration::from_secs(5)),
    ))
    .await;
    // No wait: in flight at once, nothing left reserved, the events handed back in order.
    let quick = memory(100);
    assert_eq!(
        quick
            .reserve("s", &key("busy"), &quick.holder())
            .await
            .unwrap(),
        Dedup::New
    );
    let back = check_waiting(&quick, "s", request(&["free", "busy"]))
        .await
        .unwrap();
    let Reservation::InFlight(events) = back else {
        panic!("not in flight: {back:?}")
    };
    let ids: Vec<&str> = events.iter().map(|e| e.key.id.as_str()).collect();
    assert_eq!(ids, ["free", "busy"]);
    assert_eq!(
        quick
            .reserve("s", &key("free"), &quick.holder())
            .await
            .unwrap(),
        Dedup::New
    );
    // A wait that runs out while the delivery goes on: in flight after about the wait.
    let patient = memory(100).waiting(Duration::from_millis(100));
    assert_eq!(
        patient
            .reserve("s", &key("slow"), &patient.holder())
            .await
            .unwrap(),
        Dedup::New
    );
    let started = std::time::Instant::now();
    let back = check_waiting(&patient, "s", request(&["slow"]))
        .await
        .unwrap();
    assert!(held(&back).is_none());
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    // The same event twice in one request is one delivery and one duplicate, not a wait.
    let twice = check_waiting(&patient, "s", request(&["dup", "dup"]))
        .await
        .unwrap();
    assert_eq!(held(&twice), Some((vec!["dup".to_owned()], 1)));
}
