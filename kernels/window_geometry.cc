#include "kernels/window_geometry.h"

namespace kiln::kernels {

StatusOr<WindowAttrs> ParseWindowAttrs(const graph::Node& node, const char* op) {
  WindowAttrs attrs;
  KILN_ASSIGN_OR_RETURN(std::string auto_pad, node.GetString("auto_pad", "NOTSET"));
  if (auto_pad == "NOTSET" || auto_pad.empty()) {
    attrs.auto_pad = AutoPad::kNotSet;
  } else if (auto_pad == "VALID") {
    attrs.auto_pad = AutoPad::kValid;
  } else if (auto_pad == "SAME_UPPER") {
    attrs.auto_pad = AutoPad::kSameUpper;
  } else if (auto_pad == "SAME_LOWER") {
    attrs.auto_pad = AutoPad::kSameLower;
  } else {
    return Unsupported(op, ": unknown auto_pad '", auto_pad, "'");
  }
  KILN_ASSIGN_OR_RETURN(attrs.kernel_shape, node.GetInts("kernel_shape"));
  KILN_ASSIGN_OR_RETURN(attrs.strides, node.GetInts("strides"));
  KILN_ASSIGN_OR_RETURN(attrs.dilations, node.GetInts("dilations"));
  KILN_ASSIGN_OR_RETURN(attrs.pads, node.GetInts("pads"));
  for (int64_t k : attrs.kernel_shape) {
    if (k <= 0) return InvalidModel(op, ": kernel_shape values must be positive");
  }
  for (int64_t s : attrs.strides) {
    if (s <= 0) return InvalidModel(op, ": strides must be positive");
  }
  for (int64_t d : attrs.dilations) {
    if (d <= 0) return InvalidModel(op, ": dilations must be positive");
  }
  for (int64_t p : attrs.pads) {
    if (p < 0) return Unsupported(op, ": negative pads are not supported");
  }
  if (attrs.pads.size() % 2 != 0) return InvalidModel(op, ": pads must have an even length");
  return attrs;
}

Status CheckWindowLengths(const char* op, const WindowAttrs& attrs, size_t spatial_rank, Dims* strides,
                          Dims* dilations) {
  *strides = attrs.strides.empty() ? Dims(spatial_rank, 1) : attrs.strides;
  *dilations = attrs.dilations.empty() ? Dims(spatial_rank, 1) : attrs.dilations;
  if (strides->size() != spatial_rank) {
    return InvalidArgument(op, ": strides has ", strides->size(), " values for ", spatial_rank, " spatial dims");
  }
  if (dilations->size() != spatial_rank) {
    return InvalidArgument(op, ": dilations has ", dilations->size(), " values for ", spatial_rank, " spatial dims");
  }
  if (!attrs.pads.empty() && attrs.pads.size() != 2 * spatial_rank) {
    return InvalidArgument(op, ": pads has ", attrs.pads.size(), " values for ", spatial_rank, " spatial dims");
  }
  return Status::Ok();
}

StatusOr<WindowGeometry> ResolveForwardWindow(const char* op, const WindowAttrs& attrs, const Dims& input_spatial,
                                              const Dims& kernel, bool ceil_mode) {
  const size_t rank = input_spatial.size();
  WindowGeometry g;
  g.kernel = kernel;
  if (kernel.size() != rank) {
    return InvalidArgument(op, ": kernel has ", kernel.size(), " dims for ", rank, " spatial dims");
  }
  KILN_RETURN_IF_ERROR(CheckWindowLengths(op, attrs, rank, &g.strides, &g.dilations));
  g.pad_begin.assign(rank, 0);
  g.pad_end.assign(rank, 0);
  g.output.assign(rank, 0);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t in = input_spatial[i];
    const int64_t s = g.strides[i];
    const int64_t ek = (kernel[i] - 1) * g.dilations[i] + 1;  // dilated extent
    switch (attrs.auto_pad) {
      case AutoPad::kNotSet:
        if (!attrs.pads.empty()) {
          g.pad_begin[i] = attrs.pads[i];
          g.pad_end[i] = attrs.pads[i + rank];
        }
        break;
      case AutoPad::kValid: break;
      case AutoPad::kSameUpper:
      case AutoPad::kSameLower: {
        const int64_t out = (in + s - 1) / s;
        const int64_t total = std::max<int64_t>(0, (out - 1) * s + ek - in);
        const int64_t small = total / 2;
        g.pad_begin[i] = attrs.auto_pad == AutoPad::kSameUpper ? small : total - small;
        g.pad_end[i] = total - g.pad_begin[i];
        break;
      }
    }
    const int64_t span = in + g.pad_begin[i] + g.pad_end[i] - ek;
    if (span < 0) {
      return InvalidArgument(op, ": window extent ", ek, " exceeds the padded input size ",
                             in + g.pad_begin[i] + g.pad_end[i], " in spatial dim ", i);
    }
    g.output[i] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    // With ceil_mode, a last window that would start past the input and its
    // begin padding covers no data; like PyTorch (which most such models come
    // from), drop it.
    if (ceil_mode && g.output[i] > 1 && (g.output[i] - 1) * s >= in + g.pad_begin[i]) --g.output[i];
  }
  return g;
}

}  // namespace kiln::kernels
