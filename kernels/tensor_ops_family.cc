// The shape and data-movement family: each file registers its own ops (with
// the opset ranges stated there); this is the one list of those files.
#include "kernels/families.h"
#include "kernels/tensor_ops_common.h"

namespace kiln::kernels {

void RegisterTensorKernels(KernelRegistry& registry) {
  RegisterReshapeOps(registry);      // reshape.cc: Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout
  RegisterTransposeOp(registry);     // transpose.cc
  RegisterConcatSplitOps(registry);  // concat_split.cc: Concat, Split
  RegisterSliceOp(registry);         // slice.cc
  RegisterGatherOps(registry);       // gather.cc: Gather, GatherElements, GatherND, Scatter*
  RegisterShapeOps(registry);        // shape_ops.cc: Shape, Size, Constant, ConstantOfShape, Range, EyeLike
  RegisterExpandTileOps(registry);   // expand_tile.cc: Expand, Tile
  RegisterIndexingOps(registry);     // indexing_ops.cc: Trilu, NonZero, TopK, CumSum, OneHot, Compress, ...
}

}  // namespace kiln::kernels
