#include "jit/row_layout.h"

namespace kiln::jit {
namespace {

char Letter(RowInputLayout layout) {
  switch (layout) {
    case RowInputLayout::kNotRead: return 'b';
    case RowInputLayout::kDense: return 'D';
    case RowInputLayout::kSharedRow: return 'R';
    case RowInputLayout::kPerRow: return 'P';
    case RowInputLayout::kSharedValue: return 'S';
    case RowInputLayout::kDenseOrSharedRow: return '?';
    case RowInputLayout::kPerRowOrSharedValue: return '!';
  }
  return '#';
}

// Whether code reading an input as `code` reads it correctly in a call
// where it is laid out as `call`.
bool InputServes(RowInputLayout code, RowInputLayout call) {
  if (code == call) return true;
  switch (call) {
    case RowInputLayout::kDenseOrSharedRow: return code == RowInputLayout::kDense || code == RowInputLayout::kSharedRow;
    case RowInputLayout::kPerRowOrSharedValue:
      return code == RowInputLayout::kPerRow || code == RowInputLayout::kSharedValue;
    default: return false;
  }
}

}  // namespace

bool RowLayout::Serves(const RowLayout& call) const {
  if (inputs.size() != call.inputs.size() || value_per_row != call.value_per_row ||
      output_per_row != call.output_per_row) {
    return false;
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!InputServes(inputs[i], call.inputs[i])) return false;
  }
  return true;
}

bool RowLayout::IsAmbiguous() const {
  for (RowInputLayout input : inputs) {
    if (input == RowInputLayout::kDenseOrSharedRow || input == RowInputLayout::kPerRowOrSharedValue) return true;
  }
  return false;
}

std::string RowLayout::ToString() const {
  std::string s;
  for (RowInputLayout input : inputs) s += Letter(input);
  s += '|';
  for (bool per_row : value_per_row) s += per_row ? '1' : '0';
  s += '|';
  for (bool per_row : output_per_row) s += per_row ? '1' : '0';
  return s;
}

}  // namespace kiln::jit
