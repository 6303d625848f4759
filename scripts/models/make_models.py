"""Face-embedding ONNX models with the contract of arcface_torch's
torch2onnx.py, built with the `onnx` package alone (no torch, no downloaded
weights): input `data` float32 [None, 3, H, W] (NCHW, RGB, (x-127.5)/127.5),
one output [N, D], opset 11, random weights from a fixed seed.

    python make_models.py tiny OUT_DIR      the test models of tests/embed.rs
    python make_models.py iresnet50 OUT.onnx
    python make_models.py mobilefacenet OUT.onnx

`tiny` writes five small variants (a few hundred KB in all, committed under
tests/fixtures/embed/): the plain contract, one that normalises itself (a
leading Sub/Mul pair, as MXNet conversions have, so it takes raw 0-255), one
whose batch dimension is fixed at 1 (older PyTorch exports), one whose input
is not called `data` and takes 128 pixels, and one whose output is
[N, D, 1, 1]; and three models embed must refuse (an unknown operator, a
rank-3 input, a one-channel input). `iresnet50` is insightface's IResNet-50 layout (blocks
[3, 4, 14, 3], BN-Conv-BN-PReLU-Conv-BN, FC 25088->512, BN; 43.6 M
parameters, 174 MB) and `mobilefacenet` a MobileFaceNet-size network
(depthwise-separable blocks, GDC head, 512-d): both for
`cargo xtask bench embed`, never committed.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 11


class Graph:
    """Collects nodes and initializers with unique names."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, kind):
        self.count += 1
        return f"{kind}_{self.count}"

    def const(self, array, kind="w"):
        name = self.name(kind)
        self.inits.append(numpy_helper.from_array(np.asarray(array, np.float32), name))
        return name

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, group=1):
        fan_in = cin // group * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // group, k, k))
        return self.node(
            "Conv",
            [x, self.const(w)],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
            group=group,
        )

    def bn(self, x, c):
        scale = self.const(1.0 + 0.1 * self.rng.normal(size=c))
        bias = self.const(0.1 * self.rng.normal(size=c))
        mean = self.const(0.1 * self.rng.normal(size=c))
        var = self.const(1.0 + 0.1 * self.rng.random(c))
        return self.node("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-5)

    def prelu(self, x, c):
        return self.node("PRelu", [x, self.const(np.full((c, 1, 1), 0.25))])

    def add(self, a, b):
        return self.node("Add", [a, b])

    def gemm(self, x, fin, fout):
        w = self.rng.normal(0, np.sqrt(1.0 / fin), (fout, fin))
        return self.node("Gemm", [x, self.const(w), self.const(np.zeros(fout))], transB=1)

    def model(self, x_name, x_shape, y, y_shape):
        graph = helper.make_graph(
            self.nodes,
            "face",
            [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, y_shape)],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 7
        onnx.checker.check_model(model)
        return model


def tiny(x_name="data", size=112, batch="None", self_normalising=False, out_4d=False):
    """Pool 4x4 -> Conv 3x3/2 -> PReLU -> Flatten -> Gemm -> BN: cheap, and
    sensitive to position (so a horizontal flip changes the embedding)."""
    g = Graph(seed=11)
    x = x_name
    if self_normalising:
        x = g.node("Sub", [x, g.const(np.array(127.5), "mean")])
        x = g.node("Mul", [x, g.const(np.array(1 / 127.5), "scale")])
    x = g.node("AveragePool", [x], kernel_shape=[4, 4], strides=[4, 4])
    x = g.conv(x, 3, 4, 3, stride=2)
    x = g.prelu(x, 4)
    side = size // 8
    x = g.node("Flatten", [x], axis=1)
    x = g.gemm(x, 4 * side * side, 32)
    x = g.bn(x, 32)
    out_shape = [batch, 32]
    if out_4d:
        x = g.node("Unsqueeze", [x], axes=[2, 3])
        out_shape = [batch, 32, 1, 1]
    return g.model(x_name, [batch, 3, size, size], x, out_shape)


def broken():
    """Models embed must refuse with one line: an operator onnxruntime does
    not have, an input of rank 3, a one-channel input."""
    g = Graph(seed=1)
    y = g.node("FacekitNoSuchOp", ["data"])
    bad_op = helper.make_model(
        helper.make_graph(
            g.nodes,
            "bad_op",
            [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["None", 3, 112, 112])],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["None", 32])],
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    bad_op.ir_version = 7
    out = {"bad_op.onnx": bad_op}
    for name, shape in [("rank3.onnx", ["None", 112, 112]), ("gray.onnx", ["None", 1, 112, 112])]:
        g = Graph(seed=2)
        y = g.node("Flatten", ["data"], axis=1)
        out[name] = g.model("data", shape, y, ["None", None])
    return out


