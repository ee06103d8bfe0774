# Sourced by demo.sh and test.sh: installs, on Debian 12, the packages shmbus needs to build
# and test. The library needs Cap'n Proto only; the tests GoogleTest/GMock; the daemon
# spdlog, CLI11, toml++ and libsystemd; the CLI CLI11 and nlohmann-json. libboost-dev is for
# the benchmarks (bench/ compares against Boost.Interprocess) and the daemon's metrics endpoint
# (Boost.Beast). The NATS bridge needs the C client (libnats-dev) and its tests a real
# nats-server; the Python package pybind11 and Debian's own /usr/bin/python3 with numpy and
# pytest; the metrics tests promtool (package prometheus); the bridge's TLS test makes its
# certificates with openssl. Runs apt only when something is
# missing, so a machine that has everything is left alone.
# Needs root, or sudo.

SHMBUS_DEB_PACKAGES=(
  build-essential cmake ninja-build pkg-config
  capnproto libcapnp-dev libboost-dev libspdlog-dev
  libgtest-dev libgmock-dev
  libcli11-dev libtomlplusplus-dev libsystemd-dev nlohmann-json3-dev
  libnats-dev nats-server openssl
  pybind11-dev python3-dev python3-numpy python3-pytest
  prometheus
)

shmbus_install_deps() {
  local missing=() pkg
  for pkg in "${SHMBUS_DEB_PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != "installed" ]; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#SHMBUS_DEB_PACKAGES[@]} packages already installed"
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "deps: missing ${missing[*]}; run as root (or install sudo)" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# Configures a build tree: Ninja for a new one, the existing generator for one already there.
# Usage: shmbus_configure BUILD_DIR [cmake -D options...]
shmbus_configure() {
  local dir=$1
  shift
  local generator=(-G Ninja)
  [ -f "$dir/CMakeCache.txt" ] && generator=()
  cmake -S "$SHMBUS_ROOT" -B "$dir" "${generator[@]}" "$@"
}

SHMBUS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
