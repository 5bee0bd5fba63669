#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, starts a
# local cluster (redis-server with AOF, the broker, noop/prepare/train/
# evaluate workers) and runs real work on data the project ships:
#   1. a batch of noop jobs and a 3-step dependency chain, watched live;
#   2. import examples/data/fortunes-5.tsv as a dataset (validated, split);
#   3. train a fastText-style text classifier on it (libtorch);
#   4. evaluate it on the test split with a quality gate and print the report;
#   5. promote it in the model registry (refused if the gate failed);
#   6. predict with its portable file and the C99 runtime;
# then shows the cluster's view and stops it. State lives in ./.trainyard-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
BUILD_DIR=build bash deploy/build.sh
ty=./build/trainyard
state=${TRAINYARD_STATE:-$PWD/.trainyard-demo}
port=${TY_PORT:-7700}
rport=${TY_REDIS_PORT:-7702}
export TRAINYARD_BROKER=tcp://127.0.0.1:$port
export TRAINYARD_DATA=$state/data
export OPENBLAS_NUM_THREADS=1      # one thread per job on a small machine (see README)

cleanup () { "$ty" down --state-dir "$state" >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "== starting a local cluster in $state"
"$ty" up --detach --state-dir "$state" --port "$port" --redis-port "$rport" \
         --workers noop=2,prepare=1,train=1,evaluate=1
"$ty" workers

echo "== 1. a batch of 10 noop jobs and a 3-step chain"
batch=$("$ty" submit noop --count 10 --sleep-ms 200 --name demo-batch)
a=$("$ty" submit noop --sleep-ms 300 --name step-1)
b=$("$ty" submit noop --sleep-ms 300 --name step-2 --after "$a")
c=$("$ty" submit noop --sleep-ms 300 --name step-3 --after "$b")
"$ty" watch "$c"
"$ty" watch $batch >/dev/null

echo "== 2. import a dataset"
"$ty" dataset import examples/data/fortunes-5.tsv --name fortunes5
"$ty" dataset show fortunes5

echo "== 3. train a text classifier (fastText-style, libtorch)"
"$ty" train --dataset fortunes5 --model textclf --name fortunes \
            --epochs 20 --lr 0.5 --dim 50 --word-ngrams 2 --bucket 200000 --patience 5

echo "== 4. evaluate it with a quality gate"
"$ty" evaluate --model fortunes --gate examples/fortunes-gate.yaml

echo "== 5. the model registry: promote the version (refused if its gate failed)"
ver=$("$ty" model list --json | sed -n 's/.*"latest":[ ]*\([0-9][0-9]*\).*/\1/p' | head -1)
"$ty" model promote "fortunes@${ver:-1}" --stage production --who quickstart --why "gate passed" \
    || echo "(not promoted: see the gate above)"
"$ty" model history fortunes

echo "== 6. predict with the production model's portable file (the C99 runtime devices use)"
echo "   (three lines of the demo data: startrek, zippy, politics)"
printf '%s\n' "Beam me up, Scotty! It ate my phaser!" \
    "Don't hit me!! I'm in the Twilight Zone!!!" \
    "It is difficult to legislate morality in the absence of moral legislators." |
    "$ty" predict --model fortunes@production

echo "== the cluster's view"
"$ty" list --limit 8
echo
echo "Redis holds the job state, readable with redis-cli:"
echo "  redis-cli -p $rport HGETALL ty:job:$c"
echo "  redis-cli -p $rport XRANGE ty:events - + COUNT 10"
echo "Datasets and models are under $state/data."
echo "== stopping the cluster"
