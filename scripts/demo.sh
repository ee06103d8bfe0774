#!/usr/bin/env bash
# Installs what is missing (Debian 12), builds shmbus in Release, and runs the demos:
#   1. shmbus_demo: a publisher and a subscriber process exchange typed messages through
#      shared memory; the subscriber prints what arrived and the latency it measured;
#   2. frame_pub + frame_sub: two separate programs share a file-backed topic and move 8 MiB
#      camera frames, each read in place by the subscriber.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
shmbus_install_deps
cd "$SHMBUS_ROOT"

build=build-release
shmbus_configure "$build" -DCMAKE_BUILD_TYPE=Release -DSHMBUS_SANITIZE= \
  -DSHMBUS_BUILD_EXAMPLES=ON -DSHMBUS_BUILD_TESTS=OFF -DSHMBUS_BUILD_BENCH=OFF -DSHMBUS_BUILD_DAEMON=OFF
cmake --build "$build" --target shmbus_demo frame_pub frame_sub

echo
echo "=== demo 1: publisher and subscriber processes, typed telemetry messages ==="
timeout 60 "$build/examples/shmbus_demo"

echo
echo "=== demo 2: two programs, 8 MiB frames read in place through a file-backed topic ==="
timeout 60 examples/run_pair.sh "$build/examples/frame_sub" "$build/examples/frame_pub" 30
