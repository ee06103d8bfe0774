#!/usr/bin/env bash
# verify_unit.sh UNIT INSTALLED_PATH BINARY [OTHER_UNIT...]: `systemd-analyze verify` on a
# shipped unit (shmbusd's, shmbus-bridge's), with ExecStart's INSTALLED_PATH pointed at the built
# BINARY (the installed path does not exist in a build tree). verify also prints warnings
# without failing: the unit must be clean, except for complaints about the OTHER_UNITs it names
# (After=/Wants= units that may not be installed here). Exits 77 (ctest: skipped) where
# systemd-analyze is not installed.
set -eu
unit=$1 installed=$2 binary=$3
shift 3
if ! command -v systemd-analyze >/dev/null; then
  echo "skipped: systemd-analyze is not installed (apt-get install systemd)"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
copy="$dir/$(basename "$unit")"
sed "s|$installed|$binary|" "$unit" > "$copy"
out=$(systemd-analyze verify --man=no "$copy" 2>&1) || { echo "$out"; exit 1; }
for other in "$@"; do
  out=$(printf '%s\n' "$out" | grep -v -F -e "$other" || true)
done
if [ -n "$out" ]; then echo "$out"; exit 1; fi
echo "systemd-analyze verify: clean"
