//! End-to-end load harness: drives the real `hookgate` binary over HTTP/1.1 keep-alive with
//! correctly signed, unique requests for a mix of the five vendors, at a sweep of closed-loop
//! concurrencies and at fixed open-loop arrival rates, then checks that every accepted event
//! arrived exactly once downstream.
//!
//! Run: `cargo bench --bench load` (see BENCHMARKS.md for the knobs). Environment:
//! - `LOAD_STEP_SECS` seconds per step (default 10);
//! - `LOAD_CONCURRENCY` comma list (default `1,8,64,256`);
//! - `LOAD_RATES` open-loop requests/s comma list (default `1000,5000`);
//! - `LOAD_MODE` comma list of `jsonl` (default: the JSON-lines file), `spool` and `direct`
//!   (Kafka: a tansu broker is started on a free loopback port, one topic per mode, and the
//!   topic is consumed from offset 0 afterwards to check exactly-once);
//! - `LOAD_PARTITIONS` partitions of each Kafka topic (default 3);
//! - `LOAD_MIX` `all` (default: the five vendors) or one vendor name;
//! - `LOAD_BIN` path of the `hookgate` binary to drive (default: this build's);
//! - `LOAD_VERIFY=0` skips the downstream read-back (e.g. a long soak, where reading millions
//!   of records back from tansu would take longer than the run);
//! - `LOAD_KAFKA` extra `[kafka]` config lines for the Kafka modes, e.g. `linger_ms = 20`
//!   (a literal `\n` separates lines); `LOAD_SPOOL` the same for `[spool]`, `LOAD_DEDUP` for
//!   `[dedup]` in every mode (e.g. `max_entries = 50000\njournal_path = "{dir}/dedup.journal"`:
//!   `{dir}` is the gateway's temporary directory);
//! - `LOAD_BROKER_STORAGE` `sqlite` (default) or `memory`: tansu's storage engine (`memory`
//!   needs tansu built with its `dynostore` feature; see BENCHMARKS.md);
//! - `LOAD_SLOW_MS` prints each open-loop request slower than this many milliseconds to
//!   stderr (when it was due, how late it was sent, when it was answered): stalls show as
//!   runs of requests due close together and answered together;
//!
//! Latency of an open-loop request is measured from its *intended* send time, so a stalled
//! server cannot hide its queueing (no coordinated omission).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const HW_SECRET: &str = "whsec_load_hyprwatch";
/// Svix secret: `whsec_` + base64 of 32 bytes.
const SVIX_KEY: [u8; 32] = [7u8; 32];

