//! Spool format and behaviour: checksum, torn tail, segment roll, trim, cap, group commit.

use super::format::{decode, encode, segment_path, Decoded};
use super::*;
use std::fs::OpenOptions;

fn settings(dir: &Path) -> SpoolSettings {
    SpoolSettings {
        dir: dir.to_owned(),
        max_bytes: 1024 * 1024,
        segment_bytes: 64 * 1024,
    }
}

fn start(settings: SpoolSettings) -> (Spool, std::thread::JoinHandle<()>) {
    let (spool, writer) = Spool::open(settings).unwrap();
    let handle = std::thread::spawn(move || writer.run());
    (spool, handle)
}

fn stop(spool: Spool, handle: std::thread::JoinHandle<()>) {
    spool.close();
    handle.join().unwrap();
}

fn read_all(reader: &mut SpoolReader) -> Vec<(u64, Vec<u8>)> {
    let mut all = Vec::new();
    loop {
        let batch = reader.read(7, 1000).unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch.into_iter().map(|(seq, p)| (seq, p.to_vec())));
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Polls `done` until it holds or 10 s passed (the trimmer works on its own thread); returns
/// its last answer.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    true
}

/// A running spool of 256-byte segments in a fresh directory, holding `n` records of 50 bytes
/// (66 with framing: four fill a segment).
async fn small_segments(
    n: usize,
) -> (
    tempfile::TempDir,
    SpoolSettings,
    Spool,
    std::thread::JoinHandle<()>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.segment_bytes = 256;
    let (spool, h) = start(s.clone());
    for _ in 0..n {
        spool.append(vec![vec![b'x'; 50]]).await.unwrap();
    }
    (dir, s, spool, h)
}

#[test]
fn a_record_decodes_and_a_flipped_bit_fails_its_checksum() {
    let mut buf = Vec::new();
    encode(7, b"hello", &mut buf);
    assert_eq!(
        decode(&buf),
        Decoded::Record {
            seq: 7,
            payload: b"hello",
            len: 21
        }
    );
    for i in 0..buf.len() {
        let mut bad = buf.clone();
        bad[i] ^= 0x01;
        assert!(
            !matches!(
                decode(&bad),
                Decoded::Record {
                    seq: 7,
                    payload: b"hello",
                    ..
                }
            ),
            "flip at byte {i} went unnoticed"
        );
    }
    assert_eq!(decode(&buf[..buf.len() - 1]), Decoded::Invalid);
    assert_eq!(decode(&[]), Decoded::End);
}

#[tokio::test]
async fn appends_are_read_back_in_order_with_increasing_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, h) = start(settings(dir.path()));
    for i in 0..20u32 {
        let seq = spool.append(vec![i.to_le_bytes().to_vec()]).await.unwrap();
        assert_eq!(seq, u64::from(i) + 1);
    }
    let got = read_all(&mut spool.reader());
    assert_eq!(got.len(), 20);
    for (i, (seq, payload)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(payload, &(i as u32).to_le_bytes().to_vec());
    }
    stop(spool, h);
}

#[tokio::test]
async fn a_torn_tail_is_truncated_at_startup_and_writing_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, h) = start(settings(dir.path()));
    spool
        .append(vec![b"one".to_vec(), b"two".to_vec()])
        .await
        .unwrap();
    stop(spool, h);
    let seg = segment_files(dir.path()).pop().unwrap();
    let good_len = fs::metadata(&seg).unwrap().len();
    // A crash in the middle of the next write: a header and half a payload.
    let mut torn = Vec::new();
    encode(3, b"three-three-three", &mut torn);
    torn.truncate(torn.len() - 5);
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &torn).unwrap();
    drop(f);

    let (spool, h) = start(settings(dir.path()));
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    assert!(
        damaged_copies(dir.path()).is_empty(),
        "a torn write is not damage"
    );
    let seq = spool.append(vec![b"three".to_vec()]).await.unwrap();
    assert_eq!(seq, 3);
    let got: Vec<Vec<u8>> = read_all(&mut spool.reader())
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(
        got,
        vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
    );
    stop(spool, h);
}

/// The `damaged-*.bin` copies recovery left in `dir`.
fn damaged_copies(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("damaged-"))
        })
        .collect();
    names.sort();
    names.iter().map(|p| fs::read(p).unwrap()).collect()
}

/// Flips one byte at `at` of `path`.
fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// A stopped spool in a fresh directory holding records 1..=`n`, record `i` being 30 bytes of
/// `i` (46 with framing), acknowledged up to `acked`; and its last segment.
async fn stopped_spool(n: u8, acked: Option<u64>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (spool, h) = start(settings(dir.path()));
    for i in 1..=n {
        spool.append(vec![vec![i; 30]]).await.unwrap();
    }
    if let Some(seq) = acked {
        spool.ack(seq).unwrap();
    }
    stop(spool, h);
    let seg = segment_files(dir.path()).pop().unwrap();
    (dir, seg)
}

