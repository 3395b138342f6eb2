#!/usr/bin/env bash
# `npm run test:asan`: builds the native addon with AddressSanitizer (the Debug configuration of
# native/binding.gyp, into native/build/Debug; the Release build is left in place) and runs the cpu
# backend tests against it, once with the AVX-512 kernels and once forcing the AVX2 ones.
# Node itself is not instrumented, so libasan is preloaded; leak checking is off (V8 and oneDNN
# keep allocations until exit) and V8 keeps its own SIGSEGV handler.
set -euo pipefail
cd "$(dirname "$0")/.."

# TypeScript: other modules' type errors do not stop the emit; our compiled tests must exist.
npx --no-install tsc -p . >/dev/null 2>&1 || true
tests=(dist/test/backend-cpu-*.test.js dist/test/model-golden-cpu.test.js)
for t in "${tests[@]}"; do [ -f "$t" ] || { echo "test:asan: missing $t (TypeScript build failed?)" >&2; exit 1; }; done

npx --no-install node-gyp configure --nodedir=/usr --directory=native --loglevel=error >/dev/null
npx --no-install node-gyp build --debug --nodedir=/usr --directory=native --loglevel=error >/dev/null
[ -f native/build/Debug/adabatch.node ] || { echo "test:asan: native/build/Debug/adabatch.node was not built" >&2; exit 1; }

libasan="$(gcc -print-file-name=libasan.so)"
[ -f "$libasan" ] || { echo "test:asan: libasan not found (gcc -print-file-name=libasan.so gave '$libasan')" >&2; exit 1; }

run() {
  echo "test:asan: $*" >&2
  env "$@" ADABATCH_NATIVE_BUILD=Debug LD_PRELOAD="$libasan" \
    ASAN_OPTIONS=detect_leaks=0:handle_segv=0:allocator_may_return_null=1:abort_on_error=1:halt_on_error=1 \
    node --test --test-concurrency=2 "${tests[@]}"
}
run ADABATCH_AVX512=default
run ADABATCH_NO_AVX512=1
echo "test:asan: AddressSanitizer runs passed" >&2
