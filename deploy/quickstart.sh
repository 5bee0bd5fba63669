#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, starts a
# local cluster (redis-server with AOF, the broker, two noop workers),
# runs a batch of jobs while watching them, shows the cluster's view of
# them and stops the cluster. State lives in ./.trainyard-demo.
#
# The noop jobs stand in for real work until prepare/train/evaluate/convert
# land (issues 3-6): they sleep, report progress, and one of them fails on
# purpose and one is cancelled, so every outcome shows.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
BUILD_DIR=build bash deploy/build.sh
ty=./build/trainyard
state=${TRAINYARD_STATE:-$PWD/.trainyard-demo}
export TRAINYARD_BROKER=tcp://127.0.0.1:${TY_PORT:-7700}

cleanup () { "$ty" down --state-dir "$state" >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "== starting a local cluster in $state"
"$ty" up --detach --state-dir "$state" --port "${TY_PORT:-7700}" \
         --redis-port "${TY_REDIS_PORT:-7702}" --workers noop=2
"$ty" workers

echo "== a batch of 20 jobs (300 ms each) and a 3-step chain"
batch=$("$ty" submit noop --count 20 --sleep-ms 300 --name demo-batch)
a=$("$ty" submit noop --sleep-ms 500 --name step-1)
b=$("$ty" submit noop --sleep-ms 500 --name step-2 --after "$a")
c=$("$ty" submit noop --sleep-ms 500 --name step-3 --after "$b")
bad=$("$ty" submit noop --sleep-ms 200 --fail --name fails-on-purpose)
long=$("$ty" submit noop --sleep-ms 60000 --name cancelled-on-purpose)

echo "== watching the chain's last step"
"$ty" watch "$c"
"$ty" cancel "$long" --reason "demo: cancelled on purpose"
set +e
"$ty" watch $batch "$bad" "$long" >/dev/null
set -e
echo "== the cluster's view"
"$ty" list --limit 30
"$ty" status "$c"
echo
echo "Redis holds it all, readable with redis-cli:"
echo "  redis-cli -p ${TY_REDIS_PORT:-7702} HGETALL ty:job:$c"
echo "  redis-cli -p ${TY_REDIS_PORT:-7702} XRANGE ty:events - + COUNT 10"
echo "== stopping the cluster"
