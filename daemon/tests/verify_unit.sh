#!/usr/bin/env bash
# verify_unit.sh UNIT SHMBUSD: `systemd-analyze verify` on the shipped unit, with ExecStart
# pointed at the built binary (the installed path does not exist in a build tree). Exits 77
# (ctest: skipped) where systemd-analyze is not installed.
set -eu
unit=$1 binary=$2
if ! command -v systemd-analyze >/dev/null; then
  echo "skipped: systemd-analyze is not installed (apt-get install systemd)"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/sbin/shmbusd|$binary|" "$unit" > "$dir/shmbusd.service"
out=$(systemd-analyze verify --man=no "$dir/shmbusd.service" 2>&1) || { echo "$out"; exit 1; }
# verify also prints warnings without failing; the unit must be clean.
if [ -n "$out" ]; then echo "$out"; exit 1; fi
echo "systemd-analyze verify: clean"
