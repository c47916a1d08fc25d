//! Spool append throughput with group commit: records/s and fsyncs/s for 1, 16 and 64
//! concurrent appenders, each appending one 1 KiB record at a time. And the forwarder's side:
//! reading 20,000 spooled envelopes (2 KiB OCSF bodies) back and decoding them, in the
//! forwarder's batches (`spool_read_envelopes`).
//!
//! `cargo bench --bench spool`. Each iteration appends `PER_ITER` records in total; criterion
//! reports time per iteration (→ records/s), and the bench prints the fsyncs it took.
//! `SPOOL_SEGMENT_BYTES` sets the segment size (default 64 MiB, which these runs never fill):
//! with e.g. 1048576 the spool rolls every thousand records and, after the first ack, writes
//! into reused segments, so the two runs compare appending to a growing file with
//! overwriting one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hookgate::sink::envelope::{Envelope, Kind};
use hookgate::spool::{Spool, SpoolSettings};

const PER_ITER: usize = 256;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A spool in `dir` with its writer thread running; no size cap that a bench could reach.
fn open(dir: &Path, segment_bytes: u64) -> (Spool, std::thread::JoinHandle<()>) {
    let (spool, writer) = Spool::open(SpoolSettings {
        dir: dir.to_owned(),
        max_bytes: 64 * 1024 * 1024 * 1024,
        segment_bytes,
    })
    .unwrap();
    (spool, std::thread::spawn(move || writer.run()))
}

fn bench_append(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("spool_append_1KiB");
    group.throughput(Throughput::Elements(PER_ITER as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let segment_bytes = std::env::var("SPOOL_SEGMENT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 * 1024 * 1024);
    for concurrency in [1usize, 16, 64] {
        let dir = tempfile::tempdir().unwrap();
        let (spool, writer) = open(dir.path(), segment_bytes);
        let payload = vec![b'x'; 1024];
        let syncs_before = spool.stats().syncs;
        let started = Instant::now();
        let mut records = 0u64;
        group.bench_with_input(
            BenchmarkId::from_parameter(concurrency),
            &concurrency,
            |b, &concurrency| {
                b.iter(|| {
                    rt.block_on(async {
                        let mut tasks = Vec::with_capacity(concurrency);
                        for _ in 0..concurrency {
                            let spool = spool.clone();
                            let payload = payload.clone();
                            tasks.push(tokio::spawn(async move {
                                for _ in 0..PER_ITER / concurrency {
                                    spool.append(vec![payload.clone()]).await.unwrap();
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    records += ((PER_ITER / concurrency) * concurrency) as u64;
                    // Keep the disk bounded: everything appended counts as forwarded.
                    spool.ack(u64::MAX).unwrap();
                });
            },
        );
        let secs = started.elapsed().as_secs_f64();
        let syncs = spool.stats().syncs - syncs_before;
        println!(
            "concurrency={concurrency}: {records} records, {syncs} fsyncs → {:.0} records/s, {:.0} fsyncs/s, {:.1} records per fsync",
            records as f64 / secs,
            syncs as f64 / secs,
            records as f64 / syncs.max(1) as f64
        );
        spool.close();
        writer.join().unwrap();
    }
    group.finish();
}

/// Records read back per iteration of the read bench.
const READ_RECORDS: usize = 20_000;

fn bench_read(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (spool, writer) = open(dir.path(), 16 * 1024 * 1024);
    let envelope = |i: usize| Envelope {
        kind: Kind::Event {
            class_uid: 3002,
            class_name: "Authentication".into(),
        },
        source: "hw".into(),
        vendor: "hyprwatch".into(),
        request_id: format!("req-{i}"),
        uid: format!("evt-{i}"),
        body: Bytes::from(vec![b'x'; 2048]),
        window_s: 3 * 3600,
    };
    rt.block_on(async {
        for start in (0..READ_RECORDS).step_by(500) {
            let payloads = (start..start + 500).map(|i| envelope(i).encode()).collect();
            spool.append(payloads).await.unwrap();
        }
    });
    let mut group = c.benchmark_group("spool_read_envelopes");
    group.throughput(Throughput::Elements(READ_RECORDS as u64));
    group.sample_size(10);
    group.bench_function("2KiB", |b| {
        b.iter(|| {
            // A fresh reader starts after the acknowledged mark (none here): all of them.
            let mut reader = spool.reader();
            let mut n = 0usize;
            loop {
                // The forwarder's batch limits (src/sink/forward.rs).
                let batch = reader.read(500, 4 * 1024 * 1024).unwrap();
                if batch.is_empty() {
                    break;
                }
                for (_, payload) in &batch {
                    let e = Envelope::decode(payload).unwrap();
                    n += e.body.len();
                }
            }
            assert_eq!(n, READ_RECORDS * 2048);
        });
    });
    group.finish();
    spool.close();
    writer.join().unwrap();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
