#!/usr/bin/python3
"""Writes kiln's benchmark model zoo: models, fixed inputs and a manifest.

Usage: /usr/bin/python3 bench/models/make_zoo.py OUT_DIR

The graphs are written the way PyTorch's ONNX exporter writes the same
networks, because that is what kiln has to be fast on: LayerNorm and GELU
decomposed into their elementwise and reduction ops, Shape -> Gather ->
Unsqueeze -> Concat -> Reshape chains for attention heads, scalars as
Constant nodes, Conv + BatchNormalization blocks (ResNet) or BN already
folded into the Conv (MobileNet, as an eval-mode export does), opsets 13-17.

Weights come from a fixed-seed generator, scaled by fan-in (He for layers
followed by Relu) so that activations stay O(1) through the whole network:
outputs neither vanish nor blow up, so tier and peer comparisons test real
arithmetic. Everything is deterministic: the same OUT_DIR contents on every
run and machine (numpy's PCG64 stream is stable across versions).

Besides NAME.onnx it writes, per benchmark case, one .npy file per model
input and OUT_DIR/manifest.json:

  {"cases": [{"name": "transformer_encoder",
              "model": "transformer_encoder.onnx",
              "inputs": {"input": "transformer_encoder.in0.npy"}}, ...]}

A model with a dynamic dimension gives one case per size, named
"MODEL/DIM:SIZE" (e.g. "transformer_dynamic/seq:64"), all sharing the model
file. kiln_bench (--zoo_dir) and the ONNX Runtime peer runner both read this
manifest; keep its format as it is. Only onnx (1.12) and numpy are needed.
"""

import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Sizes the dynamic-sequence transformer is benchmarked at.
DYNAMIC_SEQ_LENS = (32, 64, 128, 256)


