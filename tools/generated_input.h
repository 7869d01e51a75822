// Input data `kiln run` makes up for inputs given no .npy file: the same on
// every machine and every run, so checksums can be compared.
#pragma once

#include <cstdint>

#include "kiln/tensor.h"

namespace kiln::cli {

// Fills `t` from `seed`: floats uniform in [-1, 1), integers in [0, 16)
// (small and non-negative, so they also work as indices or token ids for
// small tables), bools 0/1.
void FillPseudoRandom(Tensor& t, uint64_t seed);

}  // namespace kiln::cli
