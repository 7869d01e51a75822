#include "jit/compiled_region.h"

#include <algorithm>

namespace kiln::jit {

CompiledRegion::CompiledRegion(std::shared_ptr<const JitCode> code, Info info)
    : code_(std::move(code)), info_(std::move(info)) {
  const auto address = static_cast<uintptr_t>(code_->entry_address());
  if (info_.generic) {
    generic_entry_ = reinterpret_cast<GenericEntryFn>(address);
  } else {
    entry_ = reinterpret_cast<EntryFn>(address);
  }
}

CompiledRegion::CompiledRegion(std::shared_ptr<const CompiledGemm> gemm, GemmOperands operands, Info info)
    : gemm_(std::move(gemm)), gemm_operands_(std::move(operands)), info_(std::move(info)) {}

CompiledRegion::CompiledRegion(std::shared_ptr<const CompiledLstm> lstm, LstmOperands operands, Info info)
    : lstm_(std::move(lstm)), lstm_operands_(std::move(operands)), info_(std::move(info)) {}

size_t CompiledRegion::code_bytes() const {
  if (gemm_ != nullptr) return gemm_->code_bytes();
  if (lstm_ != nullptr) return lstm_->code_bytes();
  return code_->code_bytes();
}

int64_t CompiledRegion::gemm_tiles(int64_t m) const {
  if (gemm_ == nullptr || m <= 0) return 0;
  return (m + gemm_->mr() - 1) / gemm_->mr() * gemm_->num_column_blocks();
}

void CompiledRegion::RunGemm(const void* const* inputs, void* const* outputs, int64_t m, int64_t tile_begin,
                             int64_t tile_end) const {
  const GemmProblem& p = gemm_->problem();
  const auto* a = static_cast<const float*>(inputs[gemm_operands_.a_input]);
  auto* c = static_cast<float*>(outputs[0]);
  const float* bias = gemm_operands_.bias.empty() ? nullptr : gemm_operands_.bias.data();
  const float* residual =
      gemm_operands_.residual_input < 0 ? nullptr : static_cast<const float*>(inputs[gemm_operands_.residual_input]);
  tile_begin = std::max<int64_t>(tile_begin, 0);
  tile_end = std::min(tile_end, gemm_tiles(m));
  if (tile_begin >= tile_end) return;
  const int64_t blocks = gemm_->num_column_blocks();
  const int64_t mr = gemm_->mr();
  if (tile_begin == 0 && tile_end == gemm_tiles(m)) {
    // The whole output in one call keeps the kernel's own loop order.
    gemm_->Run(a, p.k, m, c, p.n, bias, residual, p.n, 0, m);
    return;
  }
  // A range of tiles is a partial row block, whole row blocks, then a
  // partial row block.
  auto run = [&](int64_t row_block, int64_t block_begin, int64_t block_end, int64_t row_blocks) {
    gemm_->RunTile(a, p.k, m, c, p.n, bias, residual, p.n, row_block * mr, (row_block + row_blocks) * mr, block_begin,
                   block_end);
  };
  int64_t t = tile_begin;
  if (t % blocks != 0) {
    const int64_t end = std::min(tile_end, (t / blocks + 1) * blocks);
    run(t / blocks, t % blocks, t % blocks + (end - t), 1);
    t = end;
  }
  if (tile_end - t >= blocks) {
    const int64_t rows = (tile_end - t) / blocks;
    run(t / blocks, 0, blocks, rows);
    t += rows * blocks;
  }
  if (t < tile_end) run(t / blocks, 0, tile_end - t, 1);
}

KILN_NO_SANITIZE_FUNCTION void CompiledRegion::Run(const void* const* inputs, void* const* outputs, int64_t row_begin,
                                                   int64_t row_end) const {
  entry_(inputs, outputs, row_begin, row_end);
}

KILN_NO_SANITIZE_FUNCTION void CompiledRegion::RunGeneric(const void* const* inputs, void* const* outputs,
                                                          int64_t row_begin, int64_t row_end,
                                                          const int64_t* params) const {
  generic_entry_(inputs, outputs, row_begin, row_end, params);
}

CompiledRegion::~CompiledRegion() = default;

}  // namespace kiln::jit
