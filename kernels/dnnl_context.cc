#include "kernels/dnnl_context.h"

#include <algorithm>

#include <omp.h>

#include <cstring>

namespace kiln::kernels {

const dnnl::engine& DnnlEngine() {
  // Thread-safe static initialisation; the engine lives for the process.
  static const dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

DnnlCreationThreads::DnnlCreationThreads(int threads) : saved_(omp_get_max_threads()) {
  threads = std::max(1, threads);
  if (saved_ != threads) omp_set_num_threads(threads);
}

DnnlCreationThreads::~DnnlCreationThreads() {
  if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
}

Dims RowMajorStrides(const Dims& dims) {
  Dims strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

dnnl::memory::desc PlainF32Desc(const Dims& dims) { return StridedF32Desc(dims, RowMajorStrides(dims)); }

dnnl::memory::desc PlainDesc(const Dims& dims, dnnl::memory::data_type type) {
  return dnnl::memory::desc(ToDnnlDims(dims), type, ToDnnlDims(RowMajorStrides(dims)));
}

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

void ExecuteDnnl(const KernelContext& ctx, const dnnl::primitive& primitive, const dnnl::primitive_desc_base& pd,
                 std::unordered_map<int, dnnl::memory> args, int built_threads, double flops) {
  // oneDNN (OpenMP build) sizes the parallel regions of implementations
  // that do not fix their count at creation from the calling thread's
  // OpenMP setting; make it follow the session's thread count.
  const size_t touched = pd.src_desc().get_size() + pd.weights_desc().get_size() + pd.dst_desc().get_size();
  int threads = DnnlThreadsFor(DnnlWork{touched, flops}, ctx.parallel().num_threads());
  if (built_threads > 0) threads = std::min(threads, built_threads);
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
  dnnl::memory::desc scratch_desc = pd.scratchpad_desc();
  if (scratch_desc.get_size() > 0) args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch_desc, DnnlEngine()));
  dnnl::stream stream(DnnlEngine());
  primitive.execute(stream, args);
  stream.wait();
}

DnnlReorder MakeReorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  DnnlReorder r;
  r.pd = dnnl::reorder::primitive_desc(DnnlEngine(), from, DnnlEngine(), to, UserScratchpadAttr());
  r.primitive = dnnl::reorder(r.pd);
  r.built_threads = omp_get_max_threads();
  return r;
}

void ExecuteReorder(const KernelContext& ctx, const DnnlReorder& reorder, const dnnl::memory& from,
                    const dnnl::memory& to) {
  ExecuteDnnl(ctx, reorder.primitive, reorder.pd, {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}}, reorder.built_threads);
}

dnnl::memory PackedWeightsCache::Get(const KernelContext& ctx, const DnnlReorder& reorder, const Tensor& weights,
                                     bool weights_constant) const {
  if (weights_constant) {
    MutexLock lock(mu_);
    if (source_ == weights.raw_data() && packed_) return packed_;
  }
  dnnl::memory packed(reorder.pd.dst_desc(), DnnlEngine());
  ExecuteReorder(ctx, reorder, WrapMemory(reorder.pd.src_desc(), weights.raw_data()), packed);
  if (weights_constant) {
    MutexLock lock(mu_);
    source_ = weights.raw_data();
    packed_ = packed;
  }
  return packed;
}

void BlockedIo::Prepare(const dnnl::memory::desc& src, const dnnl::memory::desc& weights,
                        const dnnl::memory::desc& dst) {
  built_threads = omp_get_max_threads();
  reorder_src = src != src_user;
  reorder_weights = weights != weights_user;
  reorder_dst = dst != dst_user;
  if (reorder_src) src_reorder = MakeReorder(src_user, src);
  if (reorder_weights) weights_reorder = MakeReorder(weights_user, weights);
  if (reorder_dst) dst_reorder = MakeReorder(dst, dst_user);
}

void BlockedIo::Execute(const KernelContext& ctx, const dnnl::primitive& primitive, const dnnl::primitive_desc_base& pd,
                        const void* src, const Tensor& weights, bool weights_constant, void* dst,
                        std::unordered_map<int, dnnl::memory> extra) const {
  dnnl::memory src_mem = WrapMemory(src_user, src);
  if (reorder_src) {
    dnnl::memory blocked(src_reorder.pd.dst_desc(), DnnlEngine());
    ExecuteReorder(ctx, src_reorder, src_mem, blocked);
    src_mem = blocked;
  }
  dnnl::memory weights_mem = reorder_weights ? weights_cache.Get(ctx, weights_reorder, weights, weights_constant)
                                             : WrapMemory(weights_user, weights.raw_data());
  dnnl::memory dst_user_mem = WrapMemory(dst_user, dst);
  dnnl::memory dst_mem = reorder_dst ? dnnl::memory(dst_reorder.pd.src_desc(), DnnlEngine()) : dst_user_mem;
  extra[DNNL_ARG_SRC] = src_mem;
  extra[DNNL_ARG_WEIGHTS] = weights_mem;
  extra[DNNL_ARG_DST] = dst_mem;
  ExecuteDnnl(ctx, primitive, pd, std::move(extra), built_threads, flops);
  if (reorder_dst) ExecuteReorder(ctx, dst_reorder, dst_mem, dst_user_mem);
}

}  // namespace kiln::kernels
