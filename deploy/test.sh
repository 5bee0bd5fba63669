#!/usr/bin/env bash
# The README's test command: installs what is missing, builds, runs every
# test against a real redis-server and real ZeroMQ; then the same suite
# under AddressSanitizer + UndefinedBehaviorSanitizer.
#   TY_TEST_FAST=1  skip the sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
echo "== build"
BUILD_DIR=build bash deploy/build.sh
echo "== tests"
(cd build && ctest --output-on-failure -j 2)
if [ "${TY_TEST_FAST:-0}" != 1 ]; then
    echo "== build with ASan + UBSan"
    BUILD_DIR=build-asan TY_SANITIZE=1 bash deploy/build.sh
    echo "== tests under ASan + UBSan"
    # detect_leaks: the test processes must free what they allocate too
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j 2)
fi
echo "== all tests passed"
