#!/usr/bin/env bash
# Installs what building and testing Weir needs on a Debian machine, and nothing that is
# already there, so that a second run takes a second. Needs root (or sudo) for apt-get.
set -euo pipefail

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# System packages: a C/C++ compiler and libclang for RocksDB's build (librocksdb-sys),
# make, Python for the sample-data generator and the independent parquet readers, and
# script(1) and timeout(1) (bsdutils, coreutils) to test the live view under a terminal, and
# GNU time for the benchmark's peak-memory figures. For the dashboard's tests: Chromium (driven
# headless by playwright-core from npm, with Node.js), Graphviz for `weir graph --format svg`,
# and the Prometheus package for promtool, which checks the /metrics text. strace, to check
# that every rename the file sinks make is synced before the checkpoint that relies on it.
# nats-server, the real JetStream broker the NATS source and sink tests start (with -js).
# cmake is not needed: librdkafka (the Kafka client) builds with its own configure script.
packages=(build-essential clang libclang-dev make python3 python3-pip python3-venv bsdutils coreutils time chromium graphviz prometheus strace nats-server)
# Node.js and npm come from Debian only where no other install (NodeSource, nvm) provides them.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# Rust: Weir needs 1.88 or newer (arrow 60's minimum). rustup is the way to get it.
if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install Rust 1.88 or newer with rustup (https://rustup.rs) and run again" >&2
    exit 1
fi
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rust_minor:-0}" -lt 88 ]; then
    echo "setup: $(rustc --version) is too old; Weir needs Rust 1.88 or newer (rustup update)" >&2
    exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true

# pyarrow and DuckDB read Weir's parquet output back in the tests, as independent readers;
# prometheus-client's parser checks the /metrics text; nats-py and confluent-kafka produce
# the NATS and Kafka tests' input and read their output back, as independent clients.
if ! python3 -c 'import pyarrow, duckdb, prometheus_client, nats, confluent_kafka' >/dev/null 2>&1; then
    echo "setup: installing pyarrow, duckdb, prometheus-client, nats-py and confluent-kafka from PyPI"
    python3 -m pip install --quiet pyarrow duckdb prometheus-client nats-py confluent-kafka 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages pyarrow duckdb prometheus-client nats-py confluent-kafka
fi

# The Kafka tests' broker: tansu, a Kafka-protocol broker from crates.io, built once into
# ~/.cache/weir like the target folder (14 and about 20 minutes on 2 cores, once). Two
# versions: 0.6.0 keeps its log in SQLite, so a test can stop and restart it; 0.4.9 is the
# last whose broker answers EndTxn (0.5 and 0.6 store transactions but route no EndTxn
# request), so the exactly-once sink's tests run against it, its log in memory.
tansu_cache="$HOME/.cache/weir"
install_tansu() { # version, folder, cargo install flags...
    local version=$1 root=$2
    shift 2
    if [ ! -x "$root/bin/tansu" ]; then
        echo "setup: building the tansu $version broker for the Kafka tests (once per machine)"
        CARGO_TARGET_DIR="$tansu_cache/tansu-target" \
            cargo install tansu --version "$version" --locked --quiet --root "$root" "$@"
    fi
}
install_tansu 0.6.0 "$tansu_cache/tansu" --features libsql
install_tansu 0.4.9 "$tansu_cache/tansu-0.4"

# playwright-core (no browser download: it drives Debian's chromium) for the dashboard test,
# at the version package-lock.json pins.
browser_tests="$(dirname "$0")/../tests/browser"
if [ ! -d "$browser_tests/node_modules/playwright-core" ]; then
    echo "setup: installing playwright-core from npm"
    (cd "$browser_tests" && npm ci --no-audit --no-fund --silent)
fi
echo "setup: ready ($(cargo --version), $(python3 --version))"