class GraphBuilder:
    """Collects nodes and initializers with exporter-style names.

    Every node gets a unique "/scope/OpType" name and its output is named
    after it, as torch.onnx names them.
    """

    def __init__(self, rng):
        self.rng = rng
        self.nodes = []
        self.initializers = []
        self.counts = {}

    def _unique(self, base):
        n = self.counts.get(base, 0)
        self.counts[base] = n + 1
        return base if n == 0 else "%s_%d" % (base, n)

    def weight(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def constant(self, value, scope="", dtype=np.float32):
        """A Constant node, as the exporter emits for scalars and shape parts."""
        node_name = self._unique(scope + "/Constant")
        out = node_name + "_output_0"
        tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype), out)
        self.nodes.append(helper.make_node("Constant", [], [out], name=node_name, value=tensor))
        return out

    def op(self, op_type, inputs, scope="", **attrs):
        node_name = self._unique(scope + "/" + op_type)
        out = node_name + "_output_0"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=node_name, **attrs))
        return out

    def rename_last_output(self, name):
        """Gives the last node's output the graph output's name."""
        self.nodes[-1].output[0] = name
        return name

    def model(self, graph_name, opset, inputs, outputs):
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, producer_name="kiln-make-zoo",
                                  opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    # -- random parameters ---------------------------------------------------

    def normal(self, shape, std):
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def uniform(self, shape, lo, hi):
        return self.rng.uniform(lo, hi, shape).astype(np.float32)

    # -- layers as the exporter writes them ----------------------------------

    def linear_matmul(self, inp, scope, din, dout, gain=1.0):
        """nn.Linear on a 3-D input: MatMul by the transposed weight, then Add."""
        w = self.normal((din, dout), math.sqrt(gain / din))
        b = self.normal((dout,), 0.02)
        y = self.op("MatMul", [inp, self.weight(scope + ".weight_t", w)], "/" + scope)
        return self.op("Add", [y, self.weight(scope + ".bias", b)], "/" + scope)

    def linear_gemm(self, inp, scope, din, dout, gain=1.0):
        """nn.Linear on a 2-D input: Gemm with transB=1 over the [out, in] weight."""
        w = self.normal((dout, din), math.sqrt(gain / din))
        b = self.normal((dout,), 0.02)
        return self.op("Gemm", [inp, self.weight(scope + ".weight", w), self.weight(scope + ".bias", b)],
                       "/" + scope, alpha=1.0, beta=1.0, transB=1)

    def conv(self, inp, scope, cin, cout, k, stride=1, group=1, bias=True, gain=2.0):
        """Conv with 'same'-style padding k // 2; He-scaled for a following Relu."""
        fan_in = (cin // group) * k * k
        w = self.normal((cout, cin // group, k, k), math.sqrt(gain / fan_in))
        inputs = [inp, self.weight(scope + ".weight", w)]
        if bias:
            inputs.append(self.weight(scope + ".bias", self.normal((cout,), 0.05)))
        p = k // 2
        return self.op("Conv", inputs, "/" + scope, dilations=[1, 1], group=group, kernel_shape=[k, k],
                       pads=[p, p, p, p], strides=[stride, stride])

    def batch_norm(self, inp, scope, channels):
        """Eval-mode BatchNormalization with running statistics near N(0, 1)."""
        gamma = self.uniform((channels,), 0.7, 1.3)
        beta = self.normal((channels,), 0.05)
        mean = self.normal((channels,), 0.05)
        var = self.uniform((channels,), 0.7, 1.3)
        return self.op("BatchNormalization",
                       [inp, self.weight(scope + ".weight", gamma), self.weight(scope + ".bias", beta),
                        self.weight(scope + ".running_mean", mean), self.weight(scope + ".running_var", var)],
                       "/" + scope, epsilon=1e-5, momentum=0.9)

    def layer_norm(self, inp, scope, d, eps=1e-5):
        """nn.LayerNorm exported below opset 17's fused op: mean, sub, pow, mean, add, sqrt, div, mul, add."""
        gamma = self.uniform((d,), 0.8, 1.2)
        beta = self.normal((d,), 0.05)
        s = "/" + scope
        mean = self.op("ReduceMean", [inp], s, axes=[-1], keepdims=1)
        diff = self.op("Sub", [inp, mean], s)
        sq = self.op("Pow", [diff, self.constant(2.0, s)], s)
        var = self.op("ReduceMean", [sq], s, axes=[-1], keepdims=1)
        var = self.op("Add", [var, self.constant(eps, s)], s)
        std = self.op("Sqrt", [var], s)
        y = self.op("Div", [diff, std], s)
        y = self.op("Mul", [y, self.weight(scope + ".weight", gamma)], s)
        return self.op("Add", [y, self.weight(scope + ".bias", beta)], s)

    def gelu(self, inp, scope):
        """Exact GELU as exported: x * 0.5 * (1 + erf(x / sqrt(2)))."""
        y = self.op("Div", [inp, self.constant(math.sqrt(2.0), scope)], scope)
        y = self.op("Erf", [y], scope)
        y = self.op("Add", [y, self.constant(1.0, scope)], scope)
        y = self.op("Mul", [inp, y], scope)
        return self.op("Mul", [y, self.constant(0.5, scope)], scope)

    def dims_of(self, inp, axes, scope):
        """Shape -> Gather -> Unsqueeze per axis, as `x.size(i)` exports: 1-D int64 pieces for a Concat."""
        shape = self.op("Shape", [inp], scope)
        parts = []
        for axis in axes:
            dim = self.op("Gather", [shape, self.constant(axis, scope, np.int64)], scope, axis=0)
            parts.append(self.op("Unsqueeze", [dim, self.constant([0], scope, np.int64)], scope))
        return parts

    def attention(self, h, scope, d_model, num_heads, scale_queries):
        """Multi-head self-attention over [batch, seq, d_model] with the exporter's reshapes.

        scale_queries: scale q and k by d^-1/4 each with Mul (as newer
        Hugging Face exports do) instead of dividing the scores by sqrt(d).
        """
        head_dim = d_model // num_heads
        s = "/" + scope

        def split_heads(x, name, perm):
            b, n = self.dims_of(x, (0, 1), s + "/" + name)
            shape = self.op("Concat", [b, n, self.constant([num_heads], s, np.int64),
                                       self.constant([head_dim], s, np.int64)], s, axis=0)
            return self.op("Transpose", [self.op("Reshape", [x, shape], s)], s, perm=perm)

        q = self.linear_matmul(h, scope + ".q_proj", d_model, d_model)
        k = self.linear_matmul(h, scope + ".k_proj", d_model, d_model)
        v = self.linear_matmul(h, scope + ".v_proj", d_model, d_model)
        qh = split_heads(q, "q", [0, 2, 1, 3])
        kh = split_heads(k, "k", [0, 2, 3, 1])
        vh = split_heads(v, "v", [0, 2, 1, 3])
        if scale_queries:
            quarter = self.constant(1.0 / math.sqrt(math.sqrt(head_dim)), s)
            scores = self.op("MatMul", [self.op("Mul", [qh, quarter], s), self.op("Mul", [kh, quarter], s)], s)
        else:
            scores = self.op("MatMul", [qh, kh], s)
            scores = self.op("Div", [scores, self.constant(math.sqrt(head_dim), s)], s)
        probs = self.op("Softmax", [scores], s, axis=-1)
        ctx = self.op("Transpose", [self.op("MatMul", [probs, vh], s)], s, perm=[0, 2, 1, 3])
        b, n = self.dims_of(ctx, (0, 1), s + "/merge")
        ctx = self.op("Reshape", [ctx, self.op("Concat", [b, n, self.constant([d_model], s, np.int64)], s, axis=0)],
                      s)
        return self.linear_matmul(ctx, scope + ".out_proj", d_model, d_model)


def value_info(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


# ---------------------------------------------------------------------------
# Models. Each maker returns (model, {input name: shape or None}) where the
# shape is for fixed-shape inputs; dynamic models get their shapes per case.


def make_mlp(rng, batch):
    """784 -> 1024 -> 1024 -> 10 with Relu: Gemm (2-D Linear) and MatMul + Add layers, opset 13."""
    g = GraphBuilder(rng)
    y = g.linear_gemm("input", "fc1", 784, 1024, gain=2.0)
    y = g.op("Relu", [y], "/relu1")
    y = g.linear_matmul(y, "fc2", 1024, 1024, gain=2.0)
    y = g.op("Relu", [y], "/relu2")
    g.linear_gemm(y, "fc3", 1024, 10)
    g.rename_last_output("logits")
    model = g.model("mlp_b%d" % batch, 13, [value_info("input", [batch, 784])], [value_info("logits", [batch, 10])])
    return model, {"input": (batch, 784)}


def make_resnet_small(rng, size=224):
    """ResNet-18-like at a quarter width: conv7x7/2-BN-Relu stem, MaxPool, 4 basic blocks
    (the last three downsample with a 1x1 conv + BN projection), GAP, Flatten, Gemm. Opset 13."""
    g = GraphBuilder(rng)

    def conv_bn(x, scope, cin, cout, k, stride, relu):
        y = g.conv(x, scope + ".conv", cin, cout, k, stride, bias=False, gain=2.0 if relu else 1.0)
        y = g.batch_norm(y, scope + ".bn", cout)
        return g.op("Relu", [y], "/" + scope + "/relu") if relu else y

    x = conv_bn("input", "stem", 3, 32, 7, 2, True)
    x = g.op("MaxPool", [x], "/maxpool", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], ceil_mode=0)
    channels = 32
    for i, (cout, stride) in enumerate([(32, 1), (64, 2), (128, 2), (256, 2)]):
        scope = "layer%d" % (i + 1)
        y = conv_bn(x, scope + ".conv_bn1", channels, cout, 3, stride, True)
        # No Relu before the residual sum: unit gain keeps the sum O(1).
        y = conv_bn(y, scope + ".conv_bn2", cout, cout, 3, 1, False)
        shortcut = x if stride == 1 and cout == channels else conv_bn(x, scope + ".downsample", channels, cout, 1,
                                                                      stride, False)
        x = g.op("Relu", [g.op("Add", [y, shortcut], "/" + scope)], "/" + scope + "/relu")
        channels = cout
    x = g.op("GlobalAveragePool", [x], "/avgpool")
    x = g.op("Flatten", [x], "", axis=1)
    g.linear_gemm(x, "fc", channels, 1000)
    g.rename_last_output("logits")
    model = g.model("resnet_small", 13, [value_info("input", [1, 3, size, size])], [value_info("logits", [1, 1000])])
    return model, {"input": (1, 3, size, size)}


def make_mobilenetv3_small_style(rng, size=224):
    """MobileNetV3-Small's layer list: inverted residual blocks with depthwise convs, HardSwish,
    squeeze-excite (GAP -> Conv -> Relu -> Conv -> HardSigmoid -> Mul), BN folded into the convs
    as an eval-mode export does. Opset 14 (HardSwish)."""
    g = GraphBuilder(rng)

    def act(x, kind, scope):
        if kind == "RE":
            return g.op("Relu", [x], scope)
        return g.op("HardSwish", [x], scope)

    def make_divisible(v, divisor=8):
        return max(divisor, int(v + divisor / 2) // divisor * divisor)

    def squeeze_excite(x, scope, channels):
        squeezed = make_divisible(channels // 4)
        s = g.op("GlobalAveragePool", [x], "/" + scope + "/avgpool")
        s = g.conv(s, scope + ".fc1", channels, squeezed, 1)
        s = g.op("Relu", [s], "/" + scope + "/relu")
        s = g.conv(s, scope + ".fc2", squeezed, channels, 1, gain=1.0)
        s = g.op("HardSigmoid", [s], "/" + scope + "/hardsigmoid", alpha=1.0 / 6.0, beta=0.5)
        return g.op("Mul", [s, x], "/" + scope)

    # (kernel, expanded, out, squeeze-excite, activation, stride)
    blocks = [
        (3, 16, 16, True, "RE", 2),
        (3, 72, 24, False, "RE", 2),
        (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2),
        (5, 240, 40, True, "HS", 1),
        (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1),
        (5, 144, 48, True, "HS", 1),
        (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1),
        (5, 576, 96, True, "HS", 1),
    ]
    x = act(g.conv("input", "features.0", 3, 16, 3, 2), "HS", "/features.0")
    channels = 16
    for i, (k, expanded, cout, se, kind, stride) in enumerate(blocks):
        scope = "features.%d" % (i + 1)
        y = x
        if expanded != channels:
            y = act(g.conv(y, scope + ".expand", channels, expanded, 1), kind, "/" + scope + "/expand")
        y = act(g.conv(y, scope + ".depthwise", expanded, expanded, k, stride, group=expanded), kind,
                "/" + scope + "/depthwise")
        if se:
            y = squeeze_excite(y, scope + ".se", expanded)
        y = g.conv(y, scope + ".project", expanded, cout, 1, gain=1.0)
        if stride == 1 and cout == channels:
            y = g.op("Add", [y, x], "/" + scope)
        x = y
        channels = cout
    x = act(g.conv(x, "features.12", channels, 576, 1), "HS", "/features.12")
    x = g.op("GlobalAveragePool", [x], "/avgpool")
    x = g.op("Flatten", [x], "", axis=1)
    x = g.op("HardSwish", [g.linear_gemm(x, "classifier.0", 576, 1024, gain=2.0)], "/classifier.1")
    g.linear_gemm(x, "classifier.3", 1024, 1000)
    g.rename_last_output("logits")
    model = g.model("mobilenetv3_small_style", 14, [value_info("input", [1, 3, size, size])],
                    [value_info("logits", [1, 1000])])
    return model, {"input": (1, 3, size, size)}


def encoder_layer(g, h, scope, d_model, num_heads, d_ff, pre_norm, scale_queries):
    """One BERT-style (post-norm) or GPT-style (pre-norm) encoder layer."""
    if pre_norm:
        a = g.attention(g.layer_norm(h, scope + ".norm1", d_model), scope + ".attn", d_model, num_heads,
                        scale_queries)
        h = g.op("Add", [h, a], "/" + scope)
        f = g.linear_matmul(g.layer_norm(h, scope + ".norm2", d_model), scope + ".ffn.fc1", d_model, d_ff)
        f = g.linear_matmul(g.gelu(f, "/" + scope + "/ffn/gelu"), scope + ".ffn.fc2", d_ff, d_model)
        return g.op("Add", [h, f], "/" + scope)
    a = g.attention(h, scope + ".attn", d_model, num_heads, scale_queries)
    h = g.layer_norm(g.op("Add", [h, a], "/" + scope), scope + ".norm1", d_model)
    f = g.linear_matmul(h, scope + ".ffn.fc1", d_model, d_ff)
    f = g.linear_matmul(g.gelu(f, "/" + scope + "/ffn/gelu"), scope + ".ffn.fc2", d_ff, d_model)
    return g.layer_norm(g.op("Add", [h, f], "/" + scope), scope + ".norm2", d_model)


def make_transformer_encoder(rng, num_layers=4, d_model=256, num_heads=4, seq=128, d_ff=1024):
    """BERT-style post-norm encoder over hidden states [1, 128, 256]: scores / sqrt(d), Softmax,
    decomposed LayerNorm and GELU. Opset 17 (LayerNorm still decomposed, as older exports
    and many current ones are)."""
    g = GraphBuilder(rng)
    h = "input"
    for layer in range(num_layers):
        h = encoder_layer(g, h, "layers.%d" % layer, d_model, num_heads, d_ff, pre_norm=False, scale_queries=False)
    g.rename_last_output("output")
    model = g.model("transformer_encoder", 17, [value_info("input", [1, seq, d_model])],
                    [value_info("output", [1, seq, d_model])])
    return model, {"input": (1, seq, d_model)}


def make_transformer_dynamic(rng, num_layers=2, d_model=256, num_heads=4, d_ff=1024):
    """GPT-style pre-norm encoder with a symbolic sequence length ("seq"): q and k scaled by
    d^-1/4 with Mul, a final LayerNorm. Opset 15. Its shape chains only resolve at run time."""
    g = GraphBuilder(rng)
    h = "input"
    for layer in range(num_layers):
        h = encoder_layer(g, h, "h.%d" % layer, d_model, num_heads, d_ff, pre_norm=True, scale_queries=True)
    g.layer_norm(h, "ln_f", d_model)
    g.rename_last_output("output")
    model = g.model("transformer_dynamic", 15, [value_info("input", [1, "seq", d_model])],
                    [value_info("output", [1, "seq", d_model])])
    return model, None


def make_silu_ln_gelu(rng, rows=1024, d=1024):
    """An activation block on [1, 1024, 1024]: SiLU (x * Sigmoid(x)), decomposed LayerNorm, GELU.
    All elementwise and reductions: what the JIT tier fuses. Opset 17."""
    g = GraphBuilder(rng)
    x = g.op("Mul", ["input", g.op("Sigmoid", ["input"], "/act")], "/act")
    x = g.layer_norm(x, "norm", d)
    g.gelu(x, "/gelu")
    g.rename_last_output("output")
    model = g.model("silu_ln_gelu", 17, [value_info("input", [1, rows, d])], [value_info("output", [1, rows, d])])
    return model, {"input": (1, rows, d)}


def torch_rnn_weights(g, scope, layer, gates, pt_to_onnx, din, hidden, dirs):
    """One layer's W, R and B as torch.onnx writes them from nn.LSTM / nn.GRU parameters: per
    direction weight_ih, weight_hh, bias_ih, bias_hh drawn as PyTorch initialises them (uniform in
    +-1/sqrt(hidden)), the gate blocks reordered from PyTorch's order to ONNX's (block j of the
    ONNX tensor is PyTorch's block pt_to_onnx[j]) and the two biases concatenated."""
    k = 1.0 / math.sqrt(hidden)

    def reorder(a):
        blocks = np.split(a, gates, axis=0)
        return np.concatenate([blocks[j] for j in pt_to_onnx], axis=0)

    ws, rs, bs = [], [], []
    for _ in range(dirs):
        w_ih = g.uniform((gates * hidden, din), -k, k)
        w_hh = g.uniform((gates * hidden, hidden), -k, k)
        b_ih = g.uniform((gates * hidden,), -k, k)
        b_hh = g.uniform((gates * hidden,), -k, k)
        ws.append(reorder(w_ih))
        rs.append(reorder(w_hh))
        bs.append(np.concatenate([reorder(b_ih), reorder(b_hh)]))
    prefix = "%s.l%d." % (scope, layer)
    return (g.weight(prefix + "W", np.stack(ws)), g.weight(prefix + "R", np.stack(rs)),
            g.weight(prefix + "B", np.stack(bs)))


def torch_rnn_layer_output(g, y, scope, dirs):
    """Y [seq, dirs, batch, hidden] as the next layer's input [seq, batch, dirs * hidden]: Squeeze
    of the direction axis for one direction, Transpose and Reshape for two."""
    if dirs == 1:
        return g.op("Squeeze", [y, g.constant([1], scope, np.int64)], scope)
    y = g.op("Transpose", [y], scope, perm=[0, 2, 1, 3])
    return g.op("Reshape", [y, g.constant([0, 0, -1], scope, np.int64)], scope)


def make_lstm(rng, num_layers=2, din=128, hidden=256, seq=100, batch=4, classes=32):
    """nn.LSTM(128, 256, num_layers=2) over [100, 4, 128] (seq, batch, features) with zero states,
    then nn.Linear to 32 classes per step, exported as torch.onnx does (opset 14): one LSTM node
    per layer, gates reordered from PyTorch's i, f, g, o to ONNX's i, o, f, c, each Y squeezed
    to [seq, batch, H]; h_n is the layers' Y_h concatenated."""
    g = GraphBuilder(rng)
    x = "input"
    last_h = []
    for layer in range(num_layers):
        s = "/lstm"
        w, r, b = torch_rnn_weights(g, "lstm", layer, 4, (0, 3, 1, 2), din if layer == 0 else hidden, hidden, 1)
        zeros = g.weight("lstm.l%d.h0" % layer, np.zeros((1, batch, hidden), np.float32))
        zeros_c = g.weight("lstm.l%d.c0" % layer, np.zeros((1, batch, hidden), np.float32))
        node = g._unique(s + "/LSTM")
        y, y_h, y_c = node + "_output_0", node + "_output_1", node + "_output_2"
        g.nodes.append(helper.make_node("LSTM", [x, w, r, b, "", zeros, zeros_c], [y, y_h, y_c], name=node,
                                        hidden_size=hidden))
        last_h.append(y_h)
        x = torch_rnn_layer_output(g, y, s, 1)
    # PyTorch's initialisation leaves the hidden states small (rms ~0.08):
    # a larger head keeps the logits O(0.1), as a trained tagger's are.
    g.linear_matmul(x, "fc", hidden, classes, gain=16.0)
    g.rename_last_output("logits")
    g.op("Concat", last_h, "/lstm", axis=0)
    g.rename_last_output("h_n")
    model = g.model("lstm", 14, [value_info("input", [seq, batch, din])],
                    [value_info("logits", [seq, batch, classes]), value_info("h_n", [num_layers, batch, hidden])])
    return model, {"input": (seq, batch, din)}


def make_bigru(rng, num_layers=2, din=64, hidden=128, seq=100, batch=4, classes=16):
    """nn.GRU(64, 128, num_layers=2, bidirectional=True, batch_first=True) over [4, 100, 64], then
    nn.Linear(256, 16), exported as torch.onnx does (opset 14): the input transposed to
    [seq, batch, features] first, one GRU node per layer with linear_before_reset=1 (PyTorch's
    GRU) and zero initial states, each Y transposed and reshaped to [seq, batch, 2 * H], the
    result transposed back. Gate order: PyTorch's r, z, n become ONNX's z, r, h."""
    g = GraphBuilder(rng)
    x = g.op("Transpose", ["input"], "/gru", perm=[1, 0, 2])
    for layer in range(num_layers):
        s = "/gru"
        w, r, b = torch_rnn_weights(g, "gru", layer, 3, (1, 0, 2), din if layer == 0 else 2 * hidden, hidden, 2)
        zeros = g.weight("gru.l%d.h0" % layer, np.zeros((2, batch, hidden), np.float32))
        node = g._unique(s + "/GRU")
        y, y_h = node + "_output_0", node + "_output_1"
        g.nodes.append(helper.make_node("GRU", [x, w, r, b, "", zeros], [y, y_h], name=node, hidden_size=hidden,
                                        direction="bidirectional", linear_before_reset=1))
        x = torch_rnn_layer_output(g, y, s, 2)
    x = g.op("Transpose", [x], "/gru", perm=[1, 0, 2])
    g.linear_matmul(x, "fc", 2 * hidden, classes)
    g.rename_last_output("logits")
    model = g.model("bigru", 14, [value_info("input", [batch, seq, din])],
                    [value_info("logits", [batch, seq, classes])])
    return model, {"input": (batch, seq, din)}


def scripted_loop_model(g, name, trip, cond, body_nodes, shape):
    """A model whose graph is one Loop as torch.onnx exports `for _ in range(steps)` over a state:
    trip count and condition from the Constants `trip` and `cond`, body inputs (i, cond.1, h.1) and
    outputs (cond.3, h.3), the condition passed through by Identity. `body_nodes` compute h.3 from
    h.1 (and the graph's "input" and weights). The model maps "input" to "output", both `shape`."""
    body = helper.make_graph(body_nodes + [
        helper.make_node("Identity", ["cond.1"], ["cond.3"], name="/Loop/Identity"),
    ], "loop_body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                     helper.make_tensor_value_info("cond.1", TensorProto.BOOL, []),
                     value_info("h.1", shape)],
        [helper.make_tensor_value_info("cond.3", TensorProto.BOOL, []), value_info("h.3", shape)])
    g.nodes.append(helper.make_node("Loop", [trip, cond, "input"], ["output"], name="/Loop", body=body))
    model = g.model(name, 13, [value_info("input", shape)], [value_info("output", shape)])
    return model, {"input": tuple(shape)}


def make_loop_branch(rng, steps=16, batch=4, d=64):
    """A scripted PyTorch module whose loop holds a data-dependent branch, as torch.onnx exports
    torch.jit.script code (opset 13): `for _ in range(16): h = fc(h); h = relu(h) if h.sum() > 0
    else tanh(h)` becomes a Loop (constant trip count, condition true) whose body computes
    MatMul + Add with the weights read from the enclosing graph, ReduceSum, Greater and an If
    whose branches apply Relu or Tanh, and passes the condition through with Identity."""
    g = GraphBuilder(rng)
    w = g.weight("fc.weight_t", g.normal((d, d), math.sqrt(1.0 / d)))
    b = g.weight("fc.bias", g.normal((d,), 0.02))
    trip = g.constant(steps, "", np.int64)
    cond = g.constant(True, "", np.bool_)
    zero = g.constant(0.0, "")
    relu = helper.make_graph([helper.make_node("Relu", ["/Loop/fc/Add_output_0"], ["/Loop/If/Relu_output_0"],
                                               name="/Loop/If/Relu")],
                             "then_branch", [], [value_info("/Loop/If/Relu_output_0", [batch, d])])
    tanh = helper.make_graph([helper.make_node("Tanh", ["/Loop/fc/Add_output_0"], ["/Loop/If/Tanh_output_0"],
                                               name="/Loop/If/Tanh")],
                             "else_branch", [], [value_info("/Loop/If/Tanh_output_0", [batch, d])])
    body_nodes = [
        helper.make_node("MatMul", ["h.1", w], ["/Loop/fc/MatMul_output_0"], name="/Loop/fc/MatMul"),
        helper.make_node("Add", ["/Loop/fc/MatMul_output_0", b], ["/Loop/fc/Add_output_0"], name="/Loop/fc/Add"),
        helper.make_node("ReduceSum", ["/Loop/fc/Add_output_0"], ["/Loop/ReduceSum_output_0"], name="/Loop/ReduceSum",
                         keepdims=0),
        helper.make_node("Greater", ["/Loop/ReduceSum_output_0", zero], ["/Loop/Greater_output_0"],
                         name="/Loop/Greater"),
        helper.make_node("If", ["/Loop/Greater_output_0"], ["h.3"], name="/Loop/If", then_branch=relu,
                         else_branch=tanh),
    ]
    return scripted_loop_model(g, "loop_branch", trip, cond, body_nodes, [batch, d])


def make_loop_1000_tiny(rng, steps=1000, d=8):
    """The loop machinery's own cost: 1000 iterations of h = h * 0.5 + x on [1, 8], a two-node body
    whose kernels take well under a microsecond, so time per iteration is what the runtime spends
    starting a body, passing loop-carried values and checking the condition."""
    g = GraphBuilder(rng)
    trip = g.constant(steps, "", np.int64)
    cond = g.constant(True, "", np.bool_)
    half = g.constant(0.5, "")
    body_nodes = [
        helper.make_node("Mul", ["h.1", half], ["/Loop/Mul_output_0"], name="/Loop/Mul"),
        helper.make_node("Add", ["/Loop/Mul_output_0", "input"], ["h.3"], name="/Loop/Add"),
    ]
    return scripted_loop_model(g, "loop_1000_tiny", trip, cond, body_nodes, [1, d])


def make_loop_mlp(rng, steps=32, batch=8, d=256):
    """A loop whose body is worth compiling: a scripted PyTorch module
    `for _ in range(32): h = torch.tanh(F.gelu(fc(h)) + x)` on a [8, 256] state driven by the input x,
    exported by torch.onnx (opset 13) as a Loop (constant trip count, condition true) whose body holds
    MatMul + Add with the weights read from the enclosing graph, GELU spelled out as Div, Erf, Add,
    Mul, Mul, the Add of x (also read from outside) and Tanh; the condition passes through Identity."""
    g = GraphBuilder(rng)
    w = g.weight("fc.weight_t", g.normal((d, d), math.sqrt(2.0 / d)))
    b = g.weight("fc.bias", g.normal((d,), 0.02))
    trip = g.constant(steps, "", np.int64)
    cond = g.constant(True, "", np.bool_)
    sqrt2 = g.constant(math.sqrt(2.0), "")
    one = g.constant(1.0, "")
    half = g.constant(0.5, "")
    body_nodes = [
        helper.make_node("MatMul", ["h.1", w], ["/Loop/fc/MatMul_output_0"], name="/Loop/fc/MatMul"),
        helper.make_node("Add", ["/Loop/fc/MatMul_output_0", b], ["/Loop/fc/Add_output_0"], name="/Loop/fc/Add"),
        helper.make_node("Div", ["/Loop/fc/Add_output_0", sqrt2], ["/Loop/Div_output_0"], name="/Loop/Div"),
        helper.make_node("Erf", ["/Loop/Div_output_0"], ["/Loop/Erf_output_0"], name="/Loop/Erf"),
        helper.make_node("Add", ["/Loop/Erf_output_0", one], ["/Loop/Add_output_0"], name="/Loop/Add"),
        helper.make_node("Mul", ["/Loop/fc/Add_output_0", "/Loop/Add_output_0"], ["/Loop/Mul_output_0"],
                         name="/Loop/Mul"),
        helper.make_node("Mul", ["/Loop/Mul_output_0", half], ["/Loop/Mul_1_output_0"], name="/Loop/Mul_1"),
        helper.make_node("Add", ["/Loop/Mul_1_output_0", "input"], ["/Loop/Add_1_output_0"], name="/Loop/Add_1"),
        helper.make_node("Tanh", ["/Loop/Add_1_output_0"], ["h.3"], name="/Loop/Tanh"),
    ]
    return scripted_loop_model(g, "loop_mlp", trip, cond, body_nodes, [batch, d])


def make_streaming_vad(rng, chunk=512, channels=32, hidden=64):
    """A streaming voice-activity detector shaped like the public ones (opset 16): each call takes
    an audio chunk [1, 512], the recurrent state [2, 1, 64] (h over c) and the sample rate as an
    int64 scalar, and returns the speech probability [1, 1] and the next state, which the caller
    feeds back. An If on sr == 16000 picks between two branches that each hold the whole network
    for their rate, with weights read from the enclosing graph: a strided Conv1d front end, a
    Conv1d + Relu, an LSTM over the frames starting from the state, and Linear + Sigmoid on the
    last hidden state. The branches differ in the front end's kernel and stride."""
    g = GraphBuilder(rng)
    sixteen_k = g.constant(16000, "", np.int64)
    is_16k = g.op("Equal", ["sr", sixteen_k], "")

    def branch(name, kernel, stride):
        b = GraphBuilder(rng)
        b.initializers = g.initializers
        s = "/If/" + name
        x = b.op("Unsqueeze", ["input", b.constant([1], s, np.int64)], s)
        w1 = g.weight(name + ".conv1.weight", g.normal((channels, 1, kernel), math.sqrt(2.0 / kernel)))
        x = b.op("Conv", [x, w1], s, kernel_shape=[kernel], strides=[stride], pads=[0, 0])
        x = b.op("Relu", [x], s)
        w2 = g.weight(name + ".conv2.weight", g.normal((channels, channels, 3), math.sqrt(2.0 / (3 * channels))))
        b2 = g.weight(name + ".conv2.bias", g.normal((channels,), 0.05))
        x = b.op("Conv", [x, w2, b2], s, kernel_shape=[3], strides=[1], pads=[1, 1])
        x = b.op("Relu", [x], s)
        x = b.op("Transpose", [x], s, perm=[2, 0, 1])
        h0 = b.op("Slice", ["state", b.constant([0], s, np.int64), b.constant([1], s, np.int64)], s)
        c0 = b.op("Slice", ["state", b.constant([1], s, np.int64), b.constant([2], s, np.int64)], s)
        w, r, bias = torch_rnn_weights(g, name + ".lstm", 0, 4, (0, 3, 1, 2), channels, hidden, 1)
        node = b._unique(s + "/LSTM")
        y, y_h, y_c = node + "_output_0", node + "_output_1", node + "_output_2"
        b.nodes.append(helper.make_node("LSTM", [x, w, r, bias, "", h0, c0], [y, y_h, y_c], name=node,
                                        hidden_size=hidden))
        h = b.op("Squeeze", [y_h, b.constant([0], s, np.int64)], s)
        fc_w = g.weight(name + ".fc.weight", g.normal((1, hidden), math.sqrt(4.0 / hidden)))
        fc_b = g.weight(name + ".fc.bias", g.normal((1,), 0.02))
        logit = b.op("Gemm", [h, fc_w, fc_b], s, transB=1)
        prob = b.op("Sigmoid", [logit], s)
        state = b.op("Concat", [y_h, y_c], s, axis=0)
        return helper.make_graph(b.nodes, name + "_branch", [],
                                 [value_info(prob, [1, 1]), value_info(state, [2, 1, hidden])])

    g.nodes.append(helper.make_node("If", [is_16k], ["output", "stateN"], name="/If",
                                    then_branch=branch("sr16k", 16, 8), else_branch=branch("sr8k", 8, 8)))
    model = g.model("streaming_vad", 16,
                    [value_info("input", [1, chunk]), value_info("state", [2, 1, hidden]),
                     helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                    [value_info("output", [1, 1]), value_info("stateN", [2, 1, hidden])])
    return model, {"input": (1, chunk), "state": (2, 1, hidden), "sr": np.array(16000, np.int64)}


# ---------------------------------------------------------------------------


def save_input(out_dir, file_name, shape, seed):
    """A fixed-seed N(0, 1) float32 input (images are normalised like this too), or, where the
    maker gives an array instead of a shape (a sample rate, a step count), that array."""
    if isinstance(shape, np.ndarray):
        x = shape
    else:
        x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    np.save(os.path.join(out_dir, file_name), x)
    return file_name


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s OUT_DIR\n" % argv[0])
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    cases = []

    fixed = [
        ("mlp_b1", lambda rng: make_mlp(rng, 1)),
        ("mlp_b32", lambda rng: make_mlp(rng, 32)),
        ("resnet_small", make_resnet_small),
        ("mobilenetv3_small_style", make_mobilenetv3_small_style),
        ("transformer_encoder", make_transformer_encoder),
        ("silu_ln_gelu", make_silu_ln_gelu),
        ("lstm", make_lstm),
        ("bigru", make_bigru),
        ("loop_branch", make_loop_branch),
        ("loop_1000_tiny", make_loop_1000_tiny),
        ("streaming_vad", make_streaming_vad),
        # Appended: the seed is the position in this list.
        ("loop_mlp", make_loop_mlp),
    ]
    for seed, (name, maker) in enumerate(fixed, start=1):
        model, shapes = maker(np.random.default_rng(seed))
        onnx.save(model, os.path.join(out_dir, name + ".onnx"))
        inputs = {}
        for i, (input_name, shape) in enumerate(shapes.items()):
            inputs[input_name] = save_input(out_dir, "%s.in%d.npy" % (name, i), shape, 1000 + 10 * seed + i)
        cases.append({"name": name, "model": name + ".onnx", "inputs": inputs})

    model, _ = make_transformer_dynamic(np.random.default_rng(100))
    onnx.save(model, os.path.join(out_dir, "transformer_dynamic.onnx"))
    for seq in DYNAMIC_SEQ_LENS:
        file_name = save_input(out_dir, "transformer_dynamic.seq%d.in0.npy" % seq, (1, seq, 256), 2000 + seq)
        cases.append({"name": "transformer_dynamic/seq:%d" % seq, "model": "transformer_dynamic.onnx",
                      "inputs": {"input": file_name}})

    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
