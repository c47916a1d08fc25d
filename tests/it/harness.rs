//! Starts the real `hookgate` binary on ephemeral ports with a temp config and sink, and
//! kills it on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running gateway.
pub struct Gateway {
    child: Option<Child>,
    /// Public address.
    pub addr: SocketAddr,
    /// Admin address.
    pub admin: SocketAddr,
    /// Temp directory holding config, sink output and anything the test puts there.
    pub dir: tempfile::TempDir,
    /// Sink output (JSON lines).
    pub events_path: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

/// Waits until `f` returns true or `timeout` passes; returns whether it did.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `hookgate check` on `config` and returns what it printed and its exit status.
pub fn check(config: &Path) -> std::process::Output {
    Command::new(binary())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run hookgate check")
}

/// The path of the built binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_hookgate")
}

impl Gateway {
    /// Starts hookgate with `sources` (TOML: `[[source]]` tables and any other sections the
    /// test needs). Listener, admin, sink and telemetry sections are supplied here unless
    /// `sources` already has them.
    pub fn start(sources: &str) -> Gateway {
        Self::start_with(|_| sources.to_owned())
    }

    /// Like [`Gateway::start`], with access to the temp dir while building the config.
    pub fn start_with(build: impl FnOnce(&Path) -> String) -> Gateway {
        Self::try_start_with(build).unwrap_or_else(|logs| panic!("hookgate did not start:\n{logs}"))
    }

    /// Starts hookgate; `Err(logs)` when it exits before listening.
    pub fn try_start_with(build: impl FnOnce(&Path) -> String) -> Result<Gateway, String> {
        let (dir, events_path, config_path) = Self::write_config(build);
        Self::spawn(dir, events_path, &config_path, &[])
    }

