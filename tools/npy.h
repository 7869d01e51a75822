// NumPy .npy files: the `kiln` tool's format for input and output tensors.
//
// Reads format versions 1.0, 2.0 and 3.0 (they differ only in the width of
// the header length and the header's text encoding) and writes 1.0, or 2.0
// when a header would not fit 1.0's 16-bit length. Supported dtypes: '<f4',
// '<f8', '<i8', '<i4', '<i2', '|i1', '|u1', '|b1', C order only. Every
// malformed file comes back as a Status naming what is wrong; nothing here
// aborts on bad data.
#pragma once

#include <cstddef>
#include <string>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::tools {

// Largest rank and largest single dim accepted when reading. Far beyond any
// real tensor; they stop a corrupt header from driving a huge allocation.
inline constexpr size_t kMaxNpyRank = 32;
inline constexpr int64_t kMaxNpyDim = int64_t{1} << 40;

// Parses a whole .npy file held in memory into an owned tensor. bool data is
// normalised to 0/1 so that any nonzero byte reads as true.
StatusOr<Tensor> ParseNpy(const void* data, size_t size);
// Reads and parses `path`; NotFound when it cannot be opened.
StatusOr<Tensor> ReadNpy(const std::string& path);

// The .npy bytes for `tensor`. Fails for kUndefined.
StatusOr<std::string> SerializeNpy(const Tensor& tensor);
// Writes `tensor` to `path`, replacing it.
Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace kiln::tools
