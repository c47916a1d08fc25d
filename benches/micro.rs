//! Micro-benchmarks of the request path's CPU-bound steps, through hookgate's own APIs:
//! HMAC (Hyprwatch) and Svix verification per body size, dedup reserve/commit, body split,
//! and JSON serialization of an OCSF event. Parse + normalize and the spool have their own
//! bench files (`parse.rs`, `spool.rs`).
//!
//! Run: `cargo bench --bench micro` (criterion; `-- <filter>` runs a subset, e.g.
//! `cargo bench --bench micro -- auth/`). After criterion's report it prints a table of heap
//! allocations per operation, counted by `stats_alloc` around a separate untimed run of each
//! operation (the counting allocator is a safe wrapper: the crate forbids `unsafe`, which a
//! hand-written `GlobalAlloc` would need). The wrapper's atomic counters add a few ns to every
//! allocation in the timed loops too; the numbers in BENCHMARKS.md include that.
//!
//! These are benchmarks, never tests: nothing here asserts on speed. The few `assert!`s only
//! check that the operation measured is the successful one (a failing signature check would
//! measure the wrong path).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

use hookgate::auth::hmac::HmacVerifier;
use hookgate::auth::svix::SvixVerifier;
use hookgate::config::Secret;
use hookgate::dedup::{Backend, Dedup, DedupStore, MemoryStore};
use hookgate::parse::{Catalog, EventKey, Parser};
use hookgate::split::{self, Split};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const HW_SECRET: &str = "whsec_bench_hyprwatch";
const SVIX_KEY: [u8; 32] = [7u8; 32];
const NOW: u64 = 1_700_000_000;
const SIZES: [usize; 3] = [256, 1024, 64 * 1024];

/// Allocations per operation, one row per benchmark.
#[derive(Default)]
struct AllocTable {
    /// False under `cargo test --all-targets` (no `--bench` argument): criterion then runs each
    /// benchmark once as a smoke test, and counting is skipped too.
    enabled: bool,
    rows: Vec<(String, f64, f64)>,
}

impl AllocTable {
    /// Runs `op` `n` times (untimed) and records allocations and bytes per call.
    fn count(&mut self, name: &str, n: usize, mut op: impl FnMut()) {
        if !self.enabled {
            return;
        }
        op(); // warm lazily-initialised state (thread locals, caches) before counting
        let region = Region::new(GLOBAL);
        for _ in 0..n {
            op();
        }
        let stats = region.change();
        let per = |v: usize| v as f64 / n as f64;
        self.rows.push((
            name.to_owned(),
            per(stats.allocations + stats.reallocations),
            per(stats.bytes_allocated + stats.bytes_reallocated.max(0).unsigned_abs()),
        ));
    }

    fn print(&self) {
        if !self.enabled {
            return;
        }
        println!("\n| benchmark | allocations / op | bytes allocated / op |");
        println!("|---|---|---|");
        for (name, allocs, bytes) in &self.rows {
            println!("| {name} | {allocs:.1} | {bytes:.0} |");
        }
    }
}

/// A JSON object of exactly `size` bytes (the content does not matter to a MAC, only length).
fn body_of(size: usize) -> Bytes {
    let head = r#"{"id":"evt_bench","event":"host.online","pad":""#;
    let tail = r#""}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(size);
    s.push_str(head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str(tail);
    Bytes::from(s)
}

fn hmac_headers(body: &[u8]) -> HeaderMap {
    let mut mac = Hmac::<Sha256>::new_from_slice(HW_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let mut h = HeaderMap::new();
    h.insert(
        "x-hyprwatch-signature",
        HeaderValue::from_str(&sig).unwrap(),
    );
    h
}

fn svix_headers(body: &[u8]) -> HeaderMap {
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let mut mac = Hmac::<Sha256>::new_from_slice(&SVIX_KEY).unwrap();
    mac.update(format!("{id}.{NOW}.").as_bytes());
    mac.update(body);
    let sig = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    let mut h = HeaderMap::new();
    h.insert("svix-id", HeaderValue::from_static(id));
    h.insert("svix-timestamp", HeaderValue::from(NOW));
    h.insert("svix-signature", HeaderValue::from_str(&sig).unwrap());
    h
}

fn auth(c: &mut Criterion, allocs: &mut AllocTable) {
    let hmac = HmacVerifier::new(
        "X-Hyprwatch-Signature",
        "sha256=",
        &[Secret::new(HW_SECRET)],
    )
    .unwrap();
    let svix_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SVIX_KEY)
    );
    let svix = SvixVerifier::new(&[Secret::new(svix_secret)], 300).unwrap();
    let mut group = c.benchmark_group("auth");
    for size in SIZES {
        let body = body_of(size);
        group.throughput(Throughput::Bytes(size as u64));

        let headers = hmac_headers(&body);
        assert!(hmac.verify(&headers, &body).is_ok());
        group.bench_with_input(BenchmarkId::new("hmac_verify", size), &body, |b, body| {
            b.iter(|| hmac.verify(black_box(&headers), black_box(body)))
        });
        allocs.count(&format!("auth/hmac_verify/{size}"), 1000, || {
            let _ = black_box(hmac.verify(&headers, &body));
        });

        let headers = svix_headers(&body);
        assert!(svix.verify_at(&headers, &body, NOW).is_ok());
        group.bench_with_input(BenchmarkId::new("svix_verify", size), &body, |b, body| {
            b.iter(|| svix.verify_at(black_box(&headers), black_box(body), NOW))
        });
        allocs.count(&format!("auth/svix_verify/{size}"), 1000, || {
            let _ = black_box(svix.verify_at(&headers, &body, NOW));
        });
    }
    group.finish();
}

