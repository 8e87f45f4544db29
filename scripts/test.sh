#!/usr/bin/env bash
# Runs the whole oxidrive test suite. On a fresh Debian machine it first installs the
# system packages the tests drive for real (fuse3, git, sqlite3, rsync, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# program -> Debian package
declare -A need=([fusermount3]=fuse3 [git]=git [sqlite3]=sqlite3 [rsync]=rsync [tar]=tar [diff]=diffutils
                 [pkg-config]=pkg-config [cc]=gcc [python3]=python3
                 [rclone]=rclone [strace]=strace [ssh]=openssh-client [ssh-keygen]=openssh-client [/usr/sbin/sshd]=openssh-server
                 [stress-ng]=stress-ng [fio]=fio)
missing=()
for prog in "${!need[@]}"; do command -v "$prog" >/dev/null 2>&1 || missing+=("${need[$prog]}"); done
# CPython's own file tests run on the mount (Debian ships them apart).
python3 -c 'import test.support' 2>/dev/null ||
  missing+=("$(python3 -c 'import sys; print("libpython%d.%d-testsuite" % sys.version_info[:2])')")
# The provider conformance tests run moto_server (S3) from a venv.
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# The encrypted metadata index (SQLCipher) links the system libcrypto.
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust 1.95 or newer (https://rustup.rs), then run this again" >&2
  exit 1
fi
[ -e /dev/fuse ] || as_root modprobe fuse || { echo "/dev/fuse is missing and the fuse module cannot be loaded" >&2; exit 1; }

# moto_server for the S3 conformance tests, in a venv under target/ (the tests create it
# too when missing; doing it here keeps pip's time out of the test timings).
if [ ! -x target/test-venv/bin/moto_server ]; then
  echo "installing moto[server] into target/test-venv"
  python3 -m venv target/test-venv
  target/test-venv/bin/pip install -q 'moto[server]'
fi

# fsx (the File System eXerciser) is a crate, not a Debian package: built once into
# target/test-tools from crates.io, at a pinned version.
if [ ! -x target/test-tools/bin/fsx ]; then
  echo "installing fsx into target/test-tools"
  cargo install -q --locked --root target/test-tools fsx --version 0.3.2
fi

# A one-off build gains nothing from incremental caches, which double target/'s size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "disk free for target/: $(df -h --output=avail . | tail -1)"

echo "== build"
cargo build --workspace --all-targets

echo "== layering: vfs, cache, providers and crypto never link fuser"
for crate in oxidrive-vfs oxidrive-cache oxidrive-providers oxidrive-crypto; do
  if cargo tree -q -p "$crate" -e normal | grep -qE '^.*\bfuser v'; then
    echo "layering broken: $crate depends on fuser" >&2
    exit 1
  fi
done

echo "== tests"
# Unit tests first (fast), then the end-to-end tests that mount for real.
cargo test --workspace --exclude oxidrive-tests
cargo test -p oxidrive-tests -- --test-threads=2
