// Expand and Tile, both expressed as one StridedCopy: Expand reads broadcast
// axes with stride 0; Tile views each output axis i as (repeat, dim_i) with
// source strides (0, stride_i). StridedCopy merges what is contiguous, so the
// innermost dimension is copied with memcpy whenever it is not broadcast.
#include <algorithm>
#include <memory>

#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {
namespace {

class ExpandKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    const Tensor* shape_t = ctx.input(1);
    if (in == nullptr || shape_t == nullptr) return InvalidArgument("Expand: expects input and shape");
    KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, ReadIndexVector("Expand", "shape", *shape_t));
    const size_t in_rank = in->dims().size();
    const size_t rank = std::max(in_rank, shape.size());
    Dims out_dims(rank);
    std::vector<int64_t> src_strides(rank, 0);
    const std::vector<int64_t> in_strides = ContiguousStrides(in->dims());
    // Right-aligned multidirectional broadcast of the input against shape.
    for (size_t i = 0; i < rank; ++i) {
      const int64_t a = i + in_rank >= rank ? in->dims()[i + in_rank - rank] : 1;
      const int64_t b = i + shape.size() >= rank ? shape[i + shape.size() - rank] : 1;
      if (b < 0) return InvalidArgument("Expand: negative dimension in shape ", DimsToString(shape));
      if (a != b && a != 1 && b != 1) {
        return InvalidArgument("Expand: input ", DimsToString(in->dims()), " cannot be broadcast to ",
                               DimsToString(shape));
      }
      out_dims[i] = a == 1 ? b : a;
      if (i + in_rank >= rank && a != 1) src_strides[i] = in_strides[i + in_rank - rank];
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in->dtype(), out_dims));
    if (out->num_elements() == 0) return Status::Ok();
    StridedCopy(ctx.parallel(), DTypeSize(in->dtype()), out->raw_data(), in->raw_data(), out_dims, src_strides);
    return Status::Ok();
  }
};

class TileKernel final : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) const override {
    const Tensor* in = ctx.input(0);
    const Tensor* repeats_t = ctx.input(1);
    if (in == nullptr || repeats_t == nullptr) return InvalidArgument("Tile: expects input and repeats");
    KILN_ASSIGN_OR_RETURN(const std::vector<int64_t> repeats, ReadIndexVector("Tile", "repeats", *repeats_t));
    if (static_cast<int64_t>(repeats.size()) != in->rank()) {
      return InvalidArgument("Tile: repeats ", DimsToString(repeats), " must have one entry per axis of input ",
                             DimsToString(in->dims()));
    }
    const std::vector<int64_t> in_strides = ContiguousStrides(in->dims());
    Dims out_dims;
    Dims view_dims;
    std::vector<int64_t> view_strides;
    for (size_t i = 0; i < repeats.size(); ++i) {
      if (repeats[i] < 0) return InvalidArgument("Tile: negative repeat ", repeats[i], " for axis ", i);
      out_dims.push_back(in->dims()[i] * repeats[i]);
      view_dims.push_back(repeats[i]);
      view_strides.push_back(0);
      view_dims.push_back(in->dims()[i]);
      view_strides.push_back(in_strides[i]);
    }
    KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.Output(0, in->dtype(), out_dims));
    if (out->num_elements() == 0) return Status::Ok();
    StridedCopy(ctx.parallel(), DTypeSize(in->dtype()), out->raw_data(), in->raw_data(), view_dims, view_strides);
    return Status::Ok();
  }
};

}  // namespace

void RegisterExpandTileOps(KernelRegistry& r) {
  r.Register(KernelDef{"Expand", "", 8, kNoMaxOpset, MakeFactory<ExpandKernel>()});
  // Tile-1 took (tiles, axis) inputs with other semantics; 6 on is repeats.
  r.Register(KernelDef{"Tile", "", 6, kNoMaxOpset, MakeFactory<TileKernel>()});
}

}  // namespace kiln::kernels
