#!/usr/bin/env bash
# gpu-kit.sh: prepares, on a machine with Debian's package registry, what `launch/gpu-check.sh` needs on
# a GPU machine that has no network (CUDA toolkit, PyTorch and NCCL's wheel, but no Open MPI, no cJSON,
# no libmicrohttpd):
#
#   bash launch/gpu-kit.sh [KIT]        KIT defaults to gpukit/ in the checkout (listed in .git/info/exclude)
#
#   KIT/debs/   Open MPI 4.1, cJSON, libmicrohttpd and the libraries they load that a CUDA image may lack
#               (apt-get download: ~12 MB); gpu-check.sh unpacks them with dpkg -x into KIT/root/ there
#   KIT/nccl/   nccl.h of this machine's NCCL, for a NCCL wheel that ships no header (the API is stable in 2.x)
#   KIT/peer/   a copy of ../shared/peer (transformers + bitsandbytes beside pp8, phase 4)
#
# Then send the checkout with KIT along (the device tool's carry: ["gpukit"]) and run
# `bash launch/gpu-check.sh OUT` there. Unpacked libraries are used only by the commands gpu-check.sh
# runs (LD_LIBRARY_PATH and OPAL_PREFIX for pp8, mpirun and the build), never by the image's Python.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kit=${1:-$here/gpukit}
case "$kit" in -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
mkdir -p "$kit"
kit=$(cd "$kit" && pwd)
say() { echo "[gpu-kit] $*" >&2; }

# What pp8, mpirun and Open MPI's plugins load (ldd on this machine's build), minus what every Ubuntu or
# Debian image has (libc6, libstdc++6, libgcc-s1, zlib, zstd, lzma, OpenSSL, udev, uuid).
pkgs=(openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libhwloc15 libevent-core-2.1-7
      libevent-pthreads-2.1-7 libfabric1 libucx0 libpsm-infinipath1 libpsm2-2 librdmacm1 libibverbs1
      ibverbs-providers libnl-3-200 libnl-route-3-200 libnuma1 libmunge2 libltdl7 libxnvctrl0 libpciaccess0
      libcjson1 libcjson-dev libmicrohttpd12 libmicrohttpd-dev libgnutls30 libnettle8 libhogweed6 libgmp10
      libtasn1-6 libp11-kit0 libidn2-0 libunistring2 libffi8 libatomic1)
command -v apt-get >/dev/null || { say "error: apt-get not found: run this on a Debian/Ubuntu machine with its package registry"; exit 1; }
rm -rf "$kit/debs.tmp" && mkdir -p "$kit/debs.tmp"
say "downloading ${#pkgs[@]} Debian packages into $kit/debs"
if ! (cd "$kit/debs.tmp" && apt-get download "${pkgs[@]}" > "$kit/apt.log" 2>&1); then
  tail -5 "$kit/apt.log" >&2
  say "error: apt-get download failed (log: $kit/apt.log): run apt-get update, or check the registry"; exit 1
fi
rm -rf "$kit/debs" "$kit/root" && mv "$kit/debs.tmp" "$kit/debs"  # root/ is unpacked on the GPU machine

nccl_h=""
for d in /usr/local/cuda/include /usr/include; do [ -f "$d/nccl.h" ] && { nccl_h=$d/nccl.h; break; }; done
if [ -n "$nccl_h" ]; then
  mkdir -p "$kit/nccl" && cp "$nccl_h" "$kit/nccl/nccl.h"
  say "nccl.h from $nccl_h ($(grep -m1 -o 'NCCL_VERSION_CODE [0-9]*' "$nccl_h" || echo 'version unknown'))"
else
  say "warning: no nccl.h on this machine: the GPU machine's NCCL wheel must ship one"
fi

peer=$here/../shared/peer
[ -d "$peer" ] || { say "error: $peer not found (the peer kit); phase 4 needs it"; exit 1; }
rm -rf "$kit/peer" && cp -r "$peer" "$kit/peer" && chmod -R u+w "$kit/peer"

# keep the kit out of git, wherever it is inside the checkout
if [ -d "$here/.git" ]; then
  case "$kit/" in
    "$here"/*) rel=/${kit#"$here"/}/
      grep -qxF "$rel" "$here/.git/info/exclude" 2>/dev/null || echo "$rel" >> "$here/.git/info/exclude" ;;
  esac
fi
mb=$(du -sm "$kit" | cut -f1)
say "kit ready: $kit, ${mb} MB (the device tool carries at most 64 MiB in all)"
[ "$mb" -lt 60 ] || { say "error: the kit is ${mb} MB, too large to carry"; exit 1; }