fn key(n: usize) -> EventKey {
    EventKey {
        id: format!("evt_{n:016}"),
        window: Some(Duration::from_secs(24 * 3600)),
    }
}

/// The pipeline's dedup calls (`DedupStore::reserve` / `commit`, in-process backend without a
/// journal), driven on a current-thread runtime: one `block_on` per timed batch, so the
/// runtime's cost is spread over the batch.
fn dedup(c: &mut Criterion, allocs: &mut AllocTable) {
    const PREFILL: usize = 100_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let window = Duration::from_secs(24 * 3600);
    let memory = MemoryStore::new(1_000_000, Duration::from_secs(120));
    let store = DedupStore::new(Backend::Memory(memory), Some(window));
    rt.block_on(async {
        for n in 0..PREFILL {
            store
                .reserve("bench", &key(n), &store.holder())
                .await
                .unwrap();
            store.commit("bench", &key(n)).await.unwrap();
        }
    });
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements(1));
    // A new event: reserve, then commit once durable (what every accepted event costs).
    let mut next = PREFILL;
    group.bench_function("reserve_commit_new", |b| {
        b.iter_custom(|iters| {
            let keys: Vec<EventKey> = (0..iters as usize).map(|i| key(next + i)).collect();
            next += iters as usize;
            rt.block_on(async {
                let started = Instant::now();
                for k in &keys {
                    let outcome = store.reserve("bench", k, &store.holder()).await.unwrap();
                    debug_assert_eq!(outcome, Dedup::New);
                    store.commit("bench", k).await.unwrap();
                }
                started.elapsed()
            })
        })
    });
    // A vendor retry of a delivered event: the latest one, so the store's cap (which the
    // measurement above may have reached) has not evicted it.
    let seen = key(next - 1);
    assert_eq!(
        rt.block_on(store.reserve("bench", &seen, &store.holder()))
            .unwrap(),
        Dedup::Seen
    );
    group.bench_function("reserve_seen", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(
                        store
                            .reserve("bench", black_box(&seen), &store.holder())
                            .await
                            .unwrap(),
                    );
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    let fresh: Vec<EventKey> = (0..1000).map(|i| key(next + i)).collect();
    let mut it = fresh.iter();
    allocs.count("dedup/reserve_commit_new", 1000, || {
        let k = it.next().unwrap_or(&seen);
        rt.block_on(async {
            let _ = store.reserve("bench", k, &store.holder()).await;
            let _ = store.commit("bench", k).await;
        });
    });
    allocs.count("dedup/reserve_seen", 1000, || {
        let _ = black_box(rt.block_on(store.reserve("bench", &seen, &store.holder())));
    });
}

/// Filling a memory store to its default cap of 1,000,000 ids: the slowest single reserve +
/// commit shows whether growing the key map ever stalls a request (it holds the store's
/// lock), and the heap the full store holds is its memory per id. Printed, not a criterion
/// figure: one pass, about two seconds.
fn dedup_growth() {
    const IDS: usize = 1_000_000;
    let window = Duration::from_secs(24 * 3600);
    let keys: Vec<String> = (0..IDS).map(|n| format!("growth:{n:012}")).collect();
    let region = Region::new(GLOBAL);
    let store = MemoryStore::new(IDS, Duration::from_secs(120));
    let mut slowest = (Duration::ZERO, 0);
    let mut over_1ms = 0;
    let started = Instant::now();
    for (n, k) in keys.iter().enumerate() {
        let t = Instant::now();
        store.reserve(k).unwrap();
        store.commit(k, window).unwrap();
        let took = t.elapsed();
        if took > Duration::from_millis(1) {
            over_1ms += 1;
        }
        if took > slowest.0 {
            slowest = (took, n);
        }
    }
    println!(
        "\ndedup growth to {IDS} ids: {:.2} s in all, slowest reserve + commit {:.2} ms (id {}), {over_1ms} over 1 ms",
        started.elapsed().as_secs_f64(),
        slowest.0.as_secs_f64() * 1e3,
        slowest.1
    );
    let stats = region.change();
    let held = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
        + stats.bytes_reallocated as i64;
    println!(
        "dedup store of {} ids: {:.1} MB of heap held, {:.0} bytes per id",
        store.len(),
        held as f64 / 1e6,
        held as f64 / store.len().max(1) as f64
    );
}

