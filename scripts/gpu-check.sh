#!/usr/bin/env bash
# The device check of a Linux machine with an NVIDIA GPU, in one command (docs/gpu.md, "Device check
# on an NVIDIA GPU"): the step benchmark of presets A, B and C on webgpu and TF.js beside PyTorch on
# CUDA (fp32, bf16 autocast), then the webgpu tests on the GPU, written to one JSON file. The GPU
# machine needs nothing but glibc and its NVIDIA driver: no Node, no Vulkan loader, no network.
#
#   bash scripts/gpu-check.sh pack [--out FILE.tar.xz]
#       On a machine set up for adabatch, after `npm run build`: writes the bundle (Node, dist/, the
#       node_modules needed at run time, the addon, the Vulkan loader and the libraries the machine
#       may lack) to .gpu-check/adabatch-gpu-check.tar.xz (git-ignored).
#   bash scripts/gpu-check.sh run [--bundle FILE.tar.xz] [--out FILE.json] [--software] [options of bench gpu-check]
#       On the GPU machine, from this checkout (the tests read test/fixtures from it): unpacks the
#       bundle to $ADABATCH_GPU_CHECK_DIR (default ${TMPDIR:-/tmp}/adabatch-gpu-check), finds the
#       NVIDIA Vulkan driver, and runs `bench gpu-check` with the bundled Node. The JSON goes to --out
#       (default gpu-check.json), every child's output to the .log beside it. --software runs on Mesa's
#       lavapipe instead of the NVIDIA driver (to try the bundle on a machine without a GPU; use
#       --presets tiny there). Other options go to bench/gpu-check.ts: --presets A,B,C, --steps N,
#       --warmup N, --no-tests, --no-tfjs, --no-torch, --test-timeout S, --bench-timeout S, --torch-timeout S.
#       ADABATCH_GPU_CHECK_BUNDLE_LIBS=all takes every library from the bundle, as on a bare machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE_NAME=adabatch-gpu-check

die() {
  echo "gpu-check: $*" >&2
  exit 1
}

pack() {
  command -v node >/dev/null || die "pack runs on a machine set up for adabatch (Node, npm run build); this one has no node"
  exec node "$ROOT/scripts/gpu-bundle.js" "$@"
}

# ---- run: helpers --------------------------------------------------------------------------------

