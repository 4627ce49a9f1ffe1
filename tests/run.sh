#!/usr/bin/env bash
# Zaal's one test command: unit and integration tests, then the browser tests.
#
# Installs what it needs when missing (Debian's chromium; playwright-core from npm), builds
# once in release mode (the integration tests and the browser tests share that build), and runs
# the browser tests inside a network namespace that has only `lo`, so no packet leaves loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "Vendored crates: published source plus vendor/patches reproduce vendor/"
bash vendor/check-patches.sh

step "Test dependencies: curl, openssl, pebble (the ACME test server), iproute2, nftables, g++ (libFuzzer)"
missing=()
for tool in curl:curl openssl:openssl pebble:pebble ip:iproute2 nft:nftables c++:g++; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

step "Rust: unit and integration tests (release build)"
cargo test --release --locked

step "Rust: unit tests of the patched crates (vendor/README.md)"
cargo test --release --locked -p rtc -p rtc-interceptor -p rtc-srtp -p tungstenite --lib

step "Fuzzing: every target for a bounded time (fuzz/README.md)"
bash fuzz/run.sh

step "Browser tests: dependencies"
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

step "Browser tests: headless Chromium in a loopback-only network namespace"
namespace=(unshare --net)
if [ "$(id -u)" -ne 0 ]; then
    namespace=(unshare --user --map-root-user --net)
fi
"${namespace[@]}" sh -c 'ip link set lo up && ZAAL_BIN=target/release/zaal node --test --test-concurrency=1 tests/browser/'

step "All tests passed"
