// The benchmark model zoo on disk: the manifest written by
// bench/models/make_zoo.py, the inputs it names, the ONNX Runtime peer's
// reference outputs, and the tolerance check used against both.
//
// Manifest format (shared with the ONNX Runtime peer runner, keep it as is):
//   {"cases": [{"name": "transformer_encoder",
//               "model": "transformer_encoder.onnx",
//               "inputs": {"input": "transformer_encoder.in0.npy"}}, ...]}
// File names are relative to the manifest's folder. A model with a dynamic
// dimension has one case per size ("transformer_dynamic/seq:64").
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::bench {

struct ZooCase {
  std::string name;        // as in the manifest, e.g. "transformer_dynamic/seq:64"
  std::string model_path;  // resolved against the zoo folder
  // Model input name -> .npy path (resolved), in manifest order.
  std::vector<std::pair<std::string, std::string>> input_paths;
};

// Reads `zoo_dir`/manifest.json. Fails (InvalidArgument) on malformed JSON
// or a case missing a field, NotFound when the manifest cannot be opened.
StatusOr<std::vector<ZooCase>> ReadZooManifest(const std::string& zoo_dir);

// The case's inputs, named as the manifest names them.
StatusOr<std::vector<NamedTensor>> LoadZooInputs(const ZooCase& zoo_case);

// The folder the ONNX Runtime peer writes a case's outputs to, below its
// output root: the case name with '/' and ':' replaced by '_'.
std::string ZooOutputDirName(const std::string& case_name);

// ONNX Runtime's outputs for `case_name`: `ort_dir`/<ZooOutputDirName>/
// output_<i>.npy for i in [0, num_outputs). NotFound when the case's folder
// or output_0.npy is absent (the peer did not run this case); any other
// missing or unreadable file is an error.
StatusOr<std::vector<Tensor>> ReadOrtOutputs(const std::string& ort_dir, const std::string& case_name,
                                             size_t num_outputs);

// How far `actual` is from `expected`, numpy.allclose style: an element
// passes when |actual - expected| <= atol + rtol * |expected|.
struct Closeness {
  bool ok = true;
  double max_abs_diff = 0;
  // max |actual - expected| / max(|expected|, atol / rtol): relative where
  // the expected value is large enough for that to mean something.
  double max_rel_diff = 0;
  std::string worst;  // where the largest violation is, empty when ok
};

// Compares output lists element by element. Differing counts, dtypes or
// shapes, or a NaN on only one side, fail with `worst` saying so. Non-float
// tensors must match exactly.
Closeness CompareOutputs(const std::vector<Tensor>& expected, const std::vector<Tensor>& actual, double rtol,
                         double atol);

// "max |diff| 3.1e-04 (max rel 2.0e-03) at output 0 [17]: expected 0.5, got
// 0.5003" plus the tolerances, for SkipWithError.
std::string DescribeMismatch(const Closeness& closeness, const std::string& what, double rtol, double atol);

}  // namespace kiln::bench
