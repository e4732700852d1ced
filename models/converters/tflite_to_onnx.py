"""Convert a float TensorFlow Lite model to ONNX, operator by operator, and prove the result.

tflite2onnx 0.4.1 has no LEAKY_RELU (nor DEQUANTIZE of fp16 weights, CAST, GREATER_EQUAL, LESS or
STRIDED_SLICE), which FaceAntiSpoofing needs. This converter reads the TFLite flatbuffer with the
pinned `tflite` package and writes the same graph in ONNX (opset 17): tensors stay NHWC as in
TFLite, and each convolution or pooling is wrapped in a pair of Transposes that ONNX Runtime's
layout optimiser removes. fp16 weights behind DEQUANTIZE are folded into fp32 initialisers.
Anything it does not know is refused by name, never approximated.

The converted model is then checked against the TFLite reference interpreter (ai-edge-litert)
on seeded inputs, run by the same ONNX Runtime release the node loads; the file is written only
when every output agrees within TOLERANCE. Usage:
    python tflite_to_onnx.py IN.tflite OUT.onnx
"""
import sys

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
TOLERANCE = 1e-3
CHECK_INPUTS = 3

OPS = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
NUMPY = {
    tflite.TensorType.FLOAT32: np.float32,
    tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32,
    tflite.TensorType.INT64: np.int64,
    tflite.TensorType.BOOL: np.bool_,
    tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT8: np.int8,
}
ONNX_TYPE = {
    tflite.TensorType.FLOAT32: TensorProto.FLOAT,
    tflite.TensorType.INT32: TensorProto.INT32,
    tflite.TensorType.INT64: TensorProto.INT64,
    tflite.TensorType.BOOL: TensorProto.BOOL,
}
NHWC_TO_NCHW = [0, 3, 1, 2]
NCHW_TO_NHWC = [0, 2, 3, 1]


class Unsupported(Exception):
    pass


