#!/usr/bin/env bash
# Installs the Debian 12 packages trainyard needs to build, test and run,
# skipping those already installed. Run as root (or with sudo available).
# Why each is here: see README.md, "Dependencies".
set -euo pipefail

pkgs=(
    gcc g++ make cmake pkg-config            # the build
    protobuf-c-compiler libprotobuf-c-dev    # wire schema -> C
    libzmq3-dev                              # transport
    libhiredis-dev redis-server              # job state
    libcjson-dev                             # JSON output of the CLI
    libcmocka-dev                            # unit and integration tests
    procps                                   # ps/pkill used by scripts
)
# Each module lists what it needs in deploy/deps/<module>.txt (one package
# a line, # comments), so parts can add packages without editing this file.
# "PKG command=CMD": the package counts as present when CMD is on the PATH
# already, whoever installed it (e.g. Node.js from NodeSource: Debian's npm
# package would conflict with it).
here=$(cd "$(dirname "$0")" && pwd)
declare -A provides=()
for f in "$here"/deps/*.txt; do
    [ -e "$f" ] || continue
    while read -r p rest; do
        case "$p" in ''|'#'*) continue ;; esac
        pkgs+=("$p")
        case "$rest" in command=*) c=${rest#command=}; provides[$p]=${c%% *} ;; esac
    done < "$f"
done
missing=()
for p in "${pkgs[@]}"; do
    if [ -n "${provides[$p]:-}" ] && command -v "${provides[$p]}" >/dev/null 2>&1; then
        continue
    fi
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#pkgs[@]} packages present"
    exit 0
fi
SUDO=
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists yet; an old list may miss versions.
$SUDO apt-get update -qq
# redis-server's postinst tries to start the system service; in a container
# or chroot without an init that fails harmlessly, and trainyard starts its
# own redis-server per state directory anyway.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