# Whether the dynamic loader finds library $1 without the bundle: in its cache, on the caller's
# LD_LIBRARY_PATH, or in the driver's folders. ADABATCH_GPU_CHECK_BUNDLE_LIBS=all answers no for
# every library, to try the bundle's own on a machine that has them all.
host_has_library() {
  local dir
  [ "${ADABATCH_GPU_CHECK_BUNDLE_LIBS-}" = all ] && return 1
  grep -q "^[[:space:]]*$1 (.*x86-64" <<<"$LDCACHE" && return 0
  for dir in ${HOST_LD_LIBRARY_PATH//:/ } $DRIVER_LIB_DIRS; do
    [ -e "$dir/$1" ] && return 0
  done
  return 1
}

host_library_path() {
  [ "${ADABATCH_GPU_CHECK_BUNDLE_LIBS-}" = all ] && return 0
  grep -m1 "^[[:space:]]*$1 (.*x86-64" <<<"$LDCACHE" | sed 's/.*=> //'
}

# Version $1 ≥ version $2 (dotted numbers).
version_ge() {
  [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]
}

note() {
  echo "$1=$2" >>"$SETUP"
}

unpack() {
  local bundle=$1 work=$2 stamp
  stamp=$(cksum <"$bundle")
  if [ -f "$work/$BUNDLE_NAME/.unpacked" ] && [ "$(cat "$work/$BUNDLE_NAME/.unpacked")" = "$stamp" ]; then
    return
  fi
  rm -rf "${work:?}/$BUNDLE_NAME"
  mkdir -p "$work"
  echo "gpu-check: unpacking $bundle to $work" >&2
  if command -v xz >/dev/null; then
    xz -dc "$bundle" | tar -C "$work" -xf -
  elif command -v python3 >/dev/null && python3 -c 'import lzma' 2>/dev/null; then
    # No xz on the machine: Python's tarfile reads .tar.xz through its lzma module.
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle" "$work"
  else
    die "cannot unpack $bundle: the machine has neither xz nor Python's lzma module"
  fi
  echo "$stamp" >"$work/$BUNDLE_NAME/.unpacked"
}

# The NVIDIA Vulkan driver's manifest: the folders the Vulkan loader reads, the NVIDIA container
# runtime's /usr/local/nvidia, and glvnd's folder, where some packages put it.
find_nvidia_icd() {
  local dir f
  for dir in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/local/etc/vulkan/icd.d \
    /usr/local/nvidia/share/vulkan/icd.d /usr/local/nvidia/etc/vulkan/icd.d /usr/share/glvnd /etc/glvnd; do
    for f in "$dir"/nvidia_icd*.json "$dir"/*/nvidia_icd*.json; do
      [ -f "$f" ] && { echo "$f"; return 0; }
    done
  done
  return 0
}

# ---- run ---------------------------------------------------------------------------------------

run() {
  local bundle="$ROOT/.gpu-check/$BUNDLE_NAME.tar.xz" out="$PWD/gpu-check.json" software=0 args=()
  while [ $# -gt 0 ]; do
    case $1 in
      --bundle) bundle=$2; shift 2 ;;
      --out) out=$2; shift 2 ;;
      --software) software=1; shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  [ -f "$bundle" ] || die "no bundle at $bundle: make it with 'bash scripts/gpu-check.sh pack' on a machine set up for adabatch, and bring it along"
  case $out in /*) ;; *) out="$PWD/$out" ;; esac
  mkdir -p "$(dirname "$out")"

  local work=${ADABATCH_GPU_CHECK_DIR:-${TMPDIR:-/tmp}/adabatch-gpu-check}
  unpack "$bundle" "$work"
  local B="$work/$BUNDLE_NAME"
  # shellcheck source=/dev/null
  . "$B/bundle.env"

  SETUP="$work/setup.txt"
  : >"$SETUP"
  HOST_LD_LIBRARY_PATH=${LD_LIBRARY_PATH-}
  local ldconfig
  ldconfig=$(command -v ldconfig || { [ -x /sbin/ldconfig ] && echo /sbin/ldconfig; } || { [ -x /usr/sbin/ldconfig ] && echo /usr/sbin/ldconfig; } || true)
  # The loader's cache, read once (grep -q on a pipe from ldconfig would end it early: SIGPIPE).
  LDCACHE=$([ -n "$ldconfig" ] && "$ldconfig" -p 2>/dev/null || true)
  DRIVER_LIB_DIRS=""
  local d
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && DRIVER_LIB_DIRS="$DRIVER_LIB_DIRS $d"
  done

  # glibc is the one thing the bundle takes from the machine.
  local glibc
  glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
  note glibc "${glibc:-unknown}"
  if [ -n "$glibc" ] && ! version_ge "$glibc" "$GLIBC_NEEDED"; then
    note problem "glibc $glibc is older than $GLIBC_NEEDED, which the bundled Node, dawn.node or libraries need"
    echo "gpu-check: this machine's glibc $glibc is older than $GLIBC_NEEDED, which the bundle needs: expect failures to load" >&2
  fi

  # Libraries the machine lacks come from the bundle; the machine's own are preferred, since they
  # match the rest of its system (lib/always, the Vulkan loader, is always the bundle's).
  local fallback="$work/lib-fallback" lib name used=()
  rm -rf "$fallback"
  mkdir -p "$fallback"
  take_from_bundle() {
    name=$(basename "$1")
    ln -s "$1" "$fallback/$name"
    used+=("$name")
    local needs=" $GLIBC_BY_LIBRARY "
    needs=${needs#* "$name"=}
    needs=${needs%% *}
    if [ -n "$glibc" ] && [ -n "$needs" ] && ! version_ge "$glibc" "$needs"; then
      note problem "the machine lacks $name, and the bundle's copy needs glibc $needs (the machine has $glibc)"
    fi
  }
  for lib in "$B"/lib/fallback/*; do
    host_has_library "$(basename "$lib")" || take_from_bundle "$lib"
  done
  # libstdc++: the machine's, if it has the newest GLIBCXX version the bundle needs.
  local cxx
  cxx=$(host_library_path libstdc++.so.6 || true)
  if [ -z "$cxx" ] || ! grep -qa "GLIBCXX_$GLIBCXX_NEEDED" "$cxx"; then
    for lib in "$B"/lib/cxx/*; do take_from_bundle "$lib"; done
  fi
  local always=("$B"/lib/always/*)
  note libraries_from_bundle "${always[*]##*/}${used[*]+ ${used[*]}}"

  # The Vulkan driver.
  local icd="" no_webgpu=""
  if [ "$software" = 1 ]; then
    icd=${VK_DRIVER_FILES:-/usr/share/vulkan/icd.d/lvp_icd.json}
    [ -f "$icd" ] || die "--software: no lavapipe manifest at $icd (Debian: mesa-vulkan-drivers; or set VK_DRIVER_FILES)"
  else
    icd=${VK_DRIVER_FILES:-${VK_ICD_FILENAMES:-}}
    if [ -n "$icd" ] && ! grep -qi nvidia "$icd" 2>/dev/null; then icd=""; fi
    [ -n "$icd" ] || icd=$(find_nvidia_icd)
    if [ -z "$icd" ]; then
      no_webgpu="the NVIDIA Vulkan driver is missing: no nvidia_icd.json in /usr/share/vulkan/icd.d, /etc/vulkan/icd.d, /usr/local/nvidia/share/vulkan/icd.d or /usr/share/glvnd. In a container, the NVIDIA runtime installs it only when NVIDIA_DRIVER_CAPABILITIES includes graphics (or is all); here it is '${NVIDIA_DRIVER_CAPABILITIES-unset}'"
      echo "gpu-check: $no_webgpu; running PyTorch only" >&2
      note problem "$no_webgpu"
    fi
  fi
  if [ -n "$icd" ]; then
    # Both names: VK_DRIVER_FILES for loaders from 1.3.207 on, VK_ICD_FILENAMES for older ones.
    export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
    note icd "$icd"
  fi
  if [ -z "${XDG_RUNTIME_DIR-}" ]; then
    export XDG_RUNTIME_DIR="$work/xdg"
    mkdir -p -m 700 "$XDG_RUNTIME_DIR"
  fi

  # The golden fixtures of the tests come from this checkout.
  if [ -d "$ROOT/test/fixtures" ]; then
    mkdir -p "$B/app/test"
    ln -sfn "$ROOT/test/fixtures" "$B/app/test/fixtures"
  fi

  local driver_path=""
  for d in $DRIVER_LIB_DIRS; do driver_path="$driver_path:$d"; done
  export ADABATCH_GPU_CHECK_HOST_LD_LIBRARY_PATH="$HOST_LD_LIBRARY_PATH"
  export LD_LIBRARY_PATH="$B/lib/always:$fallback${HOST_LD_LIBRARY_PATH:+:$HOST_LD_LIBRARY_PATH}$driver_path"
  export ADABATCH_GPU_CHECK_BUNDLE="$B" ADABATCH_GPU_CHECK_SETUP="$SETUP"
  local extra=()
  # lavapipe runs the tests in about 5 minutes on 2 cores, and a step of a preset larger than tiny in minutes.
  [ "$software" = 1 ] && extra+=(--software --steps 2 --warmup 1 --test-timeout 900)
  [ -n "$no_webgpu" ] && extra+=(--no-webgpu "$no_webgpu")
  cd "$B/app"
  exec "$B/bin/node" dist/bench/main.js gpu-check --out "$out" ${extra[@]+"${extra[@]}"} ${args[@]+"${args[@]}"}
}

case ${1-} in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) die "usage: bash scripts/gpu-check.sh pack [--out FILE.tar.xz] | run [--bundle FILE.tar.xz] [--out FILE.json] [--software] [--presets A,B,C] [...]" ;;
esac
