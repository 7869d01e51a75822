// How shape-generic row-reduction code (CompileRowReductionRegionGeneric,
// row_reduction_codegen.h) lays a region out: how it reads each input and
// which values are one per row. The code is planned from one shape
// signature and serves every call whose signature lays the region out the
// same way; CompiledRegion::generic_layout() holds the layout it was
// compiled for. LLVM-free.
#pragma once

#include <string>
#include <vector>

namespace kiln::jit {

// How generic row code reads one region input, the domain viewed as
// [rows, row_len].
enum class RowInputLayout {
  // The buffer is never read: a single-element constant baked in as an
  // immediate, or a ReduceX's constant axes.
  kNotRead,
  // The whole domain, dense: row r starts at element r * row_len.
  kDense,
  // One row, the same for every row.
  kSharedRow,
  // One value per row, dense: row r reads element r.
  kPerRow,
  // One value, the same for every row.
  kSharedValue,
  // Only in a call's layout: with a single row, kDense and kSharedRow read
  // the same elements, so shapes of one row cannot tell them apart; code
  // of either layout serves the call.
  kDenseOrSharedRow,
  // Only in a call's layout: kPerRow or kSharedValue, as above.
  kPerRowOrSharedValue,
};

struct RowLayout {
  // Per region input (region.inputs order).
  std::vector<RowInputLayout> inputs;
  // Per value the region reads or computes (its inputs and its members'
  // outputs), in value-id order: whether it holds one value per row (true)
  // or a whole row.
  std::vector<bool> value_per_row;
  // Per region output (region.outputs order): one value per row (true) or
  // row-shaped.
  std::vector<bool> output_per_row;

  // Whether code compiled for this layout reads a call of layout `call`
  // correctly: the same layout, except that where the call cannot tell
  // dense from shared (kDenseOrSharedRow, kPerRowOrSharedValue) either
  // reading does.
  bool Serves(const RowLayout& call) const;
  // Whether some input is kDenseOrSharedRow or kPerRowOrSharedValue: such a
  // layout, planned on a single row, cannot be compiled as generic code.
  bool IsAmbiguous() const;
  // For logs: one letter per input ('b' not read, 'D' dense, 'R' shared
  // row, 'P' per row, 'S' shared value, '?' D or R, '!' P or S), then '|',
  // '1'/'0' per value (per row or not), '|', the same per output; e.g.
  // "DRb|00101|0".
  std::string ToString() const;

  bool operator==(const RowLayout& other) const = default;
};

}  // namespace kiln::jit
