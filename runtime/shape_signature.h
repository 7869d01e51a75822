// The concrete input shapes a region runs with. Compiled code is
// specialized to one signature; the dispatch compares signatures to decide
// whether compiled code applies (the "guard").
#pragma once

#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::runtime {

struct ShapeSignature {
  std::vector<Dims> dims;  // per region input, in region input order

  bool operator==(const ShapeSignature&) const = default;
  bool operator<(const ShapeSignature& o) const { return dims < o.dims; }
  // "[1,16,64];[64];[]", used in logs and stats.
  std::string ToString() const {
    std::string s;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (i) s += ";";
      s += "[";
      for (size_t d = 0; d < dims[i].size(); ++d) s += (d ? "," : "") + std::to_string(dims[i][d]);
      s += "]";
    }
    return s;
  }
};

}  // namespace kiln::runtime
