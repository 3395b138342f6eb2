#!/usr/bin/env bash
# The Vulkan loader and Mesa's Vulkan drivers, for the webgpu backend: lavapipe (a software GPU) runs
# its tests on machines without a GPU. Dawn refuses Debian 12's own Mesa (22.3), so Mesa comes from
# Debian's bookworm-backports suite (25.x), which this adds to apt's sources when it is missing.
# Idempotent; needs root to install (prints what is missing otherwise and exits 1).
set -euo pipefail

mesa_ok() {
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 23 && dpkg -s libvulkan1 >/dev/null 2>&1
}

mesa_ok && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "setup: missing libvulkan1 and mesa-vulkan-drivers ≥ 23 (Debian: from bookworm-backports, as root); the webgpu tests need them" >&2
  exit 1
fi
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
target=()
if [ "$codename" = bookworm ]; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
  fi
  target=(-t bookworm-backports)
fi
echo "setup: installing libvulkan1 and mesa-vulkan-drivers ${target[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${target[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null
mesa_ok || { echo "setup: mesa-vulkan-drivers ≥ 23 could not be installed" >&2; exit 1; }
