#include "kernels/dnnl_context.h"

#include <omp.h>

namespace kiln::kernels {

const dnnl::engine& DnnlEngine() {
  // Thread-safe static initialisation; the engine lives for the process.
  static const dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

Dims RowMajorStrides(const Dims& dims) {
  Dims strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

dnnl::memory::desc PlainF32Desc(const Dims& dims) { return StridedF32Desc(dims, RowMajorStrides(dims)); }

dnnl::memory::desc StridedF32Desc(const Dims& dims, const Dims& strides) {
  return dnnl::memory::desc(ToDnnlDims(dims), dnnl::memory::data_type::f32, ToDnnlDims(strides));
}

Status DnnlErrorToStatus(const char* op, const dnnl::error& e) {
  if (e.status == dnnl_unimplemented) {
    return Unsupported(op, ": oneDNN has no implementation for this problem (", e.what(), ")");
  }
  return Internal(op, ": oneDNN error ", static_cast<int>(e.status), ": ", e.what());
}

dnnl::primitive_attr UserScratchpadAttr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

dnnl::memory WrapMemory(const dnnl::memory::desc& desc, const void* data) {
  // oneDNN takes a non-const handle for inputs too; it does not write them.
  return dnnl::memory(desc, DnnlEngine(), const_cast<void*>(data));
}

void ExecuteDnnl(const KernelContext& ctx, const dnnl::primitive& primitive, const dnnl::primitive_desc& pd,
                 std::unordered_map<int, dnnl::memory> args) {
  // oneDNN (OpenMP build) sizes its parallel regions from the calling
  // thread's OpenMP setting; make it follow the session's thread count.
  omp_set_num_threads(ctx.parallel().num_threads() > 0 ? ctx.parallel().num_threads() : 1);
  dnnl::memory::desc scratch_desc = pd.scratchpad_desc();
  if (scratch_desc.get_size() > 0) args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch_desc, DnnlEngine()));
  dnnl::stream stream(DnnlEngine());
  primitive.execute(stream, args);
  stream.wait();
}

}  // namespace kiln::kernels
