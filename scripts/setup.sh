#!/usr/bin/env bash
# Makes this checkout ready to run: system packages (when root and missing), npm dependencies,
# the TypeScript build and the native addon. Idempotent and quick when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libdnnl-dev openmpi-bin libopenmpi-dev chromium)  # chromium: the report tests (headless)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${missing[*]} (install them with apt-get as root)" >&2
    exit 1
  fi
fi

# The webgpu backend's tests run on Mesa's software Vulkan driver (lavapipe) where there is no GPU.
bash scripts/install-vulkan.sh || echo "setup: continuing without Vulkan: the webgpu tests will say they are skipped" >&2

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

npx --no-install tsc -p . >&2 || { echo "setup: TypeScript build failed" >&2; exit 1; }

if [ -f native/binding.gyp ]; then
  if [ -f native/build/Makefile ]; then
    npx --no-install node-gyp build --nodedir=/usr --directory=native --loglevel=error >&2
  else
    npx --no-install node-gyp rebuild --nodedir=/usr --directory=native --loglevel=error >&2
  fi
fi