/// Damage on disk is not a torn write: the records after a record that fails its checksum
/// were acknowledged, so recovery keeps them (in a segment split off at the next intact
/// record) and keeps the bad bytes for the operator, instead of truncating them all away.
#[tokio::test]
async fn a_damaged_record_inside_a_segment_loses_only_itself() {
    let (dir, seg) = stopped_spool(10, None).await;
    // Record 4's payload: three records of 46 bytes, then its 16-byte header.
    flip(&seg, 3 * 46 + 16 + 5);

    let (spool, h) = start(settings(dir.path()));
    let got = read_all(&mut spool.reader());
    let seqs: Vec<u64> = got.iter().map(|r| r.0).collect();
    assert_eq!(seqs, [1, 2, 3, 5, 6, 7, 8, 9, 10]);
    assert!(got.iter().all(|(seq, p)| *p == vec![*seq as u8; 30]));
    let copies = damaged_copies(dir.path());
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].len(), 46, "the damaged record's bytes, no more");
    // Writing goes on after the last intact record.
    assert_eq!(spool.append(vec![b"next".to_vec()]).await.unwrap(), 11);
    stop(spool, h);
    // A second start finds nothing more to repair.
    let (spool, h) = start(settings(dir.path()));
    assert_eq!(read_all(&mut spool.reader()).len(), 10);
    assert_eq!(damaged_copies(dir.path()).len(), 1);
    stop(spool, h);
}

/// A whole last record that fails its checksum may be a flipped bit after a clean stop, not a
/// torn write: truncated, but its bytes kept.
#[tokio::test]
async fn a_whole_last_record_failing_its_checksum_is_kept_aside() {
    let (dir, seg) = stopped_spool(5, None).await;
    let len = fs::metadata(&seg).unwrap().len() as usize;
    flip(&seg, len - 1);
    let (spool, h) = start(settings(dir.path()));
    assert_eq!(read_all(&mut spool.reader()).len(), 4);
    // The record as written, its last byte flipped.
    let mut flipped = Vec::new();
    encode(5, &[5u8; 30], &mut flipped);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    assert_eq!(damaged_copies(dir.path()), [flipped]);
    stop(spool, h);
}

/// A bit flipped in the last record's sequence number is damage too (the checksum covers it),
/// and only that record's bytes are kept; once forwarded, the same damage keeps nothing.
#[tokio::test]
async fn a_last_record_with_a_flipped_sequence_is_kept_aside_unless_forwarded() {
    for forwarded in [false, true] {
        let (dir, seg) = stopped_spool(5, forwarded.then_some(5)).await;
        // Record 5's sequence number: four records of 46 bytes, then 8 bytes of header.
        flip(&seg, 4 * 46 + 8);
        let (spool, h) = start(settings(dir.path()));
        let copies = damaged_copies(dir.path());
        if forwarded {
            assert!(copies.is_empty());
        } else {
            assert_eq!(read_all(&mut spool.reader()).len(), 4);
            assert_eq!(copies.len(), 1);
            assert_eq!(copies[0].len(), 46, "that record's bytes, no more");
        }
        stop(spool, h);
    }
}

/// Damage where every record had already been forwarded loses nothing: no copy is kept.
#[tokio::test]
async fn damage_to_records_already_forwarded_keeps_no_copy() {
    let (dir, seg) = stopped_spool(10, Some(6)).await;
    flip(&seg, 2 * 46 + 16 + 5);
    let (spool, h) = start(settings(dir.path()));
    let seqs: Vec<u64> = read_all(&mut spool.reader()).iter().map(|r| r.0).collect();
    assert_eq!(seqs, [7, 8, 9, 10]);
    assert!(damaged_copies(dir.path()).is_empty());
    stop(spool, h);
}

/// A closed segment was synced whole before the next one began, so bad bytes at its end are
/// damage too: its later segments are read as before, and the bytes are kept.
#[tokio::test]
async fn a_damaged_end_of_a_closed_segment_is_kept_aside_and_later_segments_read() {
    let (dir, s, spool, h) = small_segments(12).await;
    stop(spool, h);
    let first = segment_files(dir.path()).remove(0);
    let len = fs::metadata(&first).unwrap().len() as usize;
    flip(&first, len - 3);

    let (spool, h) = start(s);
    let seqs: Vec<u64> = read_all(&mut spool.reader()).iter().map(|r| r.0).collect();
    assert_eq!(seqs, [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert_eq!(damaged_copies(dir.path()).len(), 1);
    stop(spool, h);
}

#[tokio::test]
async fn garbage_after_valid_records_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, h) = start(settings(dir.path()));
    spool.append(vec![b"a".to_vec()]).await.unwrap();
    stop(spool, h);
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0xff; 40]).unwrap();
    drop(f);
    let (spool, h) = start(settings(dir.path()));
    assert_eq!(read_all(&mut spool.reader()).len(), 1);
    stop(spool, h);
}

