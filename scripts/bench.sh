#!/usr/bin/env bash
# Builds and runs shmbus's benchmark suite side by side with its peers (iceoryx, Unix domain
# sockets, Boost.Interprocess, raw shared-memory floors) and writes docs/BENCHMARKS.md with
# plots in docs/bench/.
#
#   scripts/bench.sh            full suite (3 rounds, ~3 minutes of measuring on the 2-core dev machine)
#   scripts/bench.sh --quick    reduced suite, under a minute (CI runs this)
#
# Extra arguments go to bench/run_bench.py (e.g. --rounds 5, --no-iceoryx).
# Installs missing Debian packages with apt-get (root or sudo): the build deps, iceoryx,
# gnuplot-nox for the plots.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${SHMBUS_BENCH_BUILD:-$ROOT/build-bench}

# shellcheck source=deps.sh
source "$ROOT/scripts/deps.sh"
shmbus_install_deps

BENCH_PACKAGES=(iceoryx libiceoryx-posh-dev libiceoryx-hoofs-dev libboost-dev gnuplot-nox python3)
missing=()
for pkg in "${BENCH_PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != "installed" ]; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  echo "bench: installing ${missing[*]}"
  if ! { "${sudo[@]}" apt-get update &&
         "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }; then
    echo "bench: could not install ${missing[*]}; peers or plots whose packages are missing are skipped" >&2
  fi
fi

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DSHMBUS_BUILD_TESTS=OFF -DSHMBUS_BUILD_EXAMPLES=OFF -DSHMBUS_BUILD_BENCH=ON
# The iceoryx peer, when CMake found iceoryx. (Not `ninja -t targets | grep -q`: grep -q exits
# at its first match, ninja then dies of SIGPIPE, and under pipefail the peer was skipped in
# some runs.)
targets=$(ninja -C "$BUILD" -t targets all 2>/dev/null || true)
peers=()
if grep -q '^shmbus_bench_iox:' <<<"$targets"; then peers=(shmbus_bench_iox); fi
# The durable-topic cases (bench/durable_bench.cpp) in full runs only: CI's --quick run keeps
# its build short, and run_bench.py skips them, saying so, when the binary is not there.
[[ " $* " == *" --quick "* ]] || peers+=(shmbus_durable_bench)
# The NATS bridge (bridge/tests/bridge_bench.cpp), full runs only, when it was configured.
if [[ " $* " != *" --quick "* ]] && grep -q '^shmbus_bridge_bench:' <<<"$targets"; then peers+=(shmbus_bridge_bench); fi
# What the metrics counters cost (bench/metrics_cost.py), full runs only: the bench and the
# profile loop again, linked to the library built without its counter updates.
[[ " $* " == *" --quick "* ]] || peers+=(shmbus_bench_counters shmbus_bench_nocounters shmbus_profile shmbus_profile_nocounters)
ninja -C "$BUILD" shmbus_bench "${peers[@]}"

# Debian's python3 (for nothing beyond the standard library; plots are made with gnuplot).
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
exec "$PY" "$ROOT/bench/run_bench.py" --build "$BUILD" "$@"
