#!/usr/bin/env bash
# run_pair.sh SUBSCRIBER PUBLISHER COUNT: runs an example subscriber and publisher as two
# processes sharing a file-backed topic in a fresh directory, each bounded by a timeout.
# Exits non-zero when either fails.
set -u
sub=$1 pub=$2 count=$3
dir=$(mktemp -d /dev/shm/shmbus-example-XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$dir"' EXIT
timeout 60 "$sub" --dir "$dir" --count "$count" --idle 3 &
sub_pid=$!
timeout 60 "$pub" --dir "$dir" --count "$count"
pub_rc=$?
wait "$sub_pid"
sub_rc=$?
echo "run_pair: publisher exit $pub_rc, subscriber exit $sub_rc"
[ "$pub_rc" -eq 0 ] && [ "$sub_rc" -eq 0 ]
