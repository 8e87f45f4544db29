#!/usr/bin/env bash
# Does an untar cost the same per file in a big tree as in a small one? Untars source
# trees of growing size (crates from the cargo registry) into a native folder and into
# the mount (plain and encrypted local providers, same disk), and reports seconds and
# microseconds per entry. A cost that grows with the tree (a walk over every pending
# file per commit, a sum over every cached row per upload) shows as a rising per-entry
# column. From the write-back delay on (2 s), uploads run beside the untar as they
# would for a user, so a long untar's per-entry cost includes them (on 2 cores, they
# share the CPU). After each untar, untimed, the uploads finish (`sync --wait`) and
# the trees are removed.
#
#   sudo bench/untar_scale.sh [ENTRIES...]    (default: 1000 4000 16000)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
if [ $# -gt 0 ]; then SIZES=("$@"); else SIZES=(1000 4000 16000); fi

bench_setup
bench_mount_oxidrive
NATIVE=$WORK/native
mkdir -p "$NATIVE"

REGISTRY=$(ls -d "${CARGO_HOME:-$REAL_HOME/.cargo}"/registry/src/*/ 2>/dev/null | head -1 || true)
[ -d "${REGISTRY:-}" ] || { echo "no cargo registry sources to untar" >&2; exit 1; }

# A tarball of whole crates, in name order, until it holds at least $1 entries.
# Prints its entry count.
make_tarball() {
  local want=$1 out=$2 list=$WORK/crates.txt n=0 crate
  : >"$list"
  for crate in $(ls "$REGISTRY"); do
    echo "$crate" >>"$list"
    n=$((n + $(find "$REGISTRY/$crate" | wc -l)))
    [ "$n" -ge "$want" ] && break
  done
  tar -C "$REGISTRY" -cf "$out" -T "$list"
  tar -tf "$out" | wc -l
}

untar_into() { mkdir -p "$1/scale" && tar -C "$1/scale" -xf "$2"; }
per_entry() { awk -v s="$1" -v n="$2" 'BEGIN { printf "%.0f", s * 1e6 / n }'; }

ROWS=()
for size in "${SIZES[@]}"; do
  tarball=$WORK/scale-$size.tar
  entries=$(make_tarball "$size" "$tarball")
  times=()
  for target in "$NATIVE" "$PLAIN_ROOT" "$ENC_ROOT"; do
    "$BIN" sync --wait >/dev/null
    times+=("$(timeit untar_into "$target" "$tarball")")
    "$BIN" sync --wait >/dev/null
    rm -rf "$target/scale"
  done
  ROWS+=("$(printf '%8s %8s %8s %8s %10s %10s %10s %8s %8s' "$entries" "${times[0]}" "${times[1]}" "${times[2]}" \
    "$(per_entry "${times[0]}" "$entries")" "$(per_entry "${times[1]}" "$entries")" \
    "$(per_entry "${times[2]}" "$entries")" "$(ratio "${times[1]}" "${times[0]}")" \
    "$(ratio "${times[2]}" "${times[0]}")")")
  rm -f "$tarball"
done

echo
echo "untar of growing trees: native folder vs oxidrive (local providers, same disk)"
echo "($(nproc) cores, $(uname -r)); seconds, and microseconds per entry"
printf '%8s %8s %8s %8s %10s %10s %10s %8s %8s\n' "entries" "native" "plain" "enc" \
  "native/e" "plain/e" "enc/e" "plain/n" "enc/n"
printf '%s\n' "${ROWS[@]}"
