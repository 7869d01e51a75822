#include "bench/shape_stream.h"

#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/zoo.h"
#include "kiln/session.h"
#include "test/tensors.h"

namespace kiln::bench {
namespace {

// Sizes of the symbolic dim, in request order: not sorted, so consecutive
// requests differ, and 12 of them against a limit of 4 specializations.
constexpr int64_t kStreamSizes[] = {40, 96, 24, 200, 72, 136, 56, 248, 112, 168, 88, 152};
constexpr double kJitRtol = 1e-4;
constexpr double kJitAtol = 1e-5;

struct StreamModel {
  std::string name;   // the model file's stem, or the built model's name
  std::string path;   // an ONNX file, or
  std::string bytes;  // a serialised model (when path is empty)
};

// One input per size: the model's only input with its symbolic dim bound.
StatusOr<std::vector<std::vector<NamedTensor>>> MakeInputs(const Model& model) {
  if (model.inputs().size() != 1) return InvalidArgument("shape stream: the model has more than one input");
  const TensorInfo& info = model.inputs()[0];
  if (info.dtype != DType::kFloat32) return InvalidArgument("shape stream: the input is not float32");
  std::vector<std::vector<NamedTensor>> inputs;
  uint32_t seed = 7;
  for (int64_t size : kStreamSizes) {
    Dims dims = info.dims;
    int symbolic = 0;
    for (size_t d = 0; d < dims.size(); ++d) {
      if (dims[d] < 0) {
        dims[d] = size;
        ++symbolic;
      }
    }
    if (symbolic != 1) return InvalidArgument("shape stream: the input needs exactly one dim that is not fixed");
    KILN_ASSIGN_OR_RETURN(Tensor t, testing::RandomTensor(dims, seed++));
    inputs.push_back({NamedTensor{info.name, std::move(t)}});
  }
  return inputs;
}

StatusOr<std::vector<Tensor>> RunOnce(const Session& session, const std::vector<NamedTensor>& inputs) {
  KILN_ASSIGN_OR_RETURN(std::vector<NamedTensor> named, session.Run(inputs));
  std::vector<Tensor> out;
  for (NamedTensor& n : named) out.push_back(std::move(n.tensor));
  return out;
}

Status MeasureStream(const StreamModel& stream, bool jit, benchmark::State& state) {
  KILN_ASSIGN_OR_RETURN(
      std::shared_ptr<const Model> model,
      stream.path.empty() ? Model::LoadFromBytes(stream.bytes.data(), stream.bytes.size()) : Model::Load(stream.path));
  KILN_ASSIGN_OR_RETURN(std::vector<std::vector<NamedTensor>> inputs, MakeInputs(*model));
  SessionOptions options;
  options.intra_op_threads = 1;
  options.tier = TierPolicy::kInterpreter;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> interp, Session::Create(model, options));
  options.tier = TierPolicy::kJit;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Session> compiled, Session::Create(model, options));
  const Session& session = jit ? *compiled : *interp;

  // Warm-up cycle; the JIT session compiles as sizes turn hot (blocking),
  // so run its cycle twice and compare the second with the interpreter.
  for (const auto& in : inputs) KILN_RETURN_IF_ERROR(RunOnce(*compiled, in).status());
  for (const auto& in : inputs) {
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> want, RunOnce(*interp, in));
    KILN_ASSIGN_OR_RETURN(std::vector<Tensor> got, RunOnce(*compiled, in));
    const Closeness close = CompareOutputs(want, got, kJitRtol, kJitAtol);
    if (!close.ok) return Internal(DescribeMismatch(close, "jit vs interp", kJitRtol, kJitAtol));
  }
  const SessionStats before = compiled->stats();

  for (auto _ : state) {
    for (const auto& in : inputs) {
      StatusOr<std::vector<NamedTensor>> out = session.Run(in);
      if (!out.ok()) return out.status();
      benchmark::DoNotOptimize(out->data());
    }
  }
  const int64_t cycles = static_cast<int64_t>(state.iterations());
  state.SetItemsProcessed(cycles * static_cast<int64_t>(std::size(kStreamSizes)));

  // Compiled-call share over the timed cycles (JIT session only).
  const SessionStats after = compiled->stats();
  int64_t compiled_calls = 0, interpreted_calls = 0, deopts = 0, specializations = 0;
  for (size_t r = 0; r < after.regions.size(); ++r) {
    compiled_calls += after.regions[r].compiled_calls - before.regions[r].compiled_calls;
    interpreted_calls += after.regions[r].interpreted_calls - before.regions[r].interpreted_calls;
    deopts += after.regions[r].deopts;
    specializations += after.regions[r].specializations;
  }
  state.counters["sizes"] = static_cast<double>(std::size(kStreamSizes));
  // As the other benchmarks report it (bench/report.py): a model without
  // regions runs interpreted in both tiers, and its ratio is only noise.
  state.counters["regions"] = static_cast<double>(after.regions.size());
  if (jit) {
    const int64_t calls = compiled_calls + interpreted_calls;
    state.counters["compiled_fraction"] = calls > 0 ? static_cast<double>(compiled_calls) / calls : 0;
    state.counters["specializations"] = static_cast<double>(specializations);
    state.counters["deopts"] = static_cast<double>(deopts);
  }
  return Status::Ok();
}

void Register(const StreamModel& stream) {
  for (bool jit : {false, true}) {
    const std::string name = "BM_ShapeStream/model:" + stream.name + "/tier:" + (jit ? "jit" : "interp");
    benchmark::RegisterBenchmark(name.c_str(),
                                 [stream, jit](benchmark::State& state) {
                                   const Status status = MeasureStream(stream, jit, state);
                                   if (!status.ok()) state.SkipWithError(status.ToString().c_str());
                                 })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}

}  // namespace

void RegisterShapeStream(const std::string& name, std::string model_bytes) {
  Register(StreamModel{name, "", std::move(model_bytes)});
}

void RegisterShapeStream(const std::string& zoo_dir) {
  StatusOr<std::vector<ZooCase>> cases = ReadZooManifest(zoo_dir);
  if (!cases.ok()) return;  // RegisterZoo reports an unreadable manifest
  // Models with a symbolic dim appear once per size ("MODEL/DIM:SIZE").
  std::set<std::string> seen;
  for (const ZooCase& zoo_case : *cases) {
    const size_t slash = zoo_case.name.find('/');
    if (slash == std::string::npos || !seen.insert(zoo_case.model_path).second) continue;
    Register(StreamModel{zoo_case.name.substr(0, slash), zoo_case.model_path, ""});
  }
}

}  // namespace kiln::bench
