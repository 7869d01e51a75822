// Benchmarks over the model zoo (bench/models, see zoo.h), registered with
// Google Benchmark. For each manifest case and 1 and 2 intra-op threads:
//
//   BM_Zoo/model:CASE/tier:interp/threads:T    steady-state run, interpreter
//   BM_Zoo/model:CASE/tier:jit/threads:T       steady-state run, every hot
//                                              region compiled before timing
//   BM_Zoo/model:CASE/tier:opbyop/threads:1    steady-state run, interpreter
//                                              on the model loaded with
//                                              GraphOptimization::kBasic
//   BM_ZooColdStart/model:CASE/threads:T       Model::Load + Session::Create
//                                              + first Run (default policy)
//   BM_ZooTierUp/model:CASE/threads:T          new session (default policy)
//                                              run until every region has
//                                              compiled or failed to
//
// CASE is the manifest name, e.g. "transformer_dynamic/seq:64". Before
// timing, the JIT outputs are checked against the interpreter's (rtol 1e-4,
// atol 1e-5) and, with `ort_dir`, both against ONNX Runtime's (rtol 1e-3,
// atol 1e-4); a disagreement is reported with SkipWithError, never a time.
#pragma once

#include <string>

namespace kiln::bench {

// Registers the zoo benchmarks for `zoo_dir`/manifest.json. `ort_dir` (may
// be empty) holds ONNX Runtime's outputs, laid out as zoo.h describes. A
// manifest that cannot be read registers one benchmark that reports why.
void RegisterZoo(const std::string& zoo_dir, const std::string& ort_dir);

}  // namespace kiln::bench