    /// Like [`Gateway::start_with`], with every file hookgate writes limited to `blocks`
    /// (`ulimit -f`: 512 or 1024 bytes each, as the shell counts). hookgate catches the
    /// `SIGXFSZ` a write past the limit raises (`src/file_size_limit.rs`), so the write fails
    /// with `EFBIG` as on a full disk instead of killing it; the shell does not ignore it for
    /// hookgate, so these tests show that.
    pub fn start_with_file_size_limit(build: impl FnOnce(&Path) -> String, blocks: u32) -> Gateway {
        let (dir, events_path, config_path) = Self::write_config(build);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!(
                "ulimit -f {blocks}; exec \"$0\" serve --config \"$1\""
            ))
            .arg(binary())
            .arg(&config_path);
        Self::run(cmd, dir, events_path)
            .unwrap_or_else(|logs| panic!("hookgate did not start:\n{logs}"))
    }

    /// Like [`Gateway::start_with`], with hookgate's standard error going to `stderr` (a file
    /// the test chose, e.g. one refusing every write), so its logs are not read: the ports are
    /// chosen here and the start is told by the public port accepting.
    pub fn start_with_stderr(
        build: impl FnOnce(&Path) -> String,
        stderr: impl Into<Stdio>,
    ) -> Gateway {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
        };
        let (addr, admin) = (free(), free());
        let (dir, events_path, config_path) = Self::write_config(|d| {
            format!(
                "[listener]\naddress = \"{addr}\"\n[admin]\naddress = \"{admin}\"\n{}",
                build(d)
            )
        });
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn hookgate");
        let up = wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(addr).is_ok() || !matches!(child.try_wait(), Ok(None))
        });
        assert!(
            up && matches!(child.try_wait(), Ok(None)),
            "hookgate did not start"
        );
        Gateway {
            child: Some(child),
            addr,
            admin,
            dir,
            events_path,
            logs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The config built by `build` (with the listener, admin and sink sections supplied),
    /// written into a new temp dir: (dir, JSON-lines path, config path).
    fn write_config(build: impl FnOnce(&Path) -> String) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let events_path = dir.path().join("events.jsonl");
        let body = build(dir.path());
        let mut config = String::new();
        if !body.contains("[listener]") {
            config.push_str("[listener]\naddress = \"127.0.0.1:0\"\n");
        }
        if !body.contains("[admin]") {
            config.push_str("[admin]\naddress = \"127.0.0.1:0\"\n");
        }
        if !body.contains("[sink]") {
            config.push_str(&format!(
                "[sink]\npath = {:?}\n",
                events_path.display().to_string()
            ));
        }
        config.push_str(&body);
        let config_path = dir.path().join("hookgate.toml");
        std::fs::write(&config_path, &config).expect("write config");
        (dir, events_path, config_path)
    }

    /// Spawns the binary on an existing config file (used to restart on the same state).
    pub fn spawn(
        dir: tempfile::TempDir,
        events_path: PathBuf,
        config_path: &Path,
        env: &[(&str, &str)],
    ) -> Result<Gateway, String> {
        let mut cmd = Command::new(binary());
        cmd.arg("serve").arg("--config").arg(config_path);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::run(cmd, dir, events_path)
    }

    /// Runs `cmd` (hookgate, maybe through a wrapper) and waits until it listens.
    fn run(
        mut cmd: Command,
        dir: tempfile::TempDir,
        events_path: PathBuf,
    ) -> Result<Gateway, String> {
        if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info,hookgate=debug");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hookgate");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let found = |needle: &str, logs: &Arc<Mutex<Vec<String>>>| -> Option<SocketAddr> {
            logs.lock()
                .unwrap()
                .iter()
                .filter(|l| needle.starts_with("admin") || !l.contains("admin listening"))
                .find_map(|l| {
                    let at = l.find(needle)?;
                    let rest = &l[at + needle.len()..];
                    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
                    rest[..end].parse().ok()
                })
        };
        let mut addr = None;
        let mut admin = None;
        let started = wait_until(Duration::from_secs(20), || {
            addr = found(" listening on ", &logs);
            admin = found("admin listening on ", &logs);
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            addr.is_some() && admin.is_some()
        });
        let (Some(addr), Some(admin), true) = (addr, admin, started) else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
            return Err(logs.lock().unwrap().join("\n"));
        };
        Ok(Gateway {
            child: Some(child),
            addr,
            admin,
            dir,
            events_path,
            logs,
        })
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `http://admin{path}`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    /// The admin port's Prometheus text.
    pub fn metrics(&self) -> String {
        reqwest::blocking::get(self.admin_url("/metrics"))
            .and_then(|r| r.text())
            .unwrap_or_else(|e| panic!("cannot scrape /metrics: {e}"))
    }

    /// Every JSON line the sink has written so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        read_jsonl(&self.events_path)
    }

    /// Waits until the sink holds at least `n` lines; returns them.
    pub fn wait_events(&self, n: usize) -> Vec<serde_json::Value> {
        wait_until(Duration::from_secs(10), || self.events().len() >= n);
        self.events()
    }

    /// Everything hookgate logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// True once hookgate has logged `needle` (within 10 s). Lines reach the test through the
    /// gateway's log queue and writer thread, then this harness's reader: on a busy machine a
    /// line logged before an answer may be read after it.
    pub fn logged(&self, needle: &str) -> bool {
        wait_until(Duration::from_secs(10), || self.logs().contains(needle))
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the exit status. The temp dir stays until drop.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().expect("child");
        let mut status = None;
        wait_until(Duration::from_secs(30), || {
            status = child.try_wait().ok().flatten();
            status.is_some()
        });
        status.unwrap_or_else(|| {
            let _ = child.kill();
            child.wait().expect("wait")
        })
    }

    /// Sends SIGTERM, waits for the exit status, and keeps the temp dir (for restart tests).
    pub fn stop_keep_dir(mut self) -> (ExitStatus, tempfile::TempDir, PathBuf) {
        let status = self.stop();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        (status, dir, self.events_path.clone())
    }

    /// Kills with SIGKILL and keeps the temp dir (for restart tests).
    pub fn kill(mut self) -> (tempfile::TempDir, PathBuf) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        (dir, self.events_path.clone())
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads a JSON-lines file; missing file = no lines. A torn last line is ignored.
pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// HMAC-SHA256 hex of `body` with `key` — computed with the `hmac` crate directly, as the
/// vendor's documented snippet does, not with hookgate's verifier.
pub fn hyprwatch_signature(key: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
