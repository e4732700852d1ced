"""Make a converted model's batch dimension dynamic.

tflite2onnx keeps the TFLite model's fixed batch (MobileFaceNet: 2) in the graph input, the
graph output and the final Reshape's target shape. This turns all three into a symbolic
`batch`, so one face runs as a batch of one and several faces as one batch. Usage:
    python dynamic_batch.py IN.onnx OUT.onnx
"""
import sys

import onnx
from onnx import numpy_helper

src, dst = sys.argv[1], sys.argv[2]
model = onnx.load(src)
graph = model.graph
fixed = graph.input[0].type.tensor_type.shape.dim[0].dim_value
if fixed < 1:
    sys.exit(f"{src}: input batch is already dynamic")
for value in list(graph.input[:1]) + list(graph.output):
    value.type.tensor_type.shape.dim[0].dim_param = "batch"
inits = {i.name: i for i in graph.initializer}
outputs = {o.name for o in graph.output}
patched = 0
for node in graph.node:
    if node.op_type == "Reshape" and node.output[0] in outputs and node.input[1] in inits:
        shape = numpy_helper.to_array(inits[node.input[1]]).copy()
        if shape[0] == fixed:
            shape[0] = -1
            inits[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
            patched += 1
if patched == 0:
    sys.exit(f"{src}: no output Reshape with batch {fixed} found")
onnx.checker.check_model(model)
onnx.save(model, dst)
print(f"batch {fixed} -> dynamic ({patched} reshape patched)")
