#!/usr/bin/env bash
# Checks that each patched crate in vendor/ is exactly its published release plus the patch
# series in vendor/patches/<crate>/, applied in order (vendor/README.md).
#
# For each crate: the published source of the version named in vendor/<crate>/Cargo.toml is
# fetched into cargo's registry cache through a throw-away manifest that depends on exactly that
# version (offline first, so that an already cached release needs no network), the parts of it
# the vendored copy is based on are copied to a temporary directory, every patch is checked with
# `git apply --check` and applied, and the result is compared with vendor/<crate> by `diff -r`.
# Needs cargo, git and diff.
set -euo pipefail
cd "$(dirname "$0")"
vendor=$PWD

# The crates, and the top-level entries of each published package that its vendored copy keeps.
# Everything else in the package is left out of the copy: what cargo adds when packaging
# (.cargo_vcs_info.json, Cargo.toml.orig, Cargo.lock; .cargo-ok when unpacked), and the examples,
# tests, benches and documents that building the library does not need.
crates=(rtc rtc-interceptor rtc-srtp tungstenite)
declare -A kept=(
    [rtc]="Cargo.toml LICENSE-APACHE LICENSE-MIT src"
    [rtc-interceptor]="Cargo.toml src"
    [rtc-srtp]="Cargo.toml README.md src"
    [tungstenite]="Cargo.toml LICENSE-APACHE LICENSE-MIT README.md src"
)

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# No repository above a tree under $scratch: `git apply` patches it as plain files.
export GIT_CEILING_DIRECTORIES=$scratch

version_of() { # the [package] version of a manifest
    sed -n '/^\[package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' "$1" | head -n 1
}

# One throw-away manifest pinning every crate's exact version.
mkdir -p "$scratch/fetch/src"
: >"$scratch/fetch/src/lib.rs"
{
    printf '[package]\nname = "vendor-check-patches"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
    printf '[workspace]\n\n[dependencies]\n'
    for crate in "${crates[@]}"; do
        version=$(version_of "$vendor/$crate/Cargo.toml")
        if [ -z "$version" ]; then
            echo "check-patches: no [package] version in vendor/$crate/Cargo.toml" >&2
            exit 1
        fi
        printf '%s = "=%s"\n' "$crate" "$version"
    done
} >"$scratch/fetch/Cargo.toml"
manifest=$scratch/fetch/Cargo.toml
if ! cargo fetch --quiet --offline --manifest-path "$manifest" 2>/dev/null; then
    cargo fetch --quiet --manifest-path "$manifest"
fi
metadata=$(cargo metadata --quiet --offline --format-version 1 --manifest-path "$manifest")

failed=()
for crate in "${crates[@]}"; do
    version=$(version_of "$vendor/$crate/Cargo.toml")
    # The registry's unpacked copy: the manifest_path cargo reports for name-version.
    published=$(printf '%s' "$metadata" | grep -o "\"manifest_path\":\"[^\"]*/$crate-$version/Cargo.toml\"" |
        head -n 1 | sed 's/^"manifest_path":"\(.*\)\/Cargo.toml"$/\1/')
    if [ -z "$published" ] || [ ! -d "$published" ]; then
        echo "check-patches: $crate $version: published source not found in cargo's registry" >&2
        exit 1
    fi
    echo "$crate $version: $published"

    tree=$scratch/$crate
    mkdir "$tree"
    for entry in ${kept[$crate]}; do
        cp -R "$published/$entry" "$tree/"
    done

    patches=("$vendor/patches/$crate"/*.patch)
    if [ ! -e "${patches[0]}" ]; then
        echo "check-patches: no patches in vendor/patches/$crate" >&2
        exit 1
    fi
    applied=yes
    for patch in "${patches[@]}"; do
        name=patches/$crate/$(basename "$patch")
        if ! (cd "$tree" && git apply --check "$patch" && git apply "$patch"); then
            echo "  FAILED to apply $name" >&2
            applied=no
            break
        fi
        echo "  applied $name"
    done
    if [ "$applied" = no ]; then
        failed+=("$crate (a patch does not apply)")
        continue
    fi

    if diff -r "$tree" "$vendor/$crate" >"$scratch/$crate.diff"; then
        echo "  matches vendor/$crate"
    else
        echo "  MISMATCH: $crate $version plus vendor/patches/$crate is not vendor/$crate" >&2
        echo "  (< patched published source, > vendor/$crate):" >&2
        head -n 60 "$scratch/$crate.diff" | sed 's/^/    /' >&2
        failed+=("$crate (differs from vendor/$crate)")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "check-patches: FAILED for: ${failed[*]}" >&2
    echo "vendor/ and vendor/patches/ must change together (vendor/README.md, \"Moving to a new release\")." >&2
    exit 1
fi
echo "check-patches: every vendored crate is its published release plus its patch series"
