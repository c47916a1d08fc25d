#!/usr/bin/env bash
# The whole hookgate test suite on a fresh machine, in one command.
#
# Installs what it needs (Debian packages, the tansu Kafka-protocol broker from crates.io,
# Python test dependencies), starts tansu and Redis on loopback ports, exports
# HOOKGATE_TEST_KAFKA / HOOKGATE_TEST_REDIS, then runs: fmt check, clippy, cargo tests
# (unit + integration against the real binary) and the Python oracle tests.
# Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
log() { printf '\n==> %s\n' "$*"; }

# --- 1. system packages (skipped when already present) -------------------------------
apt_pkgs=()
command -v redis-server >/dev/null || apt_pkgs+=(redis-server)
command -v promtool >/dev/null || apt_pkgs+=(prometheus)
command -v chromium >/dev/null || apt_pkgs+=(chromium)
command -v systemd-analyze >/dev/null || apt_pkgs+=(systemd)
# cmake: some crates of the tansu broker build may need it (hookgate itself does not).
command -v cmake >/dev/null || apt_pkgs+=(cmake)
command -v pkg-config >/dev/null || apt_pkgs+=(pkg-config)
command -v cc >/dev/null || apt_pkgs+=(build-essential)
[ -f /usr/include/openssl/ssl.h ] || apt_pkgs+=(libssl-dev)
[ -f /usr/include/zlib.h ] || apt_pkgs+=(zlib1g-dev)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  log "installing Debian packages: ${apt_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

# --- 2. the Kafka-protocol broker (about 20 minutes to build; cached on PATH) ----------
if ! command -v tansu >/dev/null; then
  log "installing tansu 0.6.0 from crates.io (one-time, slow)"
  cargo install tansu --locked --version 0.6.0 --features libsql
fi

# --- 3. Python test dependencies -------------------------------------------------------
# Pinned versions; pip only downloads what is missing or at another version.
log "Python test dependencies (tests/py/requirements.txt)"
python3 -m pip install -q --disable-pip-version-check -r tests/py/requirements.txt

# --- 4. services on loopback -----------------------------------------------------------
WORK=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
pids+=($!)
wait_port "$REDIS_PORT"
export HOOKGATE_TEST_REDIS="redis://127.0.0.1:$REDIS_PORT"

KAFKA_PORT=$(free_port)
# tansu resolves a sqlite:// path relative to its working directory, so run it from $WORK.
(cd "$WORK" && exec tansu broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine "sqlite://tansu.db") >"$WORK/tansu.log" 2>&1 &
pids+=($!)
wait_port "$KAFKA_PORT"
export HOOKGATE_TEST_KAFKA="127.0.0.1:$KAFKA_PORT"
export HOOKGATE_TEST_TANSU_DB="$WORK/tansu.db"
log "redis on $HOOKGATE_TEST_REDIS, tansu on $HOOKGATE_TEST_KAFKA"

# --- 5. the checks -----------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
log "cargo test"
cargo test --all-targets
log "Python oracle tests"
export HOOKGATE_BIN="$ROOT/target/debug/hookgate"
python3 -m pytest -q tests/py
