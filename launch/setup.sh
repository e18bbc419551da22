#!/usr/bin/env bash
# Installs what pp8 needs to build, run and test on Debian/Ubuntu (as root; otherwise it only checks and says
# what is missing). Used by tests/run.sh and launch/quickstart.sh.
set -euo pipefail
# clang + libclang-rt-14-dev (libFuzzer, the sanitizers' runtimes) + libomp-dev (clang's OpenMP): launch/fuzz.sh
pkgs=(cmake make gcc g++ libopenmpi-dev openmpi-bin libcjson-dev libmicrohttpd-dev curl pkg-config gnuplot-nox python3
      python3-venv clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "pp8 setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "pp8 setup: missing Debian packages: ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
