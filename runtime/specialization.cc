#include "runtime/specialization.h"

#include <algorithm>

#include "jit/attention_region.h"
#include "jit/compiled_region.h"
#include "jit/gemm_region.h"
#include "jit/generic_codegen.h"
#include "jit/region_compiler.h"
#include "jit/row_reduction_codegen.h"

namespace kiln::runtime {
namespace {

// Rows are split across the intra-op threads in chunks of about this many
// elements; smaller regions run on the calling thread, where a fork would
// cost more than it saves.
constexpr int64_t kGrainElements = int64_t{1} << 14;

}  // namespace

StatusOr<std::shared_ptr<const Specialization::RowCall>> Specialization::PlanRowCall(
    const graph::Graph& graph, const graph::Region& region, const ShapeSignature& signature) const {
  {
    MutexLock lock(row_calls_mutex_);
    if (const auto* found = row_calls_.Find(signature)) return *found;
  }
  auto call = std::make_shared<RowCall>();
  call->signature = signature;
  if (trial_row_calls) call->trial.Start();
  call->verification.Start(row_call_verify_calls);
  if (region.kind == graph::RegionKind::kAttention) {
    // Operands that do not fit the code (another head dim) are interpreted.
    Dims output;
    double flops = 0;
    const std::optional<jit::AttentionLayout>& layout = code->attention_layout();
    call->served = layout && jit::PrepareAttentionCall(*layout, signature.dims, call->params, output, flops).ok();
    call->output_dims = {output};
  } else {
    const Status prepared =
        jit::PrepareGenericRowReductionCall(*code, graph, region, signature.dims, call->params, call->output_dims);
    if (!prepared.ok() && prepared.code() != StatusCode::kUnsupported) return prepared;
    call->served = prepared.ok();
  }
  MutexLock lock(row_calls_mutex_);
  row_calls_.Put(signature, call);
  return std::shared_ptr<const RowCall>(std::move(call));
}

bool Specialization::Serves(const graph::Region& region, const ShapeSignature& call_signature) const {
  // A specialization was checked against its signature when compiled.
  if (!generic) return call_signature == signature;
  if (region.kind == graph::RegionKind::kGemm) return jit::GemmServes(*code, call_signature.dims);
  if (region.kind == graph::RegionKind::kAttention) return jit::AttentionServes(*code, call_signature.dims);
  if (region.kind == graph::RegionKind::kRowReduction) return true;
  // LSTM code is only ever specialized (jit/lstm_region.h).
  if (region.kind == graph::RegionKind::kLstm) return false;
  return jit::MaxRank(call_signature.dims) <= domain_rank;
}

StatusOr<double> Specialization::RunGemm(RegionCall& call, CompiledCallScratch& scratch) const {
  if (!jit::GemmServes(*code, scratch.signature.dims)) {
    return Internal("GEMM code called on shapes it does not serve: ", scratch.signature.ToString());
  }
  int64_t m = 0;
  jit::GemmCallShape(*code, scratch.signature.dims, scratch.gemm_output_dims, m);
  scratch.input_ptrs.clear();
  for (size_t i = 0; i < scratch.signature.dims.size(); ++i) scratch.input_ptrs.push_back(call.input(i).raw_data());
  KILN_ASSIGN_OR_RETURN(void* out, call.AllocateOutput(0, scratch.gemm_output_dims));
  void* const outs[] = {out};
  const void* const* ins = scratch.input_ptrs.data();
  const int64_t tiles = code->gemm_tiles(m);
  const kernels::ParallelRunner& parallel = call.parallel();
  if (parallel.num_threads() == 1 || tiles < 2) {
    code->RunGemm(ins, outs, m, 0, tiles);
  } else {
    parallel.For(tiles, 1, [&](int64_t begin, int64_t end) { code->RunGemm(ins, outs, m, begin, end); });
  }
  return code->gemm()->flops(m);
}

StatusOr<double> Specialization::RunAttention(RegionCall& call, CompiledCallScratch& scratch) const {
  const std::optional<jit::AttentionLayout>& layout = code->attention_layout();
  if (!layout) return Internal("attention region without attention code");
  double flops = 0;
  const Status prepared =
      jit::PrepareAttentionCall(*layout, scratch.signature.dims, scratch.params, scratch.domain, flops);
  if (!prepared.ok()) {
    return Internal("attention code called on shapes it does not serve: ", scratch.signature.ToString(), ": ",
                    prepared.ToString());
  }
  scratch.input_ptrs.clear();
  for (size_t i = 0; i < scratch.signature.dims.size(); ++i) scratch.input_ptrs.push_back(call.input(i).raw_data());
  KILN_ASSIGN_OR_RETURN(void* out, call.AllocateOutput(0, scratch.domain));
  void* const outs[] = {out};
  const void* const* ins = scratch.input_ptrs.data();
  const int64_t* params = scratch.params.data();
  // Units of work are (batch, head, query chunk): each is already tens of
  // thousands of FMAs, so threads take them one at a time.
  const int64_t units = params[jit::kAttnBatch] * params[jit::kAttnHeads] * params[jit::kAttnChunks];
  const kernels::ParallelRunner& parallel = call.parallel();
  if (parallel.num_threads() == 1 || units < 2) {
    code->RunGeneric(ins, outs, 0, units, params);
  } else {
    parallel.For(units, 1, [&](int64_t begin, int64_t end) { code->RunGeneric(ins, outs, begin, end, params); });
  }
  return flops;
}

StatusOr<double> Specialization::RunLstm(const graph::Region& region, RegionCall& call,
                                         CompiledCallScratch& scratch) const {
  const jit::CompiledLstm* lstm = code->lstm();
  if (lstm == nullptr) return Internal("region ", region.id, ": LSTM region without LSTM code");
  const jit::CompiledRegion::LstmOperands& operands = code->lstm_operands();
  if (operands.outputs.size() != region.outputs.size() || output_dims.size() != region.outputs.size()) {
    return Internal("region ", region.id, ": LSTM code has ", operands.outputs.size(), " outputs, the region ",
                    region.outputs.size());
  }
  auto input = [&](int i) {
    return i < 0 ? nullptr : static_cast<const float*>(call.input(static_cast<size_t>(i)).raw_data());
  };
  jit::CompiledLstm::Buffers buffers;
  buffers.x = input(operands.x_input);
  buffers.initial_h = input(operands.initial_h_input);
  buffers.initial_c = input(operands.initial_c_input);
  for (size_t o = 0; o < region.outputs.size(); ++o) {
    KILN_ASSIGN_OR_RETURN(void* out, call.AllocateOutput(o, output_dims[o]));
    switch (operands.outputs[o]) {
      case jit::CompiledRegion::LstmOutput::kY: buffers.y = static_cast<float*>(out); break;
      case jit::CompiledRegion::LstmOutput::kYH: buffers.y_h = static_cast<float*>(out); break;
      case jit::CompiledRegion::LstmOutput::kYC: buffers.y_c = static_cast<float*>(out); break;
    }
  }
  scratch.lstm_work.resize(lstm->work_floats());
  buffers.work = scratch.lstm_work.data();
  const kernels::ParallelRunner& parallel = call.parallel();
  const int directions = lstm->problem().num_directions;
  if (parallel.num_threads() == 1) {
    lstm->Run(buffers);
    return lstm->flops();
  }
  // The projections split over the threads. Both directions' recurrences
  // run at once; one direction's steps depend on each other, so two threads
  // share each step (jit::CompiledLstm::RecurrenceWorker).
  for (int d = 0; d < directions; ++d) {
    parallel.For(lstm->projection_tiles(), 1,
                 [&](int64_t begin, int64_t end) { lstm->RunProjection(buffers, d, begin, end); });
  }
  if (directions == 1 && !lstm->splits_recurrence()) {
    lstm->RunRecurrence(buffers, 0);
  } else if (directions == 1) {
    lstm->BeginRecurrence(buffers, 0);
    jit::CompiledLstm::SharedRecurrence shared;
    parallel.For(2, 1, [&](int64_t begin, int64_t end) {
      for (int64_t worker = begin; worker < end; ++worker) {
        lstm->RecurrenceWorker(buffers, 0, shared, static_cast<int>(worker));
      }
    });
    lstm->EndRecurrence(buffers, 0);
  } else {
    parallel.For(directions, 1, [&](int64_t begin, int64_t end) {
      for (int64_t d = begin; d < end; ++d) lstm->RunRecurrence(buffers, static_cast<int>(d));
    });
  }
  return lstm->flops();
}

StatusOr<double> Specialization::Run(const graph::Region& region, const RowCall* row_call, RegionCall& call,
                                     CompiledCallScratch& scratch) const {
  if (region.kind == graph::RegionKind::kGemm) return RunGemm(call, scratch);
  if (region.kind == graph::RegionKind::kLstm) return RunLstm(region, call, scratch);
  if (region.kind == graph::RegionKind::kAttention) return RunAttention(call, scratch);
  // Generic code takes the dims of this call as parameters: elementwise
  // code dims and strides (every output has the domain's dims), row code
  // rows and row length (outputs row-shaped or per-row, as planned for
  // these dims). Specializations know the dims of each output.
  const bool generic_rows = generic && region.kind == graph::RegionKind::kRowReduction;
  if (generic_rows && (row_call == nullptr || !row_call->served)) {
    return Internal("region ", region.id, ": generic row code called without a plan for these shapes");
  }
  const bool generic_elementwise = generic && !generic_rows;
  if (generic_elementwise) {
    KILN_RETURN_IF_ERROR(jit::FillGenericParams(scratch.signature.dims, domain_rank, scratch.params, scratch.domain));
  }
  const std::vector<Dims>& planned_dims = generic_rows ? row_call->output_dims : output_dims;
  if (!generic_elementwise && planned_dims.size() != region.outputs.size()) {
    return Internal("region ", region.id, ": compiled code has ", planned_dims.size(), " outputs, the region ",
                    region.outputs.size());
  }
  scratch.input_ptrs.clear();
  for (size_t i = 0; i < region.inputs.size(); ++i) scratch.input_ptrs.push_back(call.input(i).raw_data());
  scratch.output_ptrs.clear();
  for (size_t o = 0; o < region.outputs.size(); ++o) {
    KILN_ASSIGN_OR_RETURN(void* out, call.AllocateOutput(o, generic_elementwise ? scratch.domain : planned_dims[o]));
    scratch.output_ptrs.push_back(out);
  }

  int64_t rows = code->num_rows();
  int64_t row_len = code->row_len();
  if (generic_rows) {
    rows = row_call->params[0];
    row_len = row_call->params[1];
  } else if (generic_elementwise) {
    // Rows are all dims but the last; rank 0 is one row of one element.
    rows = 1;
    for (size_t d = 0; d + 1 < scratch.domain.size(); ++d) rows *= scratch.domain[d];
    row_len = scratch.domain.empty() ? 1 : scratch.domain.back();
  }
  const void* const* ins = scratch.input_ptrs.data();
  void* const* outs = scratch.output_ptrs.data();
  const int64_t* params = generic_rows ? row_call->params.data() : scratch.params.data();
  auto run_rows = [&](int64_t begin, int64_t end) {
    if (generic) {
      code->RunGeneric(ins, outs, begin, end, params);
    } else {
      code->Run(ins, outs, begin, end);
    }
  };
  const kernels::ParallelRunner& parallel = call.parallel();
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, row_len));
  if (rows <= grain || parallel.num_threads() == 1) {
    run_rows(0, rows);
  } else {
    parallel.For(rows, grain, run_rows);
  }
  return code->flops();
}

}  // namespace kiln::runtime
