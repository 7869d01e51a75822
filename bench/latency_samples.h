// Latency samples as the serving benchmarks (tier-up latency, concurrent
// requests) summarise them: milliseconds and nearest-rank quantiles.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace kiln::bench {

inline double Ms(std::chrono::steady_clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The q-quantile (0..1) of `values`, nearest rank; 0 when empty.
inline double Quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

}  // namespace kiln::bench
