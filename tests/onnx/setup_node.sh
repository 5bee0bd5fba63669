#!/bin/sh
# The onnx_node_setup fixture: onnxruntime-node from the npm registry into
# DIR/node_modules, once per build tree. --ignore-scripts: the package's
# install script only fetches GPU parts; the CPU runtime is in the package.
# A registry this machine cannot reach (no network, a proxy whose CA it
# lacks) is not a failure of trainyard: npm's reason goes to DIR/UNAVAILABLE,
# and unit_onnx then checks the exports with onnx.checker only and reports
# itself SKIPPED with that reason.
#   setup_node.sh NPM DIR
npm=$1 dir=$2
mkdir -p "$dir" || exit 1
rm -f "$dir/UNAVAILABLE"
[ -f "$dir/node_modules/onnxruntime-node/package.json" ] && exit 0
if "$npm" install --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error \
        onnxruntime-node >"$dir/npm.log" 2>&1; then
    exit 0
fi
cat "$dir/npm.log"
grep -m1 -i 'npm \(ERR!\|error\).*\(reason\|code\)' "$dir/npm.log" >"$dir/UNAVAILABLE" \
    || echo "npm install onnxruntime-node failed" >"$dir/UNAVAILABLE"
exit 0
