//! Kafka and Redis helpers for the delivery scenarios: the shared broker from the environment,
//! a private tansu broker a test may stop and restart, and a consumer that reads a topic from
//! offset 0 (tansu's high watermarks are not trusted).

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The shared broker (`HOOKGATE_TEST_KAFKA`), or a loud skip.
pub fn shared_broker(test: &str) -> Option<String> {
    let v = std::env::var("HOOKGATE_TEST_KAFKA").ok();
    if v.is_none() {
        eprintln!("SKIPPED (no HOOKGATE_TEST_KAFKA): {test}");
    }
    v
}

/// The shared Redis (`HOOKGATE_TEST_REDIS`), or a loud skip.
pub fn shared_redis(test: &str) -> Option<String> {
    let v = std::env::var("HOOKGATE_TEST_REDIS").ok();
    if v.is_none() {
        eprintln!("SKIPPED (no HOOKGATE_TEST_REDIS): {test}");
    }
    v
}

/// True when the `tansu` binary is on PATH (tests that run their own broker need it).
pub fn have_tansu(test: &str) -> bool {
    let ok = Command::new("tansu")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok || std::env::var("HOOKGATE_TEST_KAFKA").is_err() {
        eprintln!("SKIPPED (no tansu on PATH or no HOOKGATE_TEST_KAFKA): {test}");
        return false;
    }
    true
}

/// A free loopback port (closed again before returning).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private tansu broker with its own port and sqlite file; killed on drop.
pub struct Tansu {
    child: Option<Child>,
    /// Listening port.
    pub port: u16,
    dir: PathBuf,
}

impl Tansu {
    /// Starts tansu on `port`, storing in `dir/tansu.db`, and waits until it accepts.
    pub fn start(dir: &Path, port: u16) -> Tansu {
        let mut t = Tansu {
            child: None,
            port,
            dir: dir.to_owned(),
        };
        t.restart();
        t
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (its data stays in the sqlite file).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .args(["-STOP", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// Thaws a frozen broker (SIGCONT): it answers what it was sent meanwhile.
    pub fn thaw(&self) {
        if let Some(c) = &self.child {
            let status = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// Starts the broker again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.join("tansu.log")).unwrap();
        let child = Command::new("tansu")
            .current_dir(&self.dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // A relative sqlite URL: tansu resolves it against the working directory.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
        let addr = self.addr();
        let up = crate::harness::wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        assert!(up, "tansu did not start on {addr}");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Message key (the dedup id).
    pub key: String,
    /// Value.
    pub value: Vec<u8>,
    /// Headers by name.
    pub headers: HashMap<String, String>,
}

/// Reads `topic` from offset 0 on every partition until `want` messages were read and nothing
/// more arrived for a short while, or `timeout` passed.
pub fn consume(brokers: &str, topic: &str, want: usize, timeout: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // tansu answers a fetch with few records: ask again at once, not after 500 ms.
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let partitions = loop {
        let found = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().len())
            })
            .filter(|n| *n > 0);
        if let Some(n) = found {
            break n;
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut last_arrival = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let mut headers = HashMap::new();
                if let Some(h) = m.headers() {
                    for i in 0..h.count() {
                        let hh = h.get(i);
                        headers.insert(
                            hh.key.to_owned(),
                            String::from_utf8_lossy(hh.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push(Consumed {
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
                last_arrival = Instant::now();
            }
            Some(Err(_)) | None => {
                if out.len() >= want && last_arrival.elapsed() > Duration::from_millis(1500) {
                    break;
                }
            }
        }
    }
    out
}

/// Counts messages per key.
pub fn counts(messages: &[Consumed]) -> HashMap<String, usize> {
    let mut c = HashMap::new();
    for m in messages {
        *c.entry(m.key.clone()).or_insert(0) += 1;
    }
    c
}
