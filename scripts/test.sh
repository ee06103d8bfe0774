#!/usr/bin/env bash
# Installs what is missing (Debian 12), then checks everything CI checks:
#   1. a RelWithDebInfo build of everything, and the whole ctest suite;
#   2. `cmake --install` into a temporary prefix, and an out-of-tree project
#      (examples/install_consumer) built against it with find_package and with pkg-config
#      (with and without LTO), in C++ and, through the C API, in C; and the installed Python
#      package imported by a clean interpreter;
#   3. an ASan+UBSan build (no benchmarks), and the whole ctest suite again.
# Exits non-zero on any failure. Build trees: build/ and build-asan/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/deps.sh"
shmbus_install_deps
cd "$SHMBUS_ROOT"

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# The library installs its own SIGBUS guard (a truncated bus file becomes Errc::region_lost)
# and chains other faults to the previous handler; ASan's SIGBUS handler would turn those into
# a report and exit(1) instead of the default death by SIGBUS that tests expect.
export ASAN_OPTIONS=${ASAN_OPTIONS:-handle_sigbus=0}
passed=0
failed=0
start=$SECONDS

step() { printf '\n=== %s (%ds) ===\n' "$*" $((SECONDS - start)); }

# Runs the ctest suite of build tree $1, adds its counts to the totals.
run_ctest() {
  local log rc=0
  log=$(mktemp)
  (cd "$1" && ctest --output-on-failure -j2) 2>&1 | tee "$log" || rc=$?
  local line
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1 || true)
  rm -f "$log"
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  fi
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    echo "test.sh: ctest failed in $1 (exit $rc)" >&2
    [ -z "$line" ] && failed=$((failed + 1))
    return 1
  fi
}

status=0

# Debug information is line tables only (-g1): failures and sanitizer reports keep file:line,
# and compiling takes a sixth less here (half under ASan, with -O1, ASan's own advice).
line_tables=(-DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG")
asan_line_tables=(-DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG")

step "1/3 RelWithDebInfo build"
shmbus_configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo "${line_tables[@]}" -DSHMBUS_SANITIZE= \
  -DSHMBUS_BUILD_TESTS=ON -DSHMBUS_BUILD_EXAMPLES=ON -DSHMBUS_BUILD_BENCH=ON -DSHMBUS_BUILD_DAEMON=ON
cmake --build build
step "1/3 tests"
run_ctest build || status=1

step "2/3 install and out-of-tree consumer"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install build --prefix "$tmp/prefix"
cmake -S examples/install_consumer -B "$tmp/consumer" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix"
cmake --build "$tmp/consumer"
"$tmp/consumer/consumer"
"$tmp/consumer/consumer_c"
# The same program built by hand with pkg-config under every usual set of flags: optimisation
# levels, NDEBUG or not, LTO (the archive's fat objects then feed GCC's link-time optimiser).
# Each consumer also opens a topic through build/'s daemon (Client::open_topic: the region fd
# arrives over the control socket), the path an -O1 consumer once broke.
mkdir -p "$tmp/run"
build/daemon/shmbusd --runtime-dir "$tmp/run" --log-level warn &
daemon=$!
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 50); do [ -S "$tmp/run/default.sock" ] && break; sleep 0.1; done
pc_flags=$(PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" pkg-config --cflags --libs shmbus)
consumer_flag_sets=("-O0" "-O0 -DNDEBUG" "-O1" "-O1 -DNDEBUG" "-O2" "-O2 -DNDEBUG" "-O1 -flto=auto" "-O2 -flto=auto")
consumers_ok=0
for i in "${!consumer_flag_sets[@]}"; do
  # shellcheck disable=SC2086  # word splitting of the flags is wanted
  c++ ${consumer_flag_sets[$i]} examples/install_consumer/main.cpp -o "$tmp/consumer_pc$i" $pc_flags &
done
wait_all_ok=1
for job in $(jobs -p); do [ "$job" = "$daemon" ] || wait "$job" || wait_all_ok=0; done
[ "$wait_all_ok" = 1 ] || { echo "test.sh: building a pkg-config consumer failed" >&2; status=1; }
for i in "${!consumer_flag_sets[@]}"; do
  if "$tmp/consumer_pc$i" "$tmp/run"; then
    consumers_ok=$((consumers_ok + 1))
  else
    echo "test.sh: the install consumer built with '${consumer_flag_sets[$i]}' failed" >&2
    failed=$((failed + 1))
    status=1
  fi
done
# The C API's consumer, compiled as C with shmbus-c.pc (a C compiler's flags plus the C++
# runtime), also through the daemon.
pc_c_flags=$(PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig" pkg-config --cflags --libs shmbus-c)
c_consumer_flag_sets=("-std=c99 -O0" "-std=c99 -O2 -flto=auto")
for i in "${!c_consumer_flag_sets[@]}"; do
  # shellcheck disable=SC2086  # word splitting of the flags is wanted
  if cc ${c_consumer_flag_sets[$i]} examples/install_consumer/main.c -o "$tmp/consumer_c_pc$i" $pc_c_flags &&
     "$tmp/consumer_c_pc$i" "$tmp/run"; then
    consumers_ok=$((consumers_ok + 1))
  else
    echo "test.sh: the C install consumer built with '${c_consumer_flag_sets[$i]}' failed" >&2
    failed=$((failed + 1))
    status=1
  fi
done
# The installed Python package, from a clean interpreter (-I: no PYTHONPATH, no user site),
# exchanges one message through the same daemon.
python_ok=0
if /usr/bin/python3 -I python/tests/install_check.py "$tmp/prefix/lib/python3/dist-packages" "$tmp/run/default.sock"; then
  python_ok=1
else
  echo "test.sh: the installed Python package failed its check" >&2
  failed=$((failed + 1))
  status=1
fi
kill "$daemon" 2>/dev/null || true
wait "$daemon" 2>/dev/null || true
passed=$((passed + 2 + consumers_ok + python_ok))

step "3/3 ASan+UBSan build"
shmbus_configure build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo "${asan_line_tables[@]}" -DSHMBUS_SANITIZE=address \
  -DSHMBUS_BUILD_TESTS=ON -DSHMBUS_BUILD_EXAMPLES=ON -DSHMBUS_BUILD_BENCH=OFF -DSHMBUS_BUILD_DAEMON=ON
cmake --build build-asan
step "3/3 tests under ASan+UBSan"
run_ctest build-asan || status=1

step "done"
echo "total: $passed passed, $failed failed"
exit "$status"
