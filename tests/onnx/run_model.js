// Runs an ONNX file written by trainyard with onnxruntime-node and compares
// its outputs with libtorch's.
//
// usage: node run_model.js CASE.json
// CASE.json: {"model": path, "tol": 1e-4,
//             "inputs":  [{"name", "type": "float32"|"int64", "dims", "data"}],
//             "outputs": [{"name", "dims", "data"}]}   (the shim's outputs)
// Prints the largest difference; exit status 0 when every output has the
// expected shape and every value is within tol.
// onnxruntime-node comes from NODE_PATH (npm install --ignore-scripts into
// the build tree: tests/modules/onnx.cmake).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function fail (msg) {
    console.error('run_model: ' + msg);
    process.exit(1);
}

async function main () {
    const c = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
    const session = await ort.InferenceSession.create(c.model,
        { intraOpNumThreads: 1, interOpNumThreads: 1 });
    const feeds = {};
    for (const i of c.inputs) {
        const data = i.type === 'int64'
            ? BigInt64Array.from(i.data.map((v) => BigInt(v)))
            : Float32Array.from(i.data);
        feeds[i.name] = new ort.Tensor(i.type, data, i.dims);
    }
    const res = await session.run(feeds);
    let worst = 0;
    for (const o of c.outputs) {
        const got = res[o.name];
        if (!got)
            fail('no output ' + o.name + ' (has ' + Object.keys(res).join(',') + ')');
        if (JSON.stringify(Array.from(got.dims)) !== JSON.stringify(o.dims))
            fail(o.name + ': dims ' + JSON.stringify(got.dims) + ', expected ' + JSON.stringify(o.dims));
        for (let k = 0; k < o.data.length; k++) {
            const d = Math.abs(got.data[k] - o.data[k]);
            if (!(d <= c.tol))
                fail(o.name + '[' + k + ']: onnx ' + got.data[k] + ', libtorch ' + o.data[k]);
            worst = Math.max(worst, d);
        }
    }
    console.log('ok ' + c.model + ': max |onnx - libtorch| = ' + worst.toExponential(2));
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
