#!/usr/bin/env bash
# The README's main command: installs what is missing, builds, starts a
# local cluster (redis-server with AOF, the broker, the scheduler and the
# prepare/train x2/evaluate/convert/control workers) and runs workflow 000,
# the filename classifier, end to end on data the project ships:
#   1. the pipeline: validated import with 5 folds, 5-fold cross-validation
#      in parallel on the two train workers (mean +- std), the final model,
#      its evaluation with a quality gate, an INT8 edge model, promotion;
#   2. the evaluation report, 3. the registered model and its audit log,
#   4. predictions with the INT8 model through the C99 runtime a device uses,
#   5. the feedback loop: a retrain trigger, 120 feedback samples appended,
#      the retrain pipeline it starts, and a nightly schedule;
# then stops the cluster. State lives in ./.trainyard-demo.
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
export TRAINYARD_REDIS=redis://127.0.0.1:$rport
export OPENBLAS_NUM_THREADS=1      # one thread per job on a small machine (see README)
data=$PWD/examples/data
pipelines=$PWD/examples/pipelines

cleanup () { "$ty" down --state-dir "$state" >/dev/null 2>&1 || true; }
trap cleanup EXIT
# A demo starts from scratch: a previous run's cluster and state go.
cleanup
rm -rf "$state"
echo "== starting a local cluster in $state"
"$ty" up --detach --state-dir "$state" --port "$port" --redis-port "$rport" \
         --workers prepare=1,train=2,evaluate=1,convert=1,control=1
"$ty" workers

echo
echo "== 1. workflow 000: the filename classifier pipeline ($pipelines/000-filenames.yaml)"
pid=$("$ty" pipeline run "$pipelines/000-filenames.yaml" --set data="$data")
"$ty" pipeline status "$pid" --watch

echo
echo "== 2. the evaluation report of the model it trained (test split, gate)"
"$ty" evaluate --model filenames --show

echo
echo "== 3. the registered model: versions, stages, artifacts, audit log"
"$ty" model show filenames@1
"$ty" model history filenames

echo
echo "== 4. predict with the production model's INT8 file (the C99 runtime a Raspberry Pi uses)"
printf '%s\n' "The.Expanse.S03E04.1080p.WEB-DL.x264-NTb.mkv" \
    "breaking_bad_5x14_hdtv.avi" "[RARBG] StrangerThings S4E7 2160p HEVC.mkv" |
    "$ty" predict --model filenames@production --format int8

echo
echo "== 5. the feedback loop: retrain after 100 new samples, and every night at 02:00"
"$ty" trigger add filenames-feedback --pipeline "$pipelines/000-retrain.yaml" \
    --dataset filenames --model filenames --new-samples 100
"$ty" schedule add filenames-nightly "0 2 * * *" "$pipelines/000-retrain.yaml"
"$ty" schedule list
"$ty" dataset append "$data/filenames-feedback.csv" --name filenames --label-case upper
echo "   waiting for the trigger to start the retrain pipeline..."
retrain=""
for _ in $(seq 60); do
    retrain=$("$ty" pipeline list --json |
              sed -n 's/.*"id":"\(p-[0-9a-z]*\)","name":"filenames-retrain".*/\1/p' | head -1)
    [ -n "$retrain" ] && break
    sleep 1
done
if [ -n "$retrain" ]; then
    "$ty" pipeline status "$retrain" --watch || true
    "$ty" model history filenames
else
    echo "   (the trigger did not fire within a minute: see $state/logs/scheduler.log)"
fi

echo
echo "== the cluster's view"
"$ty" pipeline list
echo
echo "Redis holds the job state, readable with redis-cli:"
echo "  redis-cli -p $rport SMEMBERS ty:pipeline:$pid"
echo "  redis-cli -p $rport XRANGE ty:events - + COUNT 10"
echo "Datasets and models are under $state/data; the other workflows: examples/README.md."
echo "== stopping the cluster"