/// One prebuilt request.
#[derive(Clone)]
struct Req {
    path: String,
    headers: Vec<(String, String)>,
    body: bytes::Bytes,
    /// The id the event must carry downstream (`metadata.uid`).
    uid: String,
    /// The whole request as sent (see [`wire`]); filled in after building.
    wire: bytes::Bytes,
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

fn svix_sign(id: &str, ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&SVIX_KEY).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// The dedup id of an event from a vendor that sends none: the documented content hash,
/// `sha256_hex(prefix + "\n" + canonical JSON)` (keys sorted, compact), computed here
/// independently of hookgate so the read-back can find every accepted event, not only those
/// that carry a vendor id.
fn content_uid(prefix: &str, body: &str) -> String {
    use sha2::Digest;
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    let canonical = canonical_json(&value);
    let mut hasher = Sha256::new();
    hasher.update(prefix.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

/// Keys sorted by code point at every level, no whitespace, non-ASCII as is.
fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical_json(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        scalar => scalar.to_string(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The vendors this build of the harness can sign for. Each entry: (name, config block, builder).
fn vendors() -> Vec<(&'static str, String)> {
    let svix_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SVIX_KEY)
    );
    vec![
        (
            "hyprwatch",
            format!(
                "[[source]]\nname = \"hyprwatch\"\nvendor = \"hyprwatch\"\npath = \"/ingest/hyprwatch\"\nauth = [{{ kind = \"hmac\", secrets = [\"{HW_SECRET}\"] }}]\n"
            ),
        ),
        (
            "hoop",
            format!(
                "[[source]]\nname = \"hoop\"\nvendor = \"hoop\"\npath = \"/ingest/hoop\"\nauth = [{{ kind = \"svix\", secrets = [\"{svix_secret}\"] }}]\n"
            ),
        ),
        (
            "hypr",
            "[[source]]\nname = \"hypr\"\nvendor = \"hypr\"\npath = \"/ingest/hypr\"\nauth = [{ kind = \"bearer\", tokens = [\"load-api-key-0123456789\"] }]\n".to_owned(),
        ),
        (
            "connectsecure",
            "[[source]]\nname = \"connectsecure\"\nvendor = \"connectsecure\"\npath = \"/ingest/connectsecure\"\nauth = [{ kind = \"header\", name = \"X-API-Key\", values = [\"load-header-secret-0123\"] }]\n".to_owned(),
        ),
        (
            "hyperproof",
            "[[source]]\nname = \"hyperproof\"\nvendor = \"hyperproof\"\npath = \"/ingest/hyperproof\"\nauth = [{ kind = \"path_token\", tokens = [\"0f5c2b8e9a7d4c1e8b3a6f9d2c5e8b1a\"] }]\n".to_owned(),
        ),
    ]
}

fn build_request(vendor: &str, n: usize, run: &str) -> Req {
    match vendor {
        "hyprwatch" => {
            let uid = format!("evt_{run}_{n}");
            let body = format!(
                r#"{{"id":"{uid}","event":"host.online","timestamp":"2024-01-15T10:35:00Z","data":{{"host_id":"h_{n}","hostname":"server-{n}","platform":"linux","last_seen":"2024-01-15T10:35:00Z","previous_state":"offline","offline_duration_seconds":3600}}}}"#
            );
            let sig = format!("sha256={}", hmac_hex(HW_SECRET.as_bytes(), body.as_bytes()));
            Req {
                path: "/ingest/hyprwatch".into(),
                headers: vec![("x-hyprwatch-signature".into(), sig)],
                body: body.into(),
                uid,
                wire: bytes::Bytes::new(),
            }
        }
        "hoop" => {
            let uid = format!("msg_{run}_{n}");
            let body = format!(
                r#"{{"event_type":"session.open","id":"{n:08}-aaaa-bbbb-cccc-000000000000","user_id":"u1","user_email":"jane@example.com","connection":"pg-prod","connection_type":"database","connection_envs":null,"input":"U0VMRUNUIDE7","is_input_truncated":false,"input_size":9,"input_envs":null,"has_input_args":false,"review":null,"command":["psql"],"verb":"exec"}}"#
            );
            let ts = now_secs();
            let sig = svix_sign(&uid, ts, body.as_bytes());
            Req {
                path: "/ingest/hoop".into(),
                headers: vec![
                    ("svix-id".into(), uid.clone()),
                    ("svix-timestamp".into(), ts.to_string()),
                    ("svix-signature".into(), sig),
                ],
                body: body.into(),
                uid,
                wire: bytes::Bytes::new(),
            }
        }
        "hypr" => {
            let uid = format!("{}", 409_878_875_789_426_688u64 + n as u64);
            let body = format!(
                r#"{{"version":"0","id":"e0932981-65a5-1344-f27e-{n:012}","detail-type":"log","source":"hypr_event_hooks","account":"527127228484","time":"2024-07-23T16:01:04Z","region":"us-east-1","resources":[],"detail":{{"data":{{"id":"{uid}","version":4,"type":"AUDIT","eventName":"FIDO2_DEVICE_REG_COMPLETE","message":"FIDO2 key registered","subName":"/devicemanager/fido2/controlCenterAdmin/attestation/result","eventLoggedBy":"RELYING_PARTY_SERVER","eventTimeInUTC":1721750476896,"loggedTimeInUTC":1721750477452,"tenantId":"mytenant","remoteIP":"76.167.160.255","userAgent":"Mozilla/5.0","traceId":"33935e685859881d","additionalDetails":{{}},"deviceType":"WEBAUTHN","rpAppId":"controlCenterAdmin","sessionId":"s_{n}","machineUserName":"example@hypr.com","deviceOS":"fido2","serverRelVersion":"9.3.33","origin":"localregion","eventTags":"REGISTRATION","isSuccessful":true}},"dataSource":"cc","date":"20240723","hour":"16","customerUuid":"c","tenantUuid":"t","eventTags":["REGISTRATION"]}}}}"#
            );
            Req {
                path: "/ingest/hypr".into(),
                headers: vec![(
                    "authorization".into(),
                    "Bearer load-api-key-0123456789".into(),
                )],
                body: body.into(),
                uid,
                wire: bytes::Bytes::new(),
            }
        }
        "connectsecure" => {
            let body = format!(
                r#"{{"subject":"Login Failure","body":"Login Failure for user{run}{n} With IPAddress 203.0.113.10 on service AzureAD at 2024-01-15 10:30:00 UTC"}}"#
            );
            Req {
                path: "/ingest/connectsecure".into(),
                headers: vec![("x-api-key".into(), "load-header-secret-0123".into())],
                uid: content_uid("connectsecure", &body),
                body: body.into(),
                wire: bytes::Bytes::new(),
            }
        }
        _ => {
            let body = format!(
                r#"{{"time":"2024-11-08T15:48:27.{n:06}Z","email":"name{run}@example.com","description":"John Smith manually set testing status of this control to \"In Progress\"","objectType":"control","objectId":"257a4635-e789-11ee-b2cd-aabc1286f241"}}"#
            );
            Req {
                path: "/ingest/hyperproof/0f5c2b8e9a7d4c1e8b3a6f9d2c5e8b1a".into(),
                headers: vec![],
                uid: content_uid("hyperproof", &body),
                body: body.into(),
                wire: bytes::Bytes::new(),
            }
        }
    }
}

struct Gateway {
    child: Child,
    addr: String,
    events_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(sources: &str, extra: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let events_path = dir.path().join("events.jsonl");
    // `{dir}` in `extra` is this gateway's own temporary directory (e.g. for the spool).
    let extra = extra.replace("{dir}", &dir.path().display().to_string());
    // One load generator on one address stands for every vendor: its share of the in-flight
    // cap is the whole cap, as before the per-address share existed (builds since the twentieth
    // session; an older `LOAD_BIN` refuses the key).
    let config = format!(
        "[listener]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.1:0\"\n[sink]\npath = {:?}\n[telemetry]\nlog_level = \"warn,hookgate::app=info\"\n[limits]\nmax_in_flight_per_address = 256\n{extra}\n{sources}",
        events_path.display().to_string()
    );
    let config_path = dir.path().join("hookgate.toml");
    std::fs::write(&config_path, config).unwrap();
    // `LOAD_BIN` runs another build (e.g. a saved binary of an older commit, for a before/after).
    let bin =
        std::env::var("LOAD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hookgate").to_owned());
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find(" listening on ") {
                if !line.contains("admin listening") {
                    let rest = &line[at + " listening on ".len()..];
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
            if line.contains("ERROR") || line.contains("error") {
                eprintln!("hookgate: {line}");
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("hookgate did not start");
    Gateway {
        child,
        addr,
        events_path,
        _dir: dir,
    }
}

/// (utime + stime) in seconds of `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields after the comm: state is [0]; utime is field 14 overall → index 11 here.
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

/// A memory field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …) in MB.
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Current resident set of `pid` in MB.
fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS")
}

/// Samples `pid`'s RSS ten times over a step of `secs` (so a soak shows whether memory is
/// flat) until the returned flag is set; join the handle for the `(seconds, MB)` series.
fn sample_rss(
    pid: u32,
    secs: u64,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Vec<(f64, f64)>>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let every = Duration::from_millis((secs * 100).max(500));
    let handle = std::thread::spawn(move || {
        let started = Instant::now();
        let mut series = Vec::new();
        let mut next = started;
        while !flag.load(Ordering::Relaxed) {
            if Instant::now() >= next {
                series.push((started.elapsed().as_secs_f64(), rss_mb(pid)));
                next += every;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        series
    });
    (stop, handle)
}

/// Peak resident set of `pid` in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmHWM")
}

#[derive(Default)]
struct StepResult {
    ok: usize,
    failed: usize,
    statuses: HashMap<u16, usize>,
    latencies_us: Vec<u64>,
    /// Open loop: how late each request was sent after its due time (the generator's lag).
    send_lag_us: Vec<u64>,
    accepted_uids: Vec<String>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

/// The request's exact HTTP/1.1 bytes (head and body), built once before the run so the
/// generator spends its CPU on sending, not on formatting. hookgate routes by path only, so the
/// `Host` value does not matter.
fn wire(req: &Req) -> bytes::Bytes {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: hookgate\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        req.path,
        req.body.len()
    );
    for (k, v) in &req.headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = Vec::with_capacity(head.len() + req.body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&req.body);
    out.into()
}

/// One keep-alive HTTP/1.1 connection speaking just enough of the protocol for hookgate's
/// answers (status line, `content-length` body). A much cheaper client than a general one,
/// which matters when generator and gateway share two cores.
struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> std::io::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Sends one request and reads its answer; returns the status code.
    async fn send(&mut self, wire: &[u8]) -> std::io::Result<u16> {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(wire).await?;
        self.buf.clear();
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).unwrap_or_default();
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                // Keep-alive: nothing else is in flight on this connection, so the buffer ends
                // exactly at this answer.
                return Ok(status);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Svix refuses a timestamp more than 5 minutes old; a prebuilt Hoop request older than this
/// is signed again just before it is sent (long soaks only).
const SVIX_RESIGN_AFTER_SECS: u64 = 240;

/// `req` itself, or for a Hoop request whose Svix timestamp is getting stale, the same
/// request signed now.
fn fresh(req: &Req) -> std::borrow::Cow<'_, Req> {
    let stale = req.headers.iter().any(|(k, v)| {
        k == "svix-timestamp"
            && v.parse::<u64>()
                .is_ok_and(|ts| now_secs().saturating_sub(ts) > SVIX_RESIGN_AFTER_SECS)
    });
    if !stale {
        return std::borrow::Cow::Borrowed(req);
    }
    let ts = now_secs();
    let mut again = req.clone();
    again.headers = vec![
        ("svix-id".into(), req.uid.clone()),
        ("svix-timestamp".into(), ts.to_string()),
        ("svix-signature".into(), svix_sign(&req.uid, ts, &req.body)),
    ];
    again.wire = wire(&again);
    std::borrow::Cow::Owned(again)
}

/// Sends `req` on `conn`, reconnecting once if the server closed the connection.
async fn send(conn: &mut Option<Conn>, addr: &str, req: &Req) -> Result<u16, ()> {
    let req = fresh(req);
    for _ in 0..2 {
        if conn.is_none() {
            *conn = Conn::open(addr).await.ok();
        }
        let Some(c) = conn.as_mut() else {
            return Err(());
        };
        match c.send(&req.wire).await {
            Ok(status) => return Ok(status),
            Err(_) => *conn = None,
        }
    }
    Err(())
}

/// Closed loop: `concurrency` workers, each on its own keep-alive connection, for `secs`.
async fn closed_loop(
    addr: &str,
    requests: Arc<Vec<Req>>,
    next: Arc<AtomicUsize>,
    concurrency: usize,
    secs: u64,
) -> StepResult {
    let result = Arc::new(Mutex::new(StepResult::default()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let requests = Arc::clone(&requests);
        let next = Arc::clone(&next);
        let result = Arc::clone(&result);
        let addr = addr.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            let mut local = StepResult::default();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                let started = Instant::now();
                let status = send(&mut conn, &addr, req).await;
                local
                    .latencies_us
                    .push(started.elapsed().as_micros() as u64);
                record(&mut local, req, status);
            }
            merge(&result, local);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(result).ok().unwrap().into_inner().unwrap()
}

/// Most requests an open-loop step keeps in flight (one connection each). Past this many the
/// server is far behind; later requests then start late, and their latency, measured from the
/// intended send time, shows it.
const OPEN_LOOP_CONNECTIONS: usize = 512;

/// Releases an open-loop step's requests from a thread of its own: request k (from 0 to
/// `total`) is due at `start + k/rate`, and its due time goes to `due` once that time has
/// come. The thread sleeps with `nanosleep` at a 1 µs timer slack, so a request is released
/// within some tens of microseconds of its time. Not tokio's timer: it fires on a 1 ms wheel,
/// which released every request up to a millisecond late, `rate/1000` at a time, and charged
/// that delay and that burst to the gateway's latency.
fn pace(
    start: Instant,
    rate: u64,
    total: u64,
    due: tokio::sync::mpsc::UnboundedSender<Instant>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Best effort: without it the default 50 µs slack applies, and the lag shows it.
        let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
        for k in 0..total {
            let at = start + Duration::from_nanos(k * 1_000_000_000 / rate);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if due.send(at).is_err() {
                break;
            }
        }
    })
}

/// Open loop: requests issued at a fixed `rate` per second for `secs`, whatever the answers.
/// Request k is due at `start + k/rate` ([`pace`]); its latency counts from then, not from
/// when a connection was free to send it (no coordinated omission). How late each request
/// was sent after its due time is kept too (`send_lag_us`): the generator's own share.
async fn open_loop(
    addr: &str,
    requests: Arc<Vec<Req>>,
    next: Arc<AtomicUsize>,
    rate: u64,
    secs: u64,
) -> StepResult {
    let result = Arc::new(Mutex::new(StepResult::default()));
    let total = rate * secs;
    let workers = OPEN_LOOP_CONNECTIONS.min(total as usize).max(1);
    // Connections are opened before the clock starts, as wrk2 does, and given a moment to be
    // accepted: vendors' senders keep theirs alive, so a step measures requests, not handshakes.
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        conns.push(Conn::open(addr).await.ok());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slow_us = std::env::var("LOAD_SLOW_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| ms * 1000);
    let (due_tx, due_rx) = tokio::sync::mpsc::unbounded_channel();
    // One waiting connection at a time takes the next due request.
    let due_rx = Arc::new(tokio::sync::Mutex::new(due_rx));
    let start = Instant::now();
    if slow_us.is_some() {
        // Wall clock of the step's start, to line slow requests up with other recorders.
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!("slow: step started at unix {:.3} s", epoch.as_secs_f64());
    }
    let pacer = pace(start, rate, total, due_tx);
    let mut tasks = Vec::with_capacity(workers);
    for mut conn in conns {
        let (requests, next, result, due_rx) = (
            Arc::clone(&requests),
            Arc::clone(&next),
            Arc::clone(&result),
            Arc::clone(&due_rx),
        );
        let addr = addr.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut local = StepResult::default();
            loop {
                let due = due_rx.lock().await.recv().await;
                let Some(intended) = due else { break };
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = requests.get(i) else { break };
                let sent = Instant::now();
                let status = send(&mut conn, &addr, req).await;
                let latency_us = intended.elapsed().as_micros() as u64;
                if slow_us.is_some_and(|slow| latency_us > slow) {
                    eprintln!(
                        "slow: due at {:.1} ms, sent {:.1} ms late, answered after {:.1} ms: {status:?}",
                        (intended - start).as_secs_f64() * 1e3,
                        (sent - intended).as_secs_f64() * 1e3,
                        latency_us as f64 / 1e3,
                    );
                }
                local.latencies_us.push(latency_us);
                local
                    .send_lag_us
                    .push(sent.saturating_duration_since(intended).as_micros() as u64);
                record(&mut local, req, status);
            }
            merge(&result, local);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = pacer.join();
    Arc::try_unwrap(result).ok().unwrap().into_inner().unwrap()
}

fn record(local: &mut StepResult, req: &Req, status: Result<u16, ()>) {
    match status {
        Ok(s) => {
            *local.statuses.entry(s).or_default() += 1;
            if (200..300).contains(&s) {
                local.ok += 1;
                if !req.uid.is_empty() {
                    local.accepted_uids.push(req.uid.clone());
                }
            } else {
                local.failed += 1;
            }
        }
        Err(()) => local.failed += 1,
    }
}

fn merge(into: &Mutex<StepResult>, local: StepResult) {
    let mut r = into.lock().unwrap();
    r.ok += local.ok;
    r.failed += local.failed;
    for (k, v) in local.statuses {
        *r.statuses.entry(k).or_default() += v;
    }
    r.latencies_us.extend(local.latencies_us);
    r.send_lag_us.extend(local.send_lag_us);
    r.accepted_uids.extend(local.accepted_uids);
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Where accepted events must show up, and how the harness reads them back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// `[sink]` JSON-lines file, synced per group commit (the embedded default).
    Jsonl,
    /// `[delivery] mode = "spool"`: 2xx once in the local spool; a forwarder publishes to Kafka.
    Spool,
    /// `[delivery] mode = "direct"`: 2xx once Kafka acknowledged.
    Direct,
}

impl Mode {
    fn parse(name: &str) -> Mode {
        match name.trim() {
            "jsonl" => Mode::Jsonl,
            "spool" => Mode::Spool,
            "direct" => Mode::Direct,
            other => panic!("LOAD_MODE: unknown mode {other:?} (jsonl, spool, direct)"),
        }
    }

    fn uses_kafka(self) -> bool {
        self != Mode::Jsonl
    }
}

/// Where the test broker keeps records (`LOAD_BROKER_STORAGE`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// `sqlite` (default): tansu's SQLite engine, one file, statements per record and header.
    Sqlite,
    /// `memory`: tansu's in-memory engine; records live in the broker process, as a Kafka
    /// broker's appends live in the page cache until flushed.
    Memory,
}

impl Storage {
    fn url(self) -> &'static str {
        match self {
            Storage::Sqlite => "sqlite://tansu.db",
            Storage::Memory => "memory://tansu/",
        }
    }
}

fn broker_storage() -> Storage {
    match std::env::var("LOAD_BROKER_STORAGE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Storage::Sqlite,
        Ok("memory") => Storage::Memory,
        Ok(other) => panic!("LOAD_BROKER_STORAGE: unknown storage {other:?} (sqlite, memory)"),
    }
}

/// A tansu broker (Kafka protocol) on a free loopback port, killed on drop.
struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("tcp://{addr}");
    // tansu resolves the sqlite:// path against its working directory: run it in the temp dir.
    let child = Command::new("tansu")
        .current_dir(dir.path())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", broker_storage().url()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu must be on PATH for the Kafka modes");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "tansu did not start on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    if broker_storage() == Storage::Sqlite {
        index_tansu_headers(&dir.path().join("tansu.db"));
    }
    Broker {
        child,
        addr,
        _dir: dir,
    }
}

/// tansu 0.6 with SQLite storage has no index on its `header` table, so every record it
/// serves to a consumer scans all header rows (hookgate writes six per event): reading a
/// load run back takes minutes and starves the producer meanwhile. This is the test broker's
/// cost, not the gateway's, so the harness adds the missing index (SQLite allows a second
/// connection) before any record is written; the produce path is unchanged.
fn index_tansu_headers(db: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let script = "import sqlite3,sys\n\
c=sqlite3.connect(sys.argv[1],timeout=10)\n\
c.execute('create index if not exists hookgate_load_header on header(topition, offset_id)')\n\
c.commit()\n";
    loop {
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(db)
            .output()
            .expect("python3 runs the SQLite statement");
        if out.status.success() {
            return;
        }
        // The schema may not exist yet right after the port opened.
        assert!(
            Instant::now() < deadline,
            "cannot index tansu's header table: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn create_topic(broker: &Broker, name: &str, partitions: u64) {
    let status = Command::new("tansu")
        .args(["topic", "create", name, "--broker"])
        .arg(format!("tcp://{}", broker.addr))
        .args(["--partitions", &partitions.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "tansu topic create {name} failed");
}

/// Every message key of `topic` from offset 0, with its count. Reads until at least
/// `at_least` messages arrived and nothing new came for 3 s (so late duplicates are seen
/// too), or `timeout` passed.
fn kafka_keys(
    brokers: &str,
    topic: &str,
    at_least: usize,
    timeout: Duration,
) -> HashMap<String, usize> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("hookgate-load-verify-{topic}"))
        .set("enable.auto.commit", "false")
        // tansu answers a fetch with few records; ask again at once rather than after the
        // default 500 ms wait, or reading back a run takes minutes.
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p as i32, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut keys: HashMap<String, usize> = HashMap::new();
    let mut total = 0usize;
    let deadline = Instant::now() + timeout;
    let mut last_new = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                *keys.entry(key).or_default() += 1;
                total += 1;
                last_new = Instant::now();
            }
            Some(Err(e)) => eprintln!("  consumer: {e}"),
            None => {}
        }
        if total >= at_least && last_new.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    keys
}

