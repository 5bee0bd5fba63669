"""Checks an ONNX file written by trainyard (workers/convert/ty_onnx.c).

usage: check_model.py MODEL.onnx KIND [LABELS_JSON]

onnx.checker with full_check (shape inference included), then what
docs/onnx.md promises: opset, the metadata (kind, labels), the graph's
input and output names. Prints one line; exit status 0 when all hold.
Run with Debian's /usr/bin/python3 (python3-onnx).
"""
import json
import sys

import onnx

IO = {
    "textclf": (["ids"], ["probs"]),
    "mlp": (["x"], None),
    "cnn": (["image"], ["probs"]),
    "ncf": (["user", "item"], ["score"]),
}


def main():
    path, kind = sys.argv[1], sys.argv[2]
    labels = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("trainyard.kind") != kind:
        sys.exit("kind %r, expected %r" % (meta.get("trainyard.kind"), kind))
    if labels is not None and json.loads(meta.get("trainyard.labels", "null")) != labels:
        sys.exit("labels %r, expected %r" % (meta.get("trainyard.labels"), labels))
    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets.get("") != 13:
        sys.exit("opset %r" % opsets)
    inputs, outputs = IO[kind]
    got_in = [i.name for i in model.graph.input]
    if got_in != inputs:
        sys.exit("inputs %r, expected %r" % (got_in, inputs))
    got_out = [o.name for o in model.graph.output]
    if outputs is not None and got_out != outputs:
        sys.exit("outputs %r, expected %r" % (got_out, outputs))
    # Shape inference must reach the output with its fixed width.
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].dim_value:
        sys.exit("output shape %r" % dims)
    print("ok %s: %d nodes, %d initializers, ir %d" % (
        path, len(model.graph.node), len(model.graph.initializer), model.ir_version))


if __name__ == "__main__":
    main()
