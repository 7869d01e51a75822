// Sliding-window geometry shared by Conv, ConvTranspose and the pooling ops:
// parsing of kernel_shape/strides/dilations/pads/auto_pad and resolution of
// pads and output sizes for a given input shape, following the ONNX specs.
#pragma once

#include <string>

#include "graph/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::kernels {

enum class AutoPad { kNotSet, kValid, kSameUpper, kSameLower };

// The window attributes as written on the node; empty lists mean "default"
// (ones for strides and dilations, zeros for pads, the weights' shape for the
// kernel of Conv/ConvTranspose).
struct WindowAttrs {
  AutoPad auto_pad = AutoPad::kNotSet;
  Dims kernel_shape;
  Dims strides;
  Dims dilations;
  Dims pads;  // [x1_begin, x2_begin, ..., x1_end, x2_end, ...]
};

// Reads and sanity-checks the attributes (positive strides, dilations and
// kernel, non-negative pads, a known auto_pad). Lengths are checked against
// the spatial rank later, when the input is known.
StatusOr<WindowAttrs> ParseWindowAttrs(const graph::Node& node, const char* op);

// Per spatial dimension: the geometry of one forward window op on one input.
struct WindowGeometry {
  Dims kernel;
  Dims strides;
  Dims dilations;
  Dims pad_begin;
  Dims pad_end;
  Dims output;  // spatial output sizes
};

// Resolves Conv / pooling geometry for `input_spatial` with the given kernel
// (from the attribute or the weights). `ceil_mode` rounds output sizes up
// (pooling). Fails with InvalidArgument on list lengths that do not match the
// spatial rank or on windows larger than the padded input.
StatusOr<WindowGeometry> ResolveForwardWindow(const char* op, const WindowAttrs& attrs, const Dims& input_spatial,
                                              const Dims& kernel, bool ceil_mode);

// Fills strides/dilations defaults and checks lengths; used by ConvTranspose,
// which resolves its pads itself.
Status CheckWindowLengths(const char* op, const WindowAttrs& attrs, size_t spatial_rank, Dims* strides,
                          Dims* dilations);

// Floor division for possibly negative numerators (ONNX's formulas use
// Python semantics).
inline int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace kiln::kernels