fn jsonl_uids(events_path: &Path) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let text = std::fs::read_to_string(events_path).unwrap_or_default();
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(uid) = v["metadata"]["uid"].as_str() {
                *seen.entry(uid.to_owned()).or_default() += 1;
            }
        }
    }
    seen
}

/// (distinct events downstream, accepted ids missing, ids delivered more than once).
fn exactly_once(seen: &HashMap<String, usize>, accepted: &[String]) -> (usize, usize, usize) {
    let missing = accepted.iter().filter(|u| !seen.contains_key(*u)).count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    (seen.len(), missing, duplicated)
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: a load run is not a test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("load harness: skipped (run it with `cargo bench --bench load`)");
        return;
    }
    let secs: u64 = std::env::var("LOAD_STEP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let concurrencies = env_list("LOAD_CONCURRENCY", "1,8,64,256");
    let rates = env_list("LOAD_RATES", "1000,5000");
    let partitions = env_list("LOAD_PARTITIONS", "3")
        .first()
        .copied()
        .unwrap_or(3);
    let modes: Vec<Mode> = std::env::var("LOAD_MODE")
        .unwrap_or_else(|_| "jsonl".to_owned())
        .split(',')
        .map(Mode::parse)
        .collect();
    let mix = std::env::var("LOAD_MIX").unwrap_or_else(|_| "all".to_owned());
    let verify = !matches!(std::env::var("LOAD_VERIFY").as_deref(), Ok("0"));
    // Extra `[kafka]` lines, e.g. `linger_ms = 20` (`\n` separates several).
    let kafka_extra = std::env::var("LOAD_KAFKA")
        .unwrap_or_default()
        .replace("\\n", "\n");
    // Extra `[spool]` lines, e.g. `segment_bytes = 1073741824`.
    let spool_extra = std::env::var("LOAD_SPOOL")
        .unwrap_or_default()
        .replace("\\n", "\n");
    // Extra `[dedup]` lines, every mode.
    let dedup_extra = match std::env::var("LOAD_DEDUP") {
        Ok(lines) => format!("[dedup]\n{}\n", lines.replace("\\n", "\n")),
        Err(_) => String::new(),
    };
    let vendors: Vec<(&str, String)> = vendors()
        .into_iter()
        .filter(|(name, _)| mix == "all" || mix == *name)
        .collect();
    let sources: String = vendors
        .iter()
        .map(|(_, block)| block.as_str())
        .collect::<Vec<_>>()
        .join("\n");

    // Enough unique requests for every step of every mode at a generous rate.
    let per_mode = concurrencies.len() as u64 * secs * 30_000 + rates.iter().sum::<u64>() * secs;
    let budget = (per_mode * modes.len() as u64) as usize;
    let run = format!("{:x}", now_secs());
    eprintln!(
        "prebuilding {budget} signed requests for {:?}",
        vendors.iter().map(|v| v.0).collect::<Vec<_>>()
    );
    let requests: Arc<Vec<Req>> = Arc::new(
        (0..budget)
            .map(|n| {
                let mut req = build_request(vendors[n % vendors.len()].0, n, &run);
                req.wire = wire(&req);
                // Only the wire bytes are sent; don't hold the body twice (except Hoop's,
                // which a long run signs again, see `fresh`).
                if !req.headers.iter().any(|(k, _)| k == "svix-id") {
                    req.body = bytes::Bytes::new();
                }
                req
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let broker = modes.iter().any(|m| m.uses_kafka()).then(start_broker);

    for mode in modes {
        let topic = format!("load.{run}.{mode:?}").to_lowercase();
        let extra = match (&broker, mode) {
            (Some(b), Mode::Spool | Mode::Direct) => {
                create_topic(b, &topic, partitions);
                create_topic(b, &format!("{topic}.dlq"), 1);
                format!(
                    "[delivery]\nmode = {:?}\n[kafka]\nbrokers = {:?}\ntopic = {topic:?}\ndead_letter_topic = \"{topic}.dlq\"\n{kafka_extra}\n[spool]\ndir = \"{{dir}}/spool\"\n{spool_extra}\n",
                    format!("{mode:?}").to_lowercase(),
                    b.addr
                )
            }
            _ => String::new(),
        } + &dedup_extra;
        let gw = start_gateway(&sources, &extra);
        let pid = gw.child.id();
        eprintln!("mode {mode:?}: hookgate pid {pid} on {}", gw.addr);
        let broker_pid = broker.as_ref().map(|b| b.child.id());
        println!("\n### mode: {mode:?}\n");
        println!("| load | requests/s | ok | failed | p50 ms | p99 ms | p99.9 ms | max ms | hookgate CPU ms / 1000 req | broker CPU ms / 1000 req | load generator CPU ms / 1000 req |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let mut accepted_ids = Vec::new();
        let mut accepted = 0usize;
        let mut steps: Vec<(String, u64)> = concurrencies
            .iter()
            .map(|c| (format!("closed c={c}"), *c))
            .collect();
        steps.extend(rates.iter().map(|r| (format!("open {r}/s"), *r)));
        for (label, n) in steps {
            let cpu_before = cpu_seconds(pid);
            let broker_before = broker_pid.map(cpu_seconds).unwrap_or(0.0);
            // The harness's own CPU: on a shared box it is the third claimant of the cores.
            let generator_before = cpu_seconds(std::process::id());
            let started = Instant::now();
            let (rss_stop, rss_series) = sample_rss(pid, secs);
            let requests = Arc::clone(&requests);
            let next = Arc::clone(&next);
            let mut result = if label.starts_with("closed") {
                rt.block_on(closed_loop(&gw.addr, requests, next, n as usize, secs))
            } else {
                rt.block_on(open_loop(&gw.addr, requests, next, n, secs))
            };
            let elapsed = started.elapsed().as_secs_f64();
            let cpu = cpu_seconds(pid) - cpu_before;
            let broker_cpu = broker_pid.map(cpu_seconds).unwrap_or(0.0) - broker_before;
            let generator_cpu = cpu_seconds(std::process::id()) - generator_before;
            result.latencies_us.sort_unstable();
            let l = &result.latencies_us;
            let per_1000 = |s: f64| {
                if result.ok > 0 {
                    s / result.ok as f64 * 1_000_000.0
                } else {
                    0.0
                }
            };
            println!(
                "| {label} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} | {:.0} |",
                result.ok as f64 / elapsed,
                result.ok,
                result.failed,
                percentile(l, 0.50),
                percentile(l, 0.99),
                percentile(l, 0.999),
                percentile(l, 1.0),
                per_1000(cpu),
                if broker_pid.is_some() {
                    format!("{:.0}", per_1000(broker_cpu))
                } else {
                    "–".to_owned()
                },
                per_1000(generator_cpu),
            );
            if result.failed > 0 {
                eprintln!("  statuses: {:?}", result.statuses);
            }
            if !result.send_lag_us.is_empty() {
                // Part of every latency above; large values mean the generator, not the
                // gateway, was late.
                result.send_lag_us.sort_unstable();
                let lag = &result.send_lag_us;
                println!(
                    "  {label}: sent after its due time by p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                    percentile(lag, 0.50),
                    percentile(lag, 0.99),
                    percentile(lag, 1.0),
                );
            }
            rss_stop.store(true, Ordering::Relaxed);
            let series = rss_series.join().unwrap_or_default();
            if secs >= 60 {
                let points: Vec<String> = series
                    .iter()
                    .map(|(t, mb)| format!("{t:.0} s: {mb:.1} MB"))
                    .collect();
                println!("  RSS over {label}: {}", points.join(", "));
            }
            accepted += result.ok;
            accepted_ids.extend(result.accepted_uids);
        }
        println!("\npeak RSS of hookgate: {:.1} MB", peak_rss_mb(pid));
        if !verify {
            println!("downstream check ({mode:?}): skipped (LOAD_VERIFY=0)");
            drop(gw);
            continue;
        }
        let drain_started = Instant::now();
        let seen = match (&broker, mode) {
            (Some(b), Mode::Spool | Mode::Direct) => {
                // tansu serves a read-back at a few thousand records/s: allow for the run's size.
                let limit = Duration::from_secs(300 + accepted as u64 / 1000);
                kafka_keys(&b.addr, &topic, accepted, limit)
            }
            _ => {
                // The file is complete once the last answer came: every 2xx was synced first.
                jsonl_uids(&gw.events_path)
            }
        };
        let (distinct, missing, duplicated) = exactly_once(&seen, &accepted_ids);
        println!(
            "downstream check ({mode:?}): {distinct} distinct events for {accepted} accepted requests (read back in {:.1} s); of {} accepted id-carrying events, {missing} missing, {duplicated} duplicated",
            drain_started.elapsed().as_secs_f64(),
            accepted_ids.len()
        );
        assert_eq!(missing, 0, "accepted events missing downstream");
        assert_eq!(duplicated, 0, "events delivered more than once");
        drop(gw);
    }
}
