#!/usr/bin/python3
"""Writes kiln's demo and test models with fixed-seed weights.

Usage: /usr/bin/python3 tools/make_models.py OUT_DIR

For each model NAME it writes NAME.onnx, NAME_input_0.npy (a fixed input) and
NAME_expected_0.npy (the output computed here in numpy, in float64 and then
rounded to float32), so a test can run the model with kiln and compare.
The graphs follow the shapes PyTorch's ONNX exporter produces: Conv +
BatchNormalization + Relu blocks, MatMul + Add for Linear, decomposed
LayerNorm and GELU, and Shape -> Gather -> Unsqueeze -> Concat -> Reshape
chains for the attention heads. Only onnx (1.12) and numpy are needed.

It also writes bad_unknown_op.onnx, a well-formed model whose one node is an
op no runtime implements, for the CLI's error tests.
"""

import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13


class GraphBuilder:
    """Collects nodes and initializers with exporter-style names."""

    def __init__(self):
        self.nodes = []
        self.initializers = []
        self.counts = {}

    def _unique(self, base):
        n = self.counts.get(base, 0)
        self.counts[base] = n + 1
        return base if n == 0 else "%s_%d" % (base, n)

    def weight(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def constant(self, array, scope=""):
        """A Constant node, as the exporter emits for scalars and shape parts."""
        node_name = self._unique(scope + "/Constant")
        out = node_name + "_output_0"
        tensor = numpy_helper.from_array(np.asarray(array), out)
        self.nodes.append(helper.make_node("Constant", [], [out], name=node_name, value=tensor))
        return out

    def op(self, op_type, inputs, scope="", **attrs):
        node_name = self._unique(scope + "/" + op_type)
        out = node_name + "_output_0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=node_name, **attrs))
        return out

    def rename_last_output(self, name):
        """Gives the last node's output the graph output's name."""
        node = self.nodes[-1]
        node.output[0] = name
        return name

    def model(self, graph_name, inputs, outputs):
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.initializers)
        model = helper.make_model(
            graph,
            producer_name="kiln-make-models",
            opset_imports=[helper.make_opsetid("", OPSET)],
        )
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


# ---------------------------------------------------------------------------
# numpy reference ops (float64)


def conv2d(x, w, b, stride=1, pad=0):
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho = (h + 2 * pad - kh) // stride + 1
    wo = (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, m, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
            out += np.einsum("nchw,mc->nmhw", patch, w[:, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out


def batch_norm(x, gamma, beta, mean, var, eps):
    shape = (1, -1, 1, 1)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) + beta.reshape(shape)


def relu(x):
    return np.maximum(x, 0)


def max_pool_2x2(x):
    n, c, h, w = x.shape
    return x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


_erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def f64(a):
    return np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------------------
# Models


def make_cnn_small(rng):
    g = GraphBuilder()
    x_name = "input"
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    ref = f64(x)

    def conv_bn(inp, ref_in, scope, cin, cout, stride, with_bias, with_relu):
        w = (rng.standard_normal((cout, cin, 3, 3)) * math.sqrt(2.0 / (cin * 9))).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32) if with_bias else None
        gamma = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        beta = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        mean = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        var = rng.uniform(0.5, 1.5, cout).astype(np.float32)
        eps = 1e-5
        conv_inputs = [inp, g.weight(scope + ".conv.weight", w)]
        if with_bias:
            conv_inputs.append(g.weight(scope + ".conv.bias", b))
        y = g.op("Conv", conv_inputs, "/" + scope + "/conv", dilations=[1, 1], group=1,
                 kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride])
        y = g.op("BatchNormalization",
                 [y, g.weight(scope + ".bn.weight", gamma), g.weight(scope + ".bn.bias", beta),
                  g.weight(scope + ".bn.running_mean", mean), g.weight(scope + ".bn.running_var", var)],
                 "/" + scope + "/bn", epsilon=eps, momentum=0.9)
        r = conv2d(ref_in, f64(w), None if b is None else f64(b), stride, 1)
        r = batch_norm(r, f64(gamma), f64(beta), f64(mean), f64(var), eps)
        if with_relu:
            y = g.op("Relu", [y], "/" + scope + "/relu")
            r = relu(r)
        return y, r

    a, ra = conv_bn(x_name, ref, "stem", 3, 8, 1, False, True)
    b, rb = conv_bn(a, ra, "layer1.0", 8, 8, 1, False, True)
    b, rb = conv_bn(b, rb, "layer1.1", 8, 8, 1, False, False)
    c = g.op("Add", [b, a], "/layer1")
    c = g.op("Relu", [c], "/layer1")
    rc = relu(rb + ra)
    p = g.op("MaxPool", [c], "/pool", kernel_shape=[2, 2], pads=[0, 0, 0, 0], strides=[2, 2], ceil_mode=0)
    rp = max_pool_2x2(rc)
    d, rd = conv_bn(p, rp, "layer2", 8, 16, 2, True, True)
    gap = g.op("GlobalAveragePool", [d], "/gap")
    rgap = rd.mean(axis=(2, 3), keepdims=True)
    flat = g.op("Flatten", [gap], "", axis=1)
    rflat = rgap.reshape(1, -1)
    fc_w = (rng.standard_normal((10, 16)) * math.sqrt(1.0 / 16)).astype(np.float32)
    fc_b = (rng.standard_normal(10) * 0.1).astype(np.float32)
    g.op("Gemm", [flat, g.weight("fc.weight", fc_w), g.weight("fc.bias", fc_b)], "/fc",
         alpha=1.0, beta=1.0, transB=1)
    g.rename_last_output("output")
    expected = rflat @ f64(fc_w).T + f64(fc_b)

    model = g.model(
        "cnn_small",
        [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])],
    )
    return model, x, expected.astype(np.float32)


