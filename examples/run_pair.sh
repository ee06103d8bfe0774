#!/usr/bin/env bash
# run_pair.sh SUBSCRIBER PUBLISHER COUNT [SHMBUSD]: runs an example subscriber and publisher as
# two processes, each bounded by a timeout. With SHMBUSD, they meet through a private bus
# daemon (--socket); without, through a file-backed topic in a fresh directory (--dir).
# Exits non-zero when either fails.
set -u
sub=$1 pub=$2 count=$3 daemon=${4:-}
dir=$(mktemp -d /dev/shm/shmbus-example-XXXXXX 2>/dev/null || mktemp -d)
daemon_pid=
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
where=(--dir "$dir")
if [ -n "$daemon" ]; then
  "$daemon" --runtime-dir "$dir" --log-level warn &
  daemon_pid=$!
  for _ in $(seq 100); do [ -S "$dir/default.sock" ] && break; sleep 0.05; done
  where=(--socket "$dir/default.sock")
fi
timeout 60 "$sub" "${where[@]}" --count "$count" --idle 3 &
sub_pid=$!
timeout 60 "$pub" "${where[@]}" --count "$count"
pub_rc=$?
wait "$sub_pid"
sub_rc=$?
echo "run_pair: publisher exit $pub_rc, subscriber exit $sub_rc"
[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ]