class Converter:
    def __init__(self, buf):
        self.model = tflite.Model.GetRootAsModel(buf, 0)
        if self.model.SubgraphsLength() != 1:
            raise Unsupported(f"{self.model.SubgraphsLength()} subgraphs (only one is supported)")
        self.graph = self.model.Subgraphs(0)
        self.nodes = []
        self.initializers = {}
        self.consts = {}
        self.counter = 0

    # -- tensors --------------------------------------------------------------------------
    def name(self, index):
        return f"t{index}"

    def tensor(self, index):
        return self.graph.Tensors(index)

    def shape(self, index):
        t = self.tensor(index)
        return [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []

    def const(self, index):
        """The value of a constant tensor (stored or folded), or None."""
        if index in self.consts:
            return self.consts[index]
        t = self.tensor(index)
        buf = self.model.Buffers(t.Buffer())
        if buf.DataLength() == 0:
            return None
        if t.Type() not in NUMPY:
            raise Unsupported(f"constant {t.Name().decode()} of TFLite type {t.Type()}")
        value = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=NUMPY[t.Type()])
        value = value.reshape(self.shape(index))
        self.consts[index] = value
        return value

    def input(self, index):
        """The ONNX name of an operator input, adding constants as initialisers on first use."""
        value = self.const(index)
        name = self.name(index)
        if value is not None and name not in self.initializers:
            if value.dtype == np.float16:
                value = value.astype(np.float32)
            self.initializers[name] = numpy_helper.from_array(value, name)
        return name

    def fresh(self, stem):
        self.counter += 1
        return f"{stem}_{self.counter}"

    def constant(self, stem, value):
        name = self.fresh(stem)
        self.initializers[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def node(self, op, inputs, outputs, **attrs):
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(op), **attrs))

    # -- activation and layout helpers -----------------------------------------------------
    def fused(self, options_activation, raw_out, out):
        act = options_activation
        if act == tflite.ActivationFunctionType.NONE:
            self.node("Identity", [raw_out], [out])
        elif act == tflite.ActivationFunctionType.RELU:
            self.node("Relu", [raw_out], [out])
        elif act == tflite.ActivationFunctionType.RELU6:
            self.node("Clip", [raw_out, self.constant("zero", np.float32(0)), self.constant("six", np.float32(6))], [out])
        elif act == tflite.ActivationFunctionType.RELU_N1_TO_1:
            self.node("Clip", [raw_out, self.constant("m1", np.float32(-1)), self.constant("p1", np.float32(1))], [out])
        else:
            raise Unsupported(f"fused activation {act}")

    @staticmethod
    def same_pads(size, kernel, stride, dilation):
        """TensorFlow's SAME padding for one spatial axis: (begin, end)."""
        out = -(-size // stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2

    def pads(self, padding, in_hw, kernel, strides, dilations):
        if padding == tflite.Padding.VALID:
            return [0, 0, 0, 0]
        if padding != tflite.Padding.SAME:
            raise Unsupported(f"padding {padding}")
        (t, b) = self.same_pads(in_hw[0], kernel[0], strides[0], dilations[0])
        (l, r) = self.same_pads(in_hw[1], kernel[1], strides[1], dilations[1])
        return [t, l, b, r]

    def nchw_op(self, op, x, out, act, inputs=(), **attrs):
        """Runs an NCHW ONNX operator on an NHWC tensor: transpose, op, activation, transpose."""
        a = self.fresh("nchw")
        self.node("Transpose", [x], [a], perm=NHWC_TO_NCHW)
        b = self.fresh(op.lower())
        self.node(op, [a, *inputs], [b], **attrs)
        c = self.fresh("act")
        self.fused(act, b, c)
        self.node("Transpose", [c], [out], perm=NCHW_TO_NHWC)

    # -- operators ------------------------------------------------------------------------
    def convert_op(self, op):
        code = self.model.OperatorCodes(op.OpcodeIndex())
        kind = OPS.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        ins = list(op.InputsAsNumpy())
        outs = list(op.OutputsAsNumpy())
        out = self.name(outs[0])
        opts = op.BuiltinOptions()
        handler = getattr(self, "op_" + kind.lower(), None)
        if handler is None:
            raise Unsupported(f"operator {kind}")
        handler(op, ins, outs, out, opts)

    def op_dequantize(self, op, ins, outs, out, opts):
        value = self.const(ins[0])
        if value is not None and value.dtype == np.float16:
            self.consts[outs[0]] = value.astype(np.float32)
            return
        raise Unsupported("DEQUANTIZE of anything but a constant fp16 tensor")

    def conv(self, ins, out, o, weights, group=1):
        """CONV_2D and DEPTHWISE_CONV_2D: `weights` already in ONNX's O×I×H×W layout."""
        kernel = list(weights.shape[2:4])
        strides = [o.StrideH(), o.StrideW()]
        dil = [o.DilationHFactor(), o.DilationWFactor()]
        inputs = [self.constant("w", weights.astype(np.float32))]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.input(ins[2]))
        in_hw = self.shape(ins[0])[1:3]
        self.nchw_op("Conv", self.input(ins[0]), out, o.FusedActivationFunction(), inputs,
                     kernel_shape=kernel, strides=strides, dilations=dil, group=group,
                     pads=self.pads(o.Padding(), in_hw, kernel, strides, dil))

    def weights(self, kind, index):
        value = self.const(index)
        if value is None:
            raise Unsupported(f"{kind} with computed weights")
        return value

    def op_conv_2d(self, op, ins, outs, out, opts):
        o = tflite.Conv2DOptions()
        o.Init(opts.Bytes, opts.Pos)
        # TFLite O×H×W×I.
        self.conv(ins, out, o, self.weights("CONV_2D", ins[1]).transpose(0, 3, 1, 2))

    def op_depthwise_conv_2d(self, op, ins, outs, out, opts):
        o = tflite.DepthwiseConv2DOptions()
        o.Init(opts.Bytes, opts.Pos)
        weights = self.weights("DEPTHWISE_CONV_2D", ins[1])
        channels = self.shape(ins[0])[3]
        if weights.shape[3] != channels:
            raise Unsupported("DEPTHWISE_CONV_2D with a depth multiplier")
        # TFLite 1×H×W×C; ONNX C×1×H×W with one group per channel.
        self.conv(ins, out, o, weights.transpose(3, 0, 1, 2), group=channels)

    def pool(self, onnx_op, ins, out, opts, **extra):
        o = tflite.Pool2DOptions()
        o.Init(opts.Bytes, opts.Pos)
        kernel = [o.FilterHeight(), o.FilterWidth()]
        strides = [o.StrideH(), o.StrideW()]
        in_hw = self.shape(ins[0])[1:3]
        self.nchw_op(onnx_op, self.input(ins[0]), out, o.FusedActivationFunction(),
                     kernel_shape=kernel, strides=strides,
                     pads=self.pads(o.Padding(), in_hw, kernel, strides, [1, 1]), **extra)

    def op_max_pool_2d(self, op, ins, outs, out, opts):
        self.pool("MaxPool", ins, out, opts)

    def op_average_pool_2d(self, op, ins, outs, out, opts):
        # TFLite averages over the window's real pixels only.
        self.pool("AveragePool", ins, out, opts, count_include_pad=0)

    def op_leaky_relu(self, op, ins, outs, out, opts):
        o = tflite.LeakyReluOptions()
        o.Init(opts.Bytes, opts.Pos)
        self.node("LeakyRelu", [self.input(ins[0])], [out], alpha=float(o.Alpha()))

    def binary(self, onnx_op, options_class, ins, out, opts):
        act = tflite.ActivationFunctionType.NONE
        if opts is not None:
            o = options_class()
            o.Init(opts.Bytes, opts.Pos)
            act = o.FusedActivationFunction()
        raw = self.fresh(onnx_op.lower())
        self.node(onnx_op, [self.input(ins[0]), self.input(ins[1])], [raw])
        self.fused(act, raw, out)

    def op_add(self, op, ins, outs, out, opts):
        self.binary("Add", tflite.AddOptions, ins, out, opts)

    def op_sub(self, op, ins, outs, out, opts):
        self.binary("Sub", tflite.SubOptions, ins, out, opts)

    def op_mul(self, op, ins, outs, out, opts):
        self.binary("Mul", tflite.MulOptions, ins, out, opts)

    def op_fully_connected(self, op, ins, outs, out, opts):
        o = tflite.FullyConnectedOptions()
        o.Init(opts.Bytes, opts.Pos)
        if o.WeightsFormat() != tflite.FullyConnectedOptionsWeightsFormat.DEFAULT:
            raise Unsupported("FULLY_CONNECTED with shuffled weights")
        weights = self.const(ins[1])
        if weights is None:
            raise Unsupported("FULLY_CONNECTED with computed weights")
        x = self.input(ins[0])
        if len(self.shape(ins[0])) != 2:
            flat = self.fresh("flat")
            shape = self.constant("shape", np.array([-1, weights.shape[1]], dtype=np.int64))
            self.node("Reshape", [x, shape], [flat])
            x = flat
        inputs = [x, self.constant("w", weights.astype(np.float32))]
        if len(ins) > 2 and ins[2] >= 0:
            inputs.append(self.input(ins[2]))
        raw = self.fresh("gemm")
        self.node("Gemm", inputs, [raw], transB=1)
        if o.KeepNumDims() and len(self.shape(outs[0])) != 2:
            raise Unsupported("FULLY_CONNECTED keeping more than two dimensions")
        self.fused(o.FusedActivationFunction(), raw, out)

    def op_reshape(self, op, ins, outs, out, opts):
        shape = self.const(ins[1]) if len(ins) > 1 and ins[1] >= 0 else None
        if shape is None:
            shape = np.array(self.shape(outs[0]))
        target = self.constant("shape", np.asarray(shape, dtype=np.int64))
        self.node("Reshape", [self.input(ins[0]), target], [out])

    def op_strided_slice(self, op, ins, outs, out, opts):
        o = tflite.StridedSliceOptions()
        o.Init(opts.Bytes, opts.Pos)
        if o.EllipsisMask() or o.NewAxisMask() or o.Offset():
            raise Unsupported("STRIDED_SLICE with an ellipsis, a new axis or an offset")
        begin, end, steps = (self.const(i) for i in ins[1:4])
        if begin is None or end is None or steps is None:
            raise Unsupported("STRIDED_SLICE with computed bounds")
        big = np.iinfo(np.int64).max
        starts, ends = [], []
        for axis, (b, e, s) in enumerate(zip(begin, end, steps)):
            forward = s > 0
            starts.append((0 if forward else big) if o.BeginMask() >> axis & 1 else int(b))
            ends.append((big if forward else -big) if o.EndMask() >> axis & 1 else int(e))
            if o.ShrinkAxisMask() >> axis & 1:
                ends[-1] = int(b) + 1 if int(b) != -1 else big
        axes = list(range(len(begin)))
        sliced = self.fresh("slice")
        self.node("Slice", [self.input(ins[0]),
                            self.constant("starts", np.array(starts, dtype=np.int64)),
                            self.constant("ends", np.array(ends, dtype=np.int64)),
                            self.constant("axes", np.array(axes, dtype=np.int64)),
                            self.constant("steps", np.array(steps, dtype=np.int64))], [sliced])
        shrink = [a for a in axes if o.ShrinkAxisMask() >> a & 1]
        if shrink:
            self.node("Squeeze", [sliced, self.constant("axes", np.array(shrink, dtype=np.int64))], [out])
        else:
            self.node("Identity", [sliced], [out])

    def op_greater_equal(self, op, ins, outs, out, opts):
        self.node("GreaterOrEqual", [self.input(ins[0]), self.input(ins[1])], [out])

    def op_less(self, op, ins, outs, out, opts):
        self.node("Less", [self.input(ins[0]), self.input(ins[1])], [out])

    def op_cast(self, op, ins, outs, out, opts):
        to = self.tensor(outs[0]).Type()
        if to not in ONNX_TYPE:
            raise Unsupported(f"CAST to TFLite type {to}")
        self.node("Cast", [self.input(ins[0])], [out], to=ONNX_TYPE[to])

    def op_concatenation(self, op, ins, outs, out, opts):
        o = tflite.ConcatenationOptions()
        o.Init(opts.Bytes, opts.Pos)
        raw = self.fresh("concat")
        self.node("Concat", [self.input(i) for i in ins], [raw], axis=int(o.Axis()))
        self.fused(o.FusedActivationFunction(), raw, out)

    # -- the graph ------------------------------------------------------------------------
    def value_info(self, index, name):
        t = self.tensor(index)
        if t.Type() not in ONNX_TYPE:
            raise Unsupported(f"graph input or output {name} of TFLite type {t.Type()}")
        return helper.make_tensor_value_info(name, ONNX_TYPE[t.Type()], self.shape(index))

    def convert(self):
        g = self.graph
        for i in range(g.OperatorsLength()):
            self.convert_op(g.Operators(i))
        inputs = []
        for i in range(g.InputsLength()):
            index = g.Inputs(i)
            public = self.tensor(index).Name().decode()
            inputs.append(self.value_info(index, public))
            self.nodes.insert(0, helper.make_node("Identity", [public], [self.name(index)], name=f"in_{i}"))
        outputs = []
        for i in range(g.OutputsLength()):
            index = g.Outputs(i)
            public = self.tensor(index).Name().decode()
            outputs.append(self.value_info(index, public))
            self.nodes.append(helper.make_node("Identity", [self.name(index)], [public], name=f"out_{i}"))
        graph = helper.make_graph(self.nodes, "tflite_to_onnx", inputs, outputs,
                                  list(self.initializers.values()))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="rollcall tflite_to_onnx")
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def check(tflite_path, model):
    """Runs the TFLite reference interpreter and ONNX Runtime on seeded inputs; returns the worst difference."""
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=tflite_path)
    interpreter.allocate_tensors()
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(20261126)
    worst = 0.0
    for case in range(CHECK_INPUTS):
        feeds = {}
        for detail in interpreter.get_input_details():
            shape = detail["shape"]
            if case == 0:
                value = np.linspace(0, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
            else:
                value = rng.random(shape, dtype=np.float32)
            interpreter.set_tensor(detail["index"], value)
            feeds[detail["name"]] = value
        interpreter.invoke()
        got = session.run(None, feeds)
        for detail, mine in zip(interpreter.get_output_details(), got):
            want = interpreter.get_tensor(detail["index"])
            if want.shape != mine.shape:
                raise SystemExit(f"output {detail['name']}: shape {mine.shape}, the reference {want.shape}")
            diff = float(np.max(np.abs(want.astype(np.float64) - mine.astype(np.float64))))
            print(f"case {case} {detail['name']}: max |onnx - tflite| = {diff:.2e}")
            worst = max(worst, diff)
    return worst


def main():
    if len(sys.argv) != 3:
        raise SystemExit("usage: tflite_to_onnx.py IN.tflite OUT.onnx")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        buf = f.read()
    try:
        model = Converter(buf).convert()
    except Unsupported as e:
        raise SystemExit(f"{src}: cannot convert: {e}")
    worst = check(src, model)
    if not worst <= TOLERANCE:
        raise SystemExit(f"{src}: the converted model differs from TFLite by {worst:.2e} (> {TOLERANCE})")
    onnx.save(model, dst)
    print(f"converted {src}: {len(model.graph.node)} ONNX nodes, worst difference {worst:.2e}")


if __name__ == "__main__":
    main()