def make_transformer_tiny(rng, num_layers=2, d_model=64, num_heads=4, seq=16, d_ff=128):
    g = GraphBuilder()
    head_dim = d_model // num_heads
    x = (rng.standard_normal((1, seq, d_model))).astype(np.float32)
    ref = f64(x)
    eps = 1e-5

    def linear(inp, scope, din, dout):
        w = (rng.standard_normal((din, dout)) * math.sqrt(1.0 / din)).astype(np.float32)
        b = (rng.standard_normal(dout) * 0.02).astype(np.float32)
        y = g.op("MatMul", [inp, g.weight(scope + ".weight_t", w)], "/" + scope)
        y = g.op("Add", [y, g.weight(scope + ".bias", b)], "/" + scope)
        return y, (f64(w), f64(b))

    def batch_seq_dims(inp, scope):
        """Shape -> Gather -> Unsqueeze for dims 0 and 1, as `x.size(0)`, `x.size(1)` export."""
        shape = g.op("Shape", [inp], scope)
        parts = []
        for axis in (0, 1):
            index = g.constant(np.array(axis, dtype=np.int64), scope)
            dim = g.op("Gather", [shape, index], scope, axis=0)
            axes = g.constant(np.array([0], dtype=np.int64), scope)
            parts.append(g.op("Unsqueeze", [dim, axes], scope))
        return parts

    def split_heads(inp, scope, perm):
        b, s = batch_seq_dims(inp, scope)
        heads = g.constant(np.array([num_heads], dtype=np.int64), scope)
        hd = g.constant(np.array([head_dim], dtype=np.int64), scope)
        shape = g.op("Concat", [b, s, heads, hd], scope, axis=0)
        y = g.op("Reshape", [inp, shape], scope)
        return g.op("Transpose", [y], scope, perm=perm)

    def layer_norm_nodes(inp, scope):
        gamma = rng.uniform(0.8, 1.2, d_model).astype(np.float32)
        beta = (rng.standard_normal(d_model) * 0.05).astype(np.float32)
        mean = g.op("ReduceMean", [inp], scope, axes=[-1], keepdims=1)
        diff = g.op("Sub", [inp, mean], scope)
        sq = g.op("Pow", [diff, g.constant(np.array(2.0, dtype=np.float32), scope)], scope)
        var = g.op("ReduceMean", [sq], scope, axes=[-1], keepdims=1)
        var = g.op("Add", [var, g.constant(np.array(eps, dtype=np.float32), scope)], scope)
        std = g.op("Sqrt", [var], scope)
        y = g.op("Div", [diff, std], scope)
        y = g.op("Mul", [y, g.weight(scope[1:] + ".weight", gamma)], scope)
        y = g.op("Add", [y, g.weight(scope[1:] + ".bias", beta)], scope)
        return y, (f64(gamma), f64(beta))

    def gelu_nodes(inp, scope):
        y = g.op("Div", [inp, g.constant(np.array(math.sqrt(2.0), dtype=np.float32), scope)], scope)
        y = g.op("Erf", [y], scope)
        y = g.op("Add", [y, g.constant(np.array(1.0, dtype=np.float32), scope)], scope)
        y = g.op("Mul", [inp, y], scope)
        return g.op("Mul", [y, g.constant(np.array(0.5, dtype=np.float32), scope)], scope)

    h = "input"
    for layer in range(num_layers):
        p = "layers.%d" % layer
        q, (wq, bq) = linear(h, p + ".attn.q_proj", d_model, d_model)
        k, (wk, bk) = linear(h, p + ".attn.k_proj", d_model, d_model)
        v, (wv, bv) = linear(h, p + ".attn.v_proj", d_model, d_model)
        qh = split_heads(q, "/" + p + "/attn/q", [0, 2, 1, 3])
        kh = split_heads(k, "/" + p + "/attn/k", [0, 2, 3, 1])
        vh = split_heads(v, "/" + p + "/attn/v", [0, 2, 1, 3])
        scope = "/" + p + "/attn"
        scores = g.op("MatMul", [qh, kh], scope)
        scores = g.op("Div", [scores, g.constant(np.array(math.sqrt(head_dim), dtype=np.float32), scope)],
                      scope)
        probs = g.op("Softmax", [scores], scope, axis=-1)
        ctx = g.op("MatMul", [probs, vh], scope)
        ctx = g.op("Transpose", [ctx], scope, perm=[0, 2, 1, 3])
        b_dim, s_dim = batch_seq_dims(ctx, scope + "/merge")
        merged_shape = g.op("Concat", [b_dim, s_dim, g.constant(np.array([d_model], dtype=np.int64), scope)],
                            scope, axis=0)
        ctx = g.op("Reshape", [ctx, merged_shape], scope)
        attn, (wo, bo) = linear(ctx, p + ".attn.out_proj", d_model, d_model)
        h1 = g.op("Add", [h, attn], "/" + p)
        h1, (g1, be1) = layer_norm_nodes(h1, "/" + p + ".norm1")
        f, (w1, b1) = linear(h1, p + ".ffn.fc1", d_model, d_ff)
        f = gelu_nodes(f, "/" + p + "/ffn/gelu")
        f, (w2, b2) = linear(f, p + ".ffn.fc2", d_ff, d_model)
        h2 = g.op("Add", [h1, f], "/" + p)
        h, (g2, be2) = layer_norm_nodes(h2, "/" + p + ".norm2")

        # numpy reference for the same layer
        def heads(t):
            return t.reshape(t.shape[0], seq, num_heads, head_dim).transpose(0, 2, 1, 3)

        rq, rk, rv = heads(ref @ wq + bq), heads(ref @ wk + bk), heads(ref @ wv + bv)
        rs = softmax(rq @ rk.transpose(0, 1, 3, 2) / math.sqrt(head_dim))
        rctx = (rs @ rv).transpose(0, 2, 1, 3).reshape(ref.shape[0], seq, d_model)
        r1 = layer_norm(ref + (rctx @ wo + bo), g1, be1, eps)
        rf = gelu(r1 @ w1 + b1) @ w2 + b2
        ref = layer_norm(r1 + rf, g2, be2, eps)
    g.rename_last_output("output")

    model = g.model(
        "transformer_tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", seq, d_model])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", seq, d_model])],
    )
    return model, x, ref.astype(np.float32)