fn hyprwatch_event(n: usize) -> String {
    format!(
        r#"{{"id":"evt_bench_{n}","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{{"host_id":"h_{n}","hostname":"server-{n}","platform":"linux","last_seen":"2024-01-15T10:35:00Z","previous_state":"offline","offline_duration_seconds":3600}}}}"#
    )
}

fn parser(name: &str) -> std::sync::Arc<Parser> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("parsers");
    let catalog = Catalog::load(dir.is_dir().then_some(dir.as_path())).unwrap();
    catalog.get(name).unwrap()
}

fn split_bench(c: &mut Criterion, allocs: &mut AllocTable) {
    let parser = parser("hyprwatch");
    let headers = HeaderMap::new();
    let single = Bytes::from(hyprwatch_event(1));
    let array = Bytes::from(format!(
        "[{}]",
        (0..100).map(hyprwatch_event).collect::<Vec<_>>().join(",")
    ));
    let ndjson = Bytes::from((0..100).map(hyprwatch_event).collect::<Vec<_>>().join("\n"));
    let mut group = c.benchmark_group("split");
    for (name, body, events) in [
        ("single_object", &single, 1u64),
        ("array_100", &array, 100),
        ("ndjson_100", &ndjson, 100),
    ] {
        match split::events(body, &parser, &headers, 1000).unwrap() {
            Split::Events(e) => assert_eq!(e.len() as u64, events),
            Split::Heartbeat => panic!("not a heartbeat"),
        }
        group.throughput(Throughput::Elements(events));
        group.bench_function(name, |b| {
            b.iter(|| split::events(black_box(body), &parser, &headers, 1000).unwrap())
        });
        allocs.count(&format!("split/{name}"), 200, || {
            let _ = black_box(split::events(body, &parser, &headers, 1000));
        });
    }
    group.finish();
}

/// An OCSF 1.8.0 Device Inventory Info event as the hyprwatch parser writes it.
const OCSF_EVENT: &str = r#"{"activity_id":1,"activity_name":"Log","category_name":"Discovery","category_uid":5,"class_name":"Device Inventory Info","class_uid":5001,"device":{"agent_list":[{"name":"Shadow","type":"Endpoint query agent","type_id":99,"version":"0.1.0"},{"name":"osquery","type":"Endpoint query agent","type_id":99,"version":"5.10.2"}],"first_seen_time":1705314600000,"hostname":"new-server","os":{"name":"Ubuntu 22.04 LTS","type_id":200},"type_id":0,"uid":"h_abc123"},"message":"host.enrolled new-server","metadata":{"event_code":"host.enrolled","original_time":"2024-01-15T10:30:00Z","product":{"name":"Hyprwatch","vendor_name":"Hyprwatch"},"tenant_uid":"acme","uid":"evt_001","version":"1.8.0"},"observables":[{"name":"device.hostname","type":"Hostname","type_id":1,"value":"new-server"}],"raw_data":"{\"id\":\"evt_001\",\"event\":\"host.enrolled\",\"timestamp\":\"2024-01-15T10:30:00Z\",\"data\":{\"host_id\":\"h_abc123\",\"hostname\":\"new-server\",\"platform\":\"linux\",\"os_version\":\"Ubuntu 22.04 LTS\",\"osquery_version\":\"5.10.2\",\"shadow_version\":\"0.1.0\"}}","severity":"Informational","severity_id":1,"time":1705314600000,"type_name":"Device Inventory Info: Log","type_uid":500101,"unmapped":{"hookgate":{"auth_scheme":"hmac","received_time":1767225600000,"request_id":"0f5c2b8e9a7d4c1e8b3a6f9d2c5e8b1a","source":"hyprwatch"},"platform":"linux"}}"#;

fn ocsf_json(c: &mut Criterion, allocs: &mut AllocTable) {
    let event: serde_json::Value = serde_json::from_str(OCSF_EVENT).unwrap();
    let len = serde_json::to_vec(&event).unwrap().len();
    let mut group = c.benchmark_group("ocsf");
    group.throughput(Throughput::Bytes(len as u64));
    group.bench_function("serialize_to_vec", |b| {
        b.iter(|| serde_json::to_vec(black_box(&event)).unwrap())
    });
    group.finish();
    allocs.count("ocsf/serialize_to_vec", 1000, || {
        let _ = black_box(serde_json::to_vec(&event));
    });
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut allocs = AllocTable {
        enabled: std::env::args().any(|a| a == "--bench"),
        ..AllocTable::default()
    };
    auth(&mut c, &mut allocs);
    dedup(&mut c, &mut allocs);
    split_bench(&mut c, &mut allocs);
    ocsf_json(&mut c, &mut allocs);
    c.final_summary();
    allocs.print();
    if allocs.enabled {
        dedup_growth();
    }
}