def iresnet50():
    g = Graph(seed=50)
    x = g.conv("data", 3, 64, 3)
    x = g.prelu(g.bn(x, 64), 64)
    cin = 64
    for cout, blocks in zip([64, 128, 256, 512], [3, 4, 14, 3]):
        for b in range(blocks):
            stride = 2 if b == 0 else 1
            y = g.bn(x, cin)
            y = g.conv(y, cin, cout, 3)
            y = g.prelu(g.bn(y, cout), cout)
            y = g.conv(y, cout, cout, 3, stride=stride)
            y = g.bn(y, cout)
            if b == 0:
                shortcut = g.bn(g.conv(x, cin, cout, 1, stride=stride), cout)
            else:
                shortcut = x
            x = g.add(y, shortcut)
            cin = cout
    x = g.bn(x, 512)
    x = g.node("Flatten", [x], axis=1)
    x = g.gemm(x, 512 * 7 * 7, 512)
    x = g.bn(x, 512)
    return g.model("data", ["None", 3, 112, 112], x, ["None", 512])


def mobilefacenet():
    """MobileFaceNet (Chen et al. 2018): conv 3x3/2 64, depthwise 3x3 64,
    bottlenecks (expansion 2/4) down to 7x7x128, conv 1x1 512, GDC 7x7
    depthwise, linear 1x1 to 512."""
    g = Graph(seed=7)

    def cbp(x, cin, cout, k, stride=1, group=1, act=True):
        y = g.bn(g.conv(x, cin, cout, k, stride, group), cout)
        return g.prelu(y, cout) if act else y

    x = cbp("data", 3, 64, 3, 2)
    x = cbp(x, 64, 64, 3, 1, 64)
    cin = 64
    for t, c, n, s in [(2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = cbp(x, cin, hidden, 1)
            y = cbp(y, hidden, hidden, 3, stride, hidden)
            y = cbp(y, hidden, c, 1, act=False)
            x = g.add(x, y) if stride == 1 and cin == c else y
            cin = c
    x = cbp(x, cin, 512, 1)
    x = g.bn(g.node("Conv", [x, g.const(g.rng.normal(0, 0.1, (512, 1, 7, 7)))],
                    kernel_shape=[7, 7], group=512), 512)
    x = g.bn(g.conv(x, 512, 512, 1), 512)
    x = g.node("Flatten", [x], axis=1)
    return g.model("data", ["None", 3, 112, 112], x, ["None", 512])


def main():
    kind, out = sys.argv[1], Path(sys.argv[2])
    if kind == "tiny":
        out.mkdir(parents=True, exist_ok=True)
        variants = {
            "tiny.onnx": tiny(),
            "tiny_selfnorm.onnx": tiny(self_normalising=True),
            "tiny_batch1.onnx": tiny(batch=1),
            "tiny_input1_128.onnx": tiny(x_name="input.1", size=128),
            "tiny_out4d.onnx": tiny(out_4d=True),
        }
        variants.update(broken())
        for name, model in variants.items():
            onnx.save(model, out / name)
    elif kind == "iresnet50":
        onnx.save(iresnet50(), out)
    elif kind == "mobilefacenet":
        onnx.save(mobilefacenet(), out)
    else:
        sys.exit(f"unknown model kind {kind!r}")


if __name__ == "__main__":
    main()