def make_mlp(rng):
    g = GraphBuilder()
    x = rng.standard_normal((2, 32)).astype(np.float32)
    w1 = (rng.standard_normal((32, 64)) * math.sqrt(2.0 / 32)).astype(np.float32)
    b1 = (rng.standard_normal(64) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((64, 10)) * math.sqrt(1.0 / 64)).astype(np.float32)
    b2 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    y = g.op("MatMul", ["x", g.weight("fc1.weight_t", w1)], "/fc1")
    y = g.op("Add", [y, g.weight("fc1.bias", b1)], "/fc1")
    y = g.op("Relu", [y], "/relu")
    y = g.op("MatMul", [y, g.weight("fc2.weight_t", w2)], "/fc2")
    g.op("Add", [y, g.weight("fc2.bias", b2)], "/fc2")
    g.rename_last_output("y")
    expected = relu(f64(x) @ f64(w1) + f64(b1)) @ f64(w2) + f64(b2)
    model = g.model(
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])],
    )
    return model, x, expected.astype(np.float32)


def make_unknown_op():
    """A structurally valid model using an op that does not exist."""
    node = helper.make_node("KilnNoSuchOp", ["x"], ["y"], name="mystery")
    graph = helper.make_graph(
        [node], "unknown_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    model = helper.make_model(graph, producer_name="kiln-make-models",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s OUT_DIR\n" % argv[0])
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    makers = [
        ("cnn_small", make_cnn_small, 1),
        ("transformer_tiny", make_transformer_tiny, 2),
        ("mlp", make_mlp, 3),
    ]
    for name, maker, seed in makers:
        model, x, expected = maker(np.random.default_rng(seed))
        onnx.save(model, os.path.join(out_dir, name + ".onnx"))
        np.save(os.path.join(out_dir, name + "_input_0.npy"), x)
        np.save(os.path.join(out_dir, name + "_expected_0.npy"), expected)
    onnx.save(make_unknown_op(), os.path.join(out_dir, "bad_unknown_op.onnx"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
