#!/usr/bin/env bash
# Fuzzes every target in fuzz/ for a bounded time and fails if any of them crashes.
#
# Installs cargo-fuzz when missing (the pinned version, from crates.io), builds all targets once
# (release, AddressSanitizer, libFuzzer), then runs each from a copy of its seed corpus in a
# temporary directory, so that what a run discovers never lands in the repository. A crashing
# input is kept in fuzz/artifacts/<target>/; `cargo fuzz run <target> <file>` replays it.
#
# ZAAL_FUZZ_SECONDS: how long each target runs (default 7). ZAAL_FUZZ_SANITIZER: address
# (default) or none. Works without a terminal, as root, on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.2
seconds="${ZAAL_FUZZ_SECONDS:-7}"
sanitizer="${ZAAL_FUZZ_SANITIZER:-address}"

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
# The sanitizer and coverage flags are unstable options; this lets the stable toolchain take
# them, for this build only.
export RUSTC_BOOTSTRAP=1

# cargo-fuzz has no --locked of its own: check here that Cargo.lock needs no change.
cargo fetch --locked --quiet
cargo fuzz build -O -s "$sanitizer"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in $(cargo fuzz list); do
    mkdir -p "$work/$target"
    cp corpus/"$target"/* "$work/$target/"
    printf '== fuzz %s (%ss)\n' "$target" "$seconds"
    if ! cargo fuzz run -O -s "$sanitizer" "$target" "$work/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 2>"$work/$target.log"; then
        grep -E -A6 'panicked|ERROR: |^SUMMARY|^Reproduce' "$work/$target.log" || tail -n 40 "$work/$target.log"
        failed+=("$target")
        continue
    fi
    grep -E '^stat::number_of_executed_units|^Done' "$work/$target.log" || true
done

if [ "${#failed[@]}" -gt 0 ]; then
    printf 'fuzz targets that crashed: %s (inputs in fuzz/artifacts/)\n' "${failed[*]}"
    exit 1
fi
echo "no fuzz target crashed"