#[tokio::test]
async fn segments_roll_and_acknowledged_ones_are_trimmed() {
    let (dir, s, spool, h) = small_segments(40).await;
    let before = segment_files(dir.path()).len();
    assert!(before >= 5, "expected several segments, got {before}");
    let mut reader = spool.reader();
    let first = reader.read(20, usize::MAX).unwrap();
    assert_eq!(first.len(), 20);
    spool.ack(20).unwrap();
    let trimmed = eventually(|| segment_files(dir.path()).len() < before);
    assert!(trimmed, "ack trimmed nothing: {before} segments stay");
    assert_eq!(spool.stats().pending_records, 20);
    let rest = read_all(&mut reader);
    assert_eq!(rest.first().map(|r| r.0), Some(21));
    assert_eq!(rest.len(), 20);
    stop(spool, h);

    // After a restart the acknowledged records are not read again.
    let (spool, h) = start(s);
    let again = read_all(&mut spool.reader());
    assert_eq!(again.first().map(|r| r.0), Some(21));
    assert_eq!(again.len(), 20);
    spool.ack(40).unwrap();
    stop(spool, h);
    let (spool, h) = start(settings(dir.path()));
    assert!(read_all(&mut spool.reader()).is_empty());
    assert_eq!(spool.append(vec![b"n".to_vec()]).await.unwrap(), 41);
    stop(spool, h);
}

#[tokio::test]
async fn a_spent_segment_cut_short_by_an_interrupted_deletion_is_removed_at_startup() {
    let (dir, s, spool, h) = small_segments(40).await;
    stop(spool, h);
    // What a crash half way through trimming leaves: the mark says 20, and the oldest
    // segment (all of it acknowledged) has lost the end of its last record.
    mark::Mark::open(dir.path())
        .unwrap()
        .0
        .write(20, true)
        .unwrap();
    let files = segment_files(dir.path());
    let oldest = OpenOptions::new().write(true).open(&files[0]).unwrap();
    let len = oldest.metadata().unwrap().len();
    oldest.set_len(len - 7).unwrap();
    drop(oldest);

    let (spool, h) = start(s);
    assert!(!files[0].exists(), "the spent segment was kept");
    let rest = read_all(&mut spool.reader());
    assert_eq!(rest.first().map(|r| r.0), Some(21));
    assert_eq!(rest.len(), 20);
    assert_eq!(spool.append(vec![b"n".to_vec()]).await.unwrap(), 41);
    stop(spool, h);
}

/// A segment forwarded and recycled (kept as the spare) before a stop is gone from the list,
/// but its records are read at the next start, before the writer's new segment overwrites
/// them, so startup can still remember their ids; once.
#[tokio::test]
async fn a_segment_recycled_before_a_stop_has_its_records_read_at_the_next_start() {
    let (dir, s, spool, h) = small_segments(8).await;
    spool.ack(8).unwrap();
    let spare = format::spare_path(dir.path());
    assert!(eventually(|| spare.exists()), "no spare");
    stop(spool, h);
    let (spool, h) = start(s);
    let seqs = |all: Vec<(u64, Vec<u8>)>| all.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(seqs(spool.take_recycled()), [1, 2, 3, 4]);
    assert!(spool.take_recycled().is_empty());
    assert_eq!(seqs(read_all(&mut spool.tail_reader(10))), [5, 6, 7, 8]);
    assert!(read_all(&mut spool.reader()).is_empty());
    stop(spool, h);
}

#[tokio::test]
async fn a_spent_segment_is_reused_and_its_old_records_are_never_read_again() {
    // Records 1-4 and 5-8 fill two segments.
    let (dir, s, spool, h) = small_segments(8).await;
    let mut reader = spool.reader();
    assert_eq!(read_all(&mut reader).len(), 8);
    spool.ack(8).unwrap();
    let spare = format::spare_path(dir.path());
    assert!(
        eventually(|| spare.exists()),
        "the spent segment was not kept as the spare"
    );

    // The next roll takes the spare: record 9 overwrites the start of old records 1-4.
    assert_eq!(spool.append(vec![vec![b'n'; 50]]).await.unwrap(), 9);
    assert!(!spare.exists(), "the roll did not reuse the spare");
    let reused = segment_path(dir.path(), 9);
    assert_eq!(fs::metadata(&reused).unwrap().len(), 4 * 66);
    let fresh = read_all(&mut reader);
    assert_eq!(fresh.len(), 1);
    assert_eq!((fresh[0].0, fresh[0].1[0]), (9, b'n'));
    stop(spool, h);

    // Recovery stops at the first leftover (sequence 2, older than the segment's 9).
    let (spool, h) = start(s);
    let again = read_all(&mut spool.reader());
    assert_eq!(again.iter().map(|r| r.0).collect::<Vec<_>>(), [9]);
    assert_eq!(fs::metadata(&reused).unwrap().len(), 66);
    assert_eq!(spool.append(vec![b"m".to_vec()]).await.unwrap(), 10);
    stop(spool, h);
}

