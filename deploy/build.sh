#!/usr/bin/env bash
# Configures and builds trainyard into BUILD_DIR (default ./build).
#   TY_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer build
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BUILD_DIR:-build}
san=${TY_SANITIZE:-0}
opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTY_WERROR=ON)
[ "$san" = 1 ] && opts+=(-DTY_SANITIZE=ON)
cmake -S . -B "$dir" "${opts[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" 2>&1 | grep -Ev '^\[ *[0-9]+%\]|^Consolidate|^Scanning|^Built target' || true
test -x "$dir/trainyard-broker" && test -x "$dir/trainyard"
