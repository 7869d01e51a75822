#include "kernels/broadcast.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace kiln::kernels {

StatusOr<Dims> BroadcastDims(const char* op, const std::vector<const Dims*>& shapes) {
  size_t rank = 0;
  for (const Dims* s : shapes) rank = std::max(rank, s->size());
  Dims out(rank, 1);
  for (const Dims* s : shapes) {
    const size_t pad = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      const int64_t d = (*s)[i];
      int64_t& o = out[pad + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (const Dims* t : shapes) all += (all.empty() ? "" : " and ") + DimsToString(*t);
      return InvalidArgument(op, ": shapes ", all, " cannot be broadcast (dim ", d, " vs ", o, " at axis ",
                             static_cast<int64_t>(pad + i) - static_cast<int64_t>(rank), ")");
    }
  }
  return out;
}

StatusOr<Dims> BroadcastDims(const char* op, std::initializer_list<const Dims*> shapes) {
  return BroadcastDims(op, std::vector<const Dims*>(shapes));
}

BroadcastIndexer::BroadcastIndexer(const Dims& out_dims, std::initializer_list<const Dims*> operands) {
  assert(operands.size() <= kMaxOperands && "too many broadcast operands");
  num_operands_ = static_cast<int>(operands.size());
  // A zero-sized output has nothing to walk. Its other dims may be anything
  // (say [0, 2^40, 2^40], which allocates nothing), so nothing below may
  // multiply them: the products could overflow.
  if (std::find(out_dims.begin(), out_dims.end(), 0) != out_dims.end()) {
    num_elements_ = 0;
    inner_ = 1;
    inner_stride_ = Offsets{};
    return;
  }
  num_elements_ = 1;
  for (int64_t d : out_dims) num_elements_ *= d;

  // Walk the output dims innermost first, building collapsed dims (also
  // innermost first) with each operand's contiguous stride.
  const size_t rank = out_dims.size();
  std::vector<int64_t> dims;
  std::vector<Offsets> strides;
  std::vector<std::array<bool, kMaxOperands>> broadcast;
  Offsets running{};  // each operand's element stride at the current dim
  running.fill(1);
  for (size_t r = 0; r < rank; ++r) {
    const size_t axis = rank - 1 - r;
    const int64_t size = out_dims[axis];
    if (size == 1) continue;  // contributes nothing to any index
    std::array<bool, kMaxOperands> bcast{};
    Offsets stride{};
    int k = 0;
    for (const Dims* op : operands) {
      const size_t op_rank = op->size();
      const int64_t op_dim = r < op_rank ? (*op)[op_rank - 1 - r] : 1;
      bcast[k] = op_dim == 1;
      stride[k] = bcast[k] ? 0 : running[k];
      if (!bcast[k]) running[k] *= size;
      ++k;
    }
    if (!dims.empty() && broadcast.back() == bcast) {
      dims.back() *= size;  // strides of the inner dim stay valid
    } else {
      dims.push_back(size);
      strides.push_back(stride);
      broadcast.push_back(bcast);
    }
  }
  if (dims.empty()) {  // scalar output (or all size-1 dims)
    dims.push_back(1);
    strides.push_back(Offsets{});
  }
  inner_ = dims.front();
  inner_stride_ = strides.front();
  for (size_t i = dims.size(); i-- > 1;) {
    outer_dims_.push_back(dims[i]);
    outer_strides_.push_back(strides[i]);
  }
}

}  // namespace kiln::kernels