#[tokio::test]
async fn a_full_spool_refuses_and_frees_space_after_ack() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_bytes = 1000;
    s.segment_bytes = 200;
    let (spool, h) = start(s);
    let mut accepted = 0u64;
    let err = loop {
        match spool.append(vec![vec![0u8; 84]]).await {
            Ok(seq) => accepted = seq,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, SpoolError::Full { .. }), "{err:?}");
    assert_eq!(err.code(), "spool_full");
    assert!(accepted >= 8, "accepted only {accepted}");
    let got = read_all(&mut spool.reader());
    assert_eq!(got.len() as u64, accepted);
    spool.ack(accepted).unwrap();
    spool.append(vec![vec![0u8; 84]]).await.unwrap();
    stop(spool, h);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, h) = start(settings(dir.path()));
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            spool.append(vec![i.to_le_bytes().to_vec()]).await.unwrap()
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 200);
    let syncs = spool.stats().syncs;
    assert!(
        syncs < 200,
        "no group commit: {syncs} syncs for 200 appends"
    );
    stop(spool, h);
}

#[tokio::test]
async fn an_oversized_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_bytes = 64 * 1024 * 1024;
    let (spool, h) = start(s);
    let err = spool
        .append(vec![vec![0u8; MAX_RECORD_BYTES + 1]])
        .await
        .unwrap_err();
    assert!(matches!(err, SpoolError::TooLarge { .. }));
    stop(spool, h);
}

/// A spool whose every record was forwarded before a crash still has its last records at
/// the next start, for startup to remember their ids (a drained spool is the usual state);
/// the forwarder does not read them again, and the next acknowledgement trims them.
#[tokio::test]
async fn a_drained_spool_keeps_its_last_records_readable_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, h) = start(settings(dir.path()));
    for i in 0..3u8 {
        spool.append(vec![vec![i; 20]]).await.unwrap();
    }
    spool.ack(3).unwrap();
    stop(spool, h);
    let seqs = |all: Vec<(u64, Vec<u8>)>| all.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    // Twice: a restart without traffic leaves an empty segment after the kept one.
    for _ in 0..2 {
        let (spool, h) = start(settings(dir.path()));
        assert_eq!(seqs(read_all(&mut spool.tail_reader(10))), [1, 2, 3]);
        stop(spool, h);
    }
    let (spool, h) = start(settings(dir.path()));
    assert!(read_all(&mut spool.reader()).is_empty());
    spool.append(vec![vec![9; 20]]).await.unwrap();
    assert_eq!(seqs(read_all(&mut spool.reader())), [4]);
    spool.ack(4).unwrap();
    let first = segment_path(dir.path(), 1);
    assert!(
        eventually(|| !first.exists()),
        "the spent segment was not trimmed"
    );
    stop(spool, h);
}

/// The tail reader reads the last records whether the forwarder acknowledged them or not,
/// as far as their segments are still on disk; the forwarder's reader still starts past
/// the acknowledged ones.
#[tokio::test]
async fn the_tail_reader_reads_the_last_records_acknowledged_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, h) = start(settings(dir.path()));
    for i in 0..10u8 {
        spool.append(vec![vec![i; 20]]).await.unwrap();
    }
    spool.ack(7).unwrap();
    let seqs = |all: Vec<(u64, Vec<u8>)>| all.into_iter().map(|(s, _)| s).collect::<Vec<_>>();
    assert_eq!(seqs(read_all(&mut spool.tail_reader(4))), [7, 8, 9, 10]);
    assert_eq!(
        seqs(read_all(&mut spool.tail_reader(100))),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(seqs(read_all(&mut spool.reader())), [8, 9, 10]);
    assert!(read_all(&mut spool.tail_reader(0)).is_empty());
    stop(spool, h);
}

#[test]
fn a_spool_whose_writer_has_stopped_is_not_writable() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, handle) = start(settings(dir.path()));
    assert!(spool.is_writable());
    stop(spool.clone(), handle);
    assert!(!spool.is_writable());
}
