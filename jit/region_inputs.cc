#include "jit/region_inputs.h"

#include <algorithm>
#include <optional>

namespace kiln::jit::internal {
namespace {

using graph::ValueId;

// A single-element constant becomes an immediate. Integer scalars are
// accepted here only as values (Pow's exponent may be int64).
std::optional<double> ScalarConstant(const graph::Value& value) {
  if (!value.constant || value.constant->num_elements() != 1) return std::nullopt;
  const Tensor& t = *value.constant;
  switch (t.dtype()) {
    case DType::kFloat32: return static_cast<double>(t.data<float>()[0]);
    case DType::kBool: return t.data<bool>()[0] ? 1.0 : 0.0;
    case DType::kInt64: return static_cast<double>(t.data<int64_t>()[0]);
    case DType::kInt32: return static_cast<double>(t.data<int32_t>()[0]);
    default: return std::nullopt;
  }
}

}  // namespace

StatusOr<Kind> KindOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return Kind::kFloat;
    case DType::kBool: return Kind::kBool;
    default: return Unsupported("jit: elementwise regions support float32 and bool, not ", DTypeName(dtype));
  }
}

StatusOr<Dims> Broadcast(const Dims& a, const Dims& b) {
  const size_t rank = std::max(a.size(), b.size());
  Dims out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t x = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t y = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (x != y && x != 1 && y != 1) {
      return InvalidArgument("jit: dims ", DimsToString(a), " and ", DimsToString(b), " do not broadcast");
    }
    out[i] = x == 1 ? y : x;
  }
  return out;
}

StatusOr<std::vector<InputSpec>> ClassifyInputs(const graph::Graph& graph, const graph::Region& region) {
  if (region.kind != graph::RegionKind::kElementwise) {
    return Unsupported("jit: region kind ", graph::RegionKindName(region.kind));
  }
  if (region.nodes.empty() || region.outputs.empty()) {
    return InvalidArgument("jit: region ", region.id, " has no nodes or no outputs");
  }
  std::vector<InputSpec> specs(region.inputs.size());
  for (size_t i = 0; i < region.inputs.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(specs[i], ClassifyInput(graph.value(region.inputs[i])));
  }
  return specs;
}

StatusOr<InputSpec> ClassifyInput(const graph::Value& value) {
  InputSpec spec;
  if (std::optional<double> scalar = ScalarConstant(value)) {
    spec.baked = true;
    spec.immediate = *scalar;
    spec.kind = value.constant->dtype() == DType::kBool ? Kind::kBool : Kind::kFloat;
    return spec;
  }
  KILN_ASSIGN_OR_RETURN(spec.kind, KindOf(value.dtype));
  return spec;
}

StatusOr<std::vector<Kind>> OutputKinds(const graph::Graph& graph, const graph::Region& region) {
  std::vector<Kind> kinds;
  for (ValueId id : region.outputs) {
    KILN_ASSIGN_OR_RETURN(Kind kind, KindOf(graph.value(id).dtype));
    kinds.push_back(kind);
  }
  return kinds;
}

}  // namespace kiln::jit::internal
