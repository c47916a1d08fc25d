//! Benchmark: split + parse + normalize per vendor over every fixture body (heartbeats
//! included, as the gateway sees them), and over the whole fixture mix.
//!
//! Run: `cargo bench --bench parse`. Throughput is in request bodies (elements) per second;
//! each fixture body is one vendor event except the three Hyperproof heartbeats. Time is the
//! benchmark thread's own CPU time (from `/proc/thread-self/schedstat`, nanoseconds), so the
//! figure is per core even on a machine shared with other work; where that file is missing
//! wall time is used. Samples must be long against the kernel's tick for that to be exact:
//! `cargo bench --bench parse -- --sample-size 10 --measurement-time 20`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use hookgate::normalize::{self, EventContext};
use hookgate::parse::{self, Catalog, Parser};
use hookgate::preview;
use hookgate::split::{self, Split};
use http::HeaderMap;

/// The binary's allocator (src/main.rs), so the figures are the gateway's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Case {
    parser: std::sync::Arc<Parser>,
    headers: HeaderMap,
    body: Bytes,
}

fn cases(catalog: &Catalog, vendor: Option<&str>) -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out = Vec::new();
    let mut vendors: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    vendors.sort();
    for vdir in vendors {
        let name = vdir.file_name().unwrap().to_str().unwrap().to_owned();
        if vendor.is_some_and(|v| v != name) {
            continue;
        }
        let parser = catalog.get(&name).unwrap();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&vdir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        for case in dirs {
            let req: toml::Value =
                toml::from_str(&std::fs::read_to_string(case.join("request.toml")).unwrap())
                    .unwrap();
            let headers: Vec<String> = req
                .get("headers")
                .and_then(toml::Value::as_table)
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Case {
                parser: parser.clone(),
                headers: preview::header_map(&headers).unwrap(),
                body: Bytes::from(std::fs::read(case.join("body.json")).unwrap()),
            });
        }
    }
    out
}

/// One request body through split → parse → normalize; returns the events produced.
fn run(case: &Case) -> usize {
    let Ok(Split::Events(events)) = split::events(&case.body, &case.parser, &case.headers, 1000)
    else {
        return 0;
    };
    let mut n = 0;
    for event in events {
        let raw = std::str::from_utf8(&event.raw).unwrap_or_default();
        let ctx = EventContext {
            source: "bench",
            vendor: case.parser.name(),
            tenant: "bench",
            request_id: "bench",
            received_at_ms: 1_767_225_600_000,
            auth_scheme: "none",
            headers: &case.headers,
            raw,
        };
        let parsed =
            parse::apply_routed(&case.parser, event.value, event.key, event.route, &ctx).unwrap();
        let ocsf = normalize::to_ocsf(parsed, &ctx).unwrap();
        n += ocsf.json.len().min(1);
    }
    n
}

/// This thread's CPU time in nanoseconds, if the kernel exposes it.
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Runs `work` `iters` times and returns the CPU time it took (wall time as a fallback).
fn measure(iters: u64, mut work: impl FnMut() -> usize) -> Duration {
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    for _ in 0..iters {
        std::hint::black_box(work());
    }
    // The kernel updates the figure at scheduler ticks: a sample shorter than a tick may
    // read zero; wall time stands in then. Use long samples (see the command in docs).
    match (cpu0, cpu_ns()) {
        (Some(a), Some(b)) if b > a => Duration::from_nanos(b - a),
        _ => wall0.elapsed(),
    }
}

fn bench(c: &mut Criterion) {
    let catalog = Catalog::load(None).unwrap();
    let mut group = c.benchmark_group("parse+normalize");
    for vendor in ["connectsecure", "hoop", "hyperproof", "hypr", "hyprwatch"] {
        let cases = cases(&catalog, Some(vendor));
        group.throughput(Throughput::Elements(cases.len() as u64));
        group.bench_function(vendor, |b| {
            b.iter_custom(|iters| measure(iters, || cases.iter().map(run).sum::<usize>()));
        });
    }
    let mix = cases(&catalog, None);
    group.throughput(Throughput::Elements(mix.len() as u64));
    group.bench_function("fixture mix", |b| {
        b.iter_custom(|iters| measure(iters, || mix.iter().map(run).sum::<usize>()));
    });
    group.finish();
}

criterion_group!(benches, bench);

/// With `PARSE_ROUNDS=N` set, runs the fixture mix N times and exits, without criterion: a
/// fixed amount of work for an instruction count that does not depend on the machine's
/// noise (`PARSE_ROUNDS=200 valgrind --tool=cachegrind --cache-sim=no <bench binary>`).
/// `PARSE_VENDOR` narrows it to one vendor's fixtures.
fn main() {
    if let Some(rounds) = std::env::var("PARSE_ROUNDS")
        .ok()
        .and_then(|r| r.parse::<u64>().ok())
    {
        let catalog = Catalog::load(None).unwrap();
        let vendor = std::env::var("PARSE_VENDOR").ok();
        let mix = cases(&catalog, vendor.as_deref());
        let mut events = 0;
        for _ in 0..rounds {
            events += std::hint::black_box(mix.iter().map(run).sum::<usize>());
        }
        println!(
            "{events} events over {rounds} rounds of {} bodies",
            mix.len()
        );
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
