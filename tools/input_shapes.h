// The shapes of the inputs `kiln run` generates, from what the model
// declares and what the command line fixes: --dim SYMBOL=N binds a symbolic
// dim wherever it appears, --shape INPUT=1x3x224x224 gives one input's whole
// shape (and binds the symbols of that input's declared shape).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"

namespace kiln::cli {

// The largest dim either flag accepts: far beyond any real tensor, small
// enough that no product of a few of them overflows before
// Tensor::Allocate refuses it.
inline constexpr int64_t kMaxFlagDim = int64_t{1} << 40;

// "[batch, 16, 64]", "[1, ?]" or "?" for an unknown rank: the shape as the
// model declares it.
std::string FormatShape(const TensorInfo& info);

// "'a', 'b'": the names of `inputs`, for errors that list the choices.
std::string QuotedNames(const std::vector<TensorInfo>& inputs);

// Parses "1x3x224x224" (dims in [0, kMaxFlagDim], 'x'-separated, at least
// one). The error names `flag`, e.g. "--shape input".
StatusOr<Dims> ParseShape(const std::string& text, const std::string& flag);

struct ShapeFlags {
  std::map<std::string, int64_t> dims;  // --dim, by symbol
  std::map<std::string, Dims> shapes;   // --shape, by input name
};

// Checks `flags` against the model's inputs and returns every symbol's
// value: the --dim bindings plus the symbols that each --shape fixes. Fails
// naming the flag and the input when a --shape names no input, has the
// wrong rank or contradicts a fixed dim, when a --dim names a symbol no
// input has, or when two flags give one symbol different values.
StatusOr<std::map<std::string, int64_t>> BindSymbols(const std::vector<TensorInfo>& inputs, const ShapeFlags& flags);

// The concrete dims of a generated input: its --shape if it has one, else
// its declared dims with `symbols` filled in. Fails naming the input and the
// flag that would fix what is missing.
StatusOr<Dims> GeneratedDims(const TensorInfo& input, const std::map<std::string, int64_t>& symbols,
                             const std::map<std::string, Dims>& shapes);

}  // namespace kiln::cli
