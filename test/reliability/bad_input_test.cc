// Hostile models and bad requests, end to end through the public API
// (Model::Load / LoadFromBytes -> Session::Create -> Run), in both tiers.
//
// One row per case: how to build the bad model or input, the stage that must
// refuse it, the StatusCode and a piece of the message that says what is
// wrong. Rows with StatusCode::kOk are inputs ONNX allows that are easy to get
// wrong (0-sized tensors, NaN/Inf, clamped slices): they must run and give
// the outputs the row checks. Nothing here may crash, hang or trip a
// sanitizer; tools/sanitize_and_fuzz.sh runs this file under ASan+UBSan.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "kiln/session.h"
#include "test/control_flow_models.h"
#include "test/model_builder.h"

// Lets the absurd-size rows see a clean ResourceExhausted under ASan too:
// without it ASan aborts on a failed multi-terabyte allocation instead of
// returning null the way the system allocator does. Unused otherwise.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace kiln {
namespace {

namespace fs = std::filesystem;
using testing::OnnxModelBuilder;

constexpr int32_t kFloat = onnx::TensorProto::FLOAT;
constexpr int32_t kInt64 = onnx::TensorProto::INT64;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// ------------------------------------------------------------------ rows

enum class Stage { kLoad, kCreate, kRun };

const char* StageName(Stage s) {
  switch (s) {
    case Stage::kLoad: return "load";
    case Stage::kCreate: return "create";
    case Stage::kRun: return "run";
  }
  return "?";
}

// What a row hands to the test: the model, as bytes or as a file (for the
// external-data rows, which need a folder), and the request to run.
struct Scenario {
  std::string model_bytes;
  std::string model_path;  // set: Model::Load(model_path) instead of the bytes
  std::vector<NamedTensor> inputs;
};

using OutputCheck = std::function<void(const std::vector<NamedTensor>&)>;

struct Case {
  const char* name;
  // `dir` is an empty folder under TEST_TMPDIR that the row may write into.
  std::function<Scenario(const fs::path& dir)> make;
  Stage stage;          // where the error must come from (kRun for kOk rows)
  StatusCode code;      // kOk: must run, and `check` looks at the outputs
  const char* message;  // must appear in the error message
  OutputCheck check = nullptr;
};

// gtest prints a row by its name, not its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// --------------------------------------------------------------- helpers

Tensor FloatTensor(const Dims& dims, const std::vector<float>& values) {
  Tensor t = *Tensor::Allocate(DType::kFloat32, dims);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

Tensor Int64Tensor(const Dims& dims, const std::vector<int64_t>& values) {
  Tensor t = *Tensor::Allocate(DType::kInt64, dims);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

// y = Relu(x + b) * 2 on x: [batch, 4]; three elementwise nodes, one JIT
// region.
OnnxModelBuilder AddReluScale() {
  OnnxModelBuilder b(13);
  b.Input("x", kFloat, {-1, 4}, {"batch"}).FloatInit("b", {4}, {1, -2, 3, -4}).FloatInit("two", {}, {2}).Output("y");
  b.Node("Add", {"x", "b"}, {"t0"}, "add");
  b.Node("Relu", {"t0"}, {"t1"}, "relu");
  b.Node("Mul", {"t1", "two"}, {"y"}, "scale");
  return b;
}

Tensor GoodX() { return FloatTensor({1, 4}, {1, 2, 3, 4}); }

std::string Mutated(const std::function<void(onnx::ModelProto&)>& mutate) {
  OnnxModelBuilder b = AddReluScale();
  mutate(b.proto());
  return b.Serialize();
}

// A row whose model is AddReluScale() changed by `mutate`, run on GoodX().
std::function<Scenario(const fs::path&)> MutatedModel(std::function<void(onnx::ModelProto&)> mutate) {
  return [mutate](const fs::path&) { return Scenario{Mutated(mutate), "", {{"x", GoodX()}}}; };
}

// A row that runs AddReluScale() on `inputs`.
std::function<Scenario(const fs::path&)> AddReluScaleWith(std::function<std::vector<NamedTensor>()> inputs) {
  return [inputs](const fs::path&) { return Scenario{AddReluScale().Serialize(), "", inputs()}; };
}

std::function<Scenario(const fs::path&)> Bytes(std::function<std::string()> bytes) {
  return [bytes](const fs::path&) { return Scenario{bytes(), "", {{"x", GoodX()}}}; };
}

onnx::NodeProto* AddNode(onnx::ModelProto& m, const std::string& op, const std::vector<std::string>& inputs,
                         const std::vector<std::string>& outputs) {
  auto* n = m.mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name(op + "_extra");
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  return n;
}

void SetAttr(onnx::NodeProto* n, const std::string& name, onnx::AttributeProto::AttributeType type,
             const std::function<void(onnx::AttributeProto*)>& fill) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(type);
  fill(a);
}

// ---- external data: the model file lives in dir/model/, its initializer
// "b" reads 16 bytes (4 floats) through external data.

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string FourFloats() {
  const float w[4] = {1, -2, 3, -4};
  return std::string(reinterpret_cast<const char*>(w), sizeof(w));
}

// `entries` are the external_data key/value pairs; `prepare` may add files.
std::function<Scenario(const fs::path&)> ExternalData(std::vector<std::pair<std::string, std::string>> entries,
                                                      std::function<void(const fs::path& dir)> prepare = nullptr) {
  return [entries, prepare](const fs::path& dir) {
    fs::create_directories(dir / "model");
    WriteFile(dir / "model" / "b.bin", FourFloats());
    WriteFile(dir / "secret.bin", FourFloats());
    if (prepare) prepare(dir);
    std::string bytes = Mutated([&](onnx::ModelProto& m) {
      auto* t = m.mutable_graph()->mutable_initializer(0);
      t->clear_raw_data();
      t->set_data_location(onnx::TensorProto::EXTERNAL);
      for (const auto& [key, value] : entries) {
        auto* e = t->add_external_data();
        e->set_key(key);
        e->set_value(value);
      }
    });
    const fs::path model = dir / "model" / "model.onnx";
    WriteFile(model, bytes);
    return Scenario{"", model.string(), {{"x", GoodX()}}};
  };
}

// ---- run-time index and shape rows: one op whose data is a constant and
// whose index or shape operands are graph inputs.

// y = Gather(data [3, 2], indices) along axis 0.
std::function<Scenario(const fs::path&)> GatherWith(std::vector<int64_t> indices) {
  return [indices](const fs::path&) {
    OnnxModelBuilder b(13);
    b.Input("indices", kInt64, {-1}).FloatInit("data", {3, 2}, {0, 1, 2, 3, 4, 5}).Output("y");
    b.Node("Gather", {"data", "indices"}, {"y"});
    const int64_t n = static_cast<int64_t>(indices.size());
    return Scenario{b.Serialize(), "", {{"indices", Int64Tensor({n}, indices)}}};
  };
}

// y = Slice(x [2, 4], starts, ends, axes, steps), all four as inputs.
std::function<Scenario(const fs::path&)> SliceWith(int64_t start, int64_t end, int64_t axis, int64_t step) {
  return [=](const fs::path&) {
    OnnxModelBuilder b(13);
    b.Input("starts", kInt64, {1}).Input("ends", kInt64, {1}).Input("axes", kInt64, {1}).Input("steps", kInt64, {1});
    b.FloatInit("x", {2, 4}, {0, 1, 2, 3, 4, 5, 6, 7}).Output("y");
    b.Node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"y"});
    return Scenario{b.Serialize(),
                    "",
                    {{"starts", Int64Tensor({1}, {start})},
                     {"ends", Int64Tensor({1}, {end})},
                     {"axes", Int64Tensor({1}, {axis})},
                     {"steps", Int64Tensor({1}, {step})}}};
  };
}

// y = Reshape(x [2, 3], shape).
std::function<Scenario(const fs::path&)> ReshapeTo(std::vector<int64_t> shape) {
  return [shape](const fs::path&) {
    OnnxModelBuilder b(14);
    b.Input("shape", kInt64, {-1}).FloatInit("x", {2, 3}, {0, 1, 2, 3, 4, 5}).Output("y");
    b.Node("Reshape", {"x", "shape"}, {"y"});
    const int64_t n = static_cast<int64_t>(shape.size());
    return Scenario{b.Serialize(), "", {{"shape", Int64Tensor({n}, shape)}}};
  };
}

// y = Expand(x [1], shape): the output size comes from the request.
std::function<Scenario(const fs::path&)> ExpandTo(std::vector<int64_t> shape) {
  return [shape](const fs::path&) {
    OnnxModelBuilder b(13);
    b.Input("shape", kInt64, {-1}).FloatInit("x", {1}, {7}).Output("y");
    b.Node("Expand", {"x", "shape"}, {"y"});
    const int64_t n = static_cast<int64_t>(shape.size());
    return Scenario{b.Serialize(), "", {{"shape", Int64Tensor({n}, shape)}}};
  };
}

// ---- output checks

OutputCheck ExpectDims(std::vector<Dims> dims) {
  return [dims](const std::vector<NamedTensor>& out) {
    ASSERT_EQ(out.size(), dims.size());
    for (size_t i = 0; i < dims.size(); ++i) EXPECT_EQ(out[i].tensor.dims(), dims[i]) << out[i].name;
  };
}

// Exact float comparison where NaN must meet NaN and Inf the same Inf.
OutputCheck ExpectFloats(Dims dims, std::vector<float> expected) {
  return [dims, expected](const std::vector<NamedTensor>& out) {
    ASSERT_EQ(out.size(), 1u);
    const Tensor& t = out[0].tensor;
    ASSERT_EQ(t.dims(), dims);
    ASSERT_EQ(t.dtype(), DType::kFloat32);
    for (size_t i = 0; i < expected.size(); ++i) {
      const float got = t.data<float>()[i];
      if (std::isnan(expected[i])) {
        EXPECT_TRUE(std::isnan(got)) << "element " << i << " is " << got << ", expected NaN";
      } else {
        EXPECT_EQ(got, expected[i]) << "element " << i;
      }
    }
  };
}

// ------------------------------------------------------------------ table

const Case kCases[] = {
    // ---- files that are not models
    {"zero_length_file", Bytes([] { return std::string(); }), Stage::kLoad, StatusCode::kInvalidModel,
     "empty (0 bytes)"},
    {"truncated_file", Bytes([] { std::string s = AddReluScale().Serialize(); return s.substr(0, s.size() / 2); }),
     Stage::kLoad, StatusCode::kInvalidModel, "not a valid ONNX protobuf"},
    {"random_bytes", Bytes([] {
       std::mt19937 rng(1234);
       std::string s(512, '\0');
       for (char& c : s) c = static_cast<char>(rng());
       return s;
     }),
     Stage::kLoad, StatusCode::kInvalidModel, "not a valid ONNX protobuf"},
    // A TensorProto is valid protobuf; read as a ModelProto it has no graph.
    {"protobuf_not_a_model", Bytes([] { onnx::TensorProto t; t.add_dims(3); t.add_dims(4); return t.SerializeAsString(); }),
     Stage::kLoad, StatusCode::kInvalidModel, "no graph"},
    {"missing_graph", MutatedModel([](onnx::ModelProto& m) { m.clear_graph(); }), Stage::kLoad,
     StatusCode::kInvalidModel, "has no graph"},
    {"empty_graph", MutatedModel([](onnx::ModelProto& m) {
       m.mutable_graph()->clear_node(); m.mutable_graph()->clear_output(); }),
     Stage::kLoad, StatusCode::kInvalidModel, "graph is empty"},
    {"no_outputs", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->clear_output(); }), Stage::kLoad,
     StatusCode::kInvalidModel, "no outputs"},

    // ---- broken graph structure
    {"duplicate_node_output", MutatedModel([](onnx::ModelProto& m) { AddNode(m, "Relu", {"x"}, {"t0"}); }),
     Stage::kLoad, StatusCode::kInvalidModel, "'t0' is defined more than once"},
    {"node_output_shadows_input", MutatedModel([](onnx::ModelProto& m) { AddNode(m, "Relu", {"y"}, {"x"}); }),
     Stage::kLoad, StatusCode::kInvalidModel, "'x' is defined more than once"},
    {"duplicate_initializer", MutatedModel([](onnx::ModelProto& m) {
       *m.mutable_graph()->add_initializer() = m.graph().initializer(0); }),
     Stage::kLoad, StatusCode::kInvalidModel, "'b'"},
    {"duplicate_graph_input", MutatedModel([](onnx::ModelProto& m) {
       *m.mutable_graph()->add_input() = m.graph().input(0); }),
     Stage::kLoad, StatusCode::kInvalidModel, "graph input 'x' is declared twice"},
    {"undefined_value", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(1)->set_input(0, "nowhere"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "uses 'nowhere', which no node, input or initializer defines"},
    {"undefined_graph_output", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_output(0)->set_name("ghost"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "graph output 'ghost' is not defined"},
    {"cycle", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(0)->set_input(0, "y"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "cycle"},
    {"self_loop", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(1)->set_input(0, "t1"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "cycle"},

    // ---- ops, domains, opsets
    {"unknown_op", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(1)->set_op_type("NoSuchOp"); }),
     Stage::kCreate, StatusCode::kUnsupported, "NoSuchOp"},
    {"unknown_domain", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_node(1)->set_domain("com.example"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "domain 'com.example', which the model does not import"},
    {"imported_unknown_domain", MutatedModel([](onnx::ModelProto& m) {
       auto* imp = m.add_opset_import(); imp->set_domain("com.example"); imp->set_version(1);
       m.mutable_graph()->mutable_node(1)->set_domain("com.example"); }),
     Stage::kCreate, StatusCode::kUnsupported, "com.example"},
    {"opset_newer_than_supported", MutatedModel([](onnx::ModelProto& m) { m.mutable_opset_import(0)->set_version(99); }),
     Stage::kLoad, StatusCode::kUnsupported, "imports ONNX opset 99; kiln supports opsets 7-18"},
    // Old opsets load (many old models only use ops that never changed);
    // the kernels that do not cover them are named with their opset.
    {"opset_older_than_kernels", MutatedModel([](onnx::ModelProto& m) { m.mutable_opset_import(0)->set_version(3); }),
     Stage::kCreate, StatusCode::kUnsupported, "Add (opset 3), Mul (opset 3)"},
    {"opset_version_zero", MutatedModel([](onnx::ModelProto& m) { m.mutable_opset_import(0)->set_version(0); }),
     Stage::kLoad, StatusCode::kInvalidModel, "invalid version 0"},
    {"no_opset_import", MutatedModel([](onnx::ModelProto& m) { m.clear_opset_import(); }), Stage::kLoad,
     StatusCode::kUnsupported, "no opset_import"},

    // ---- attributes
    {"attribute_float_for_int", MutatedModel([](onnx::ModelProto& m) {
       auto* n = AddNode(m, "Softmax", {"y"}, {"z"});
       SetAttr(n, "axis", onnx::AttributeProto::FLOAT, [](auto* a) { a->set_f(1); }); }),
     Stage::kLoad, StatusCode::kInvalidModel, "attribute 'axis' has type float"},
    {"attribute_int_for_ints", MutatedModel([](onnx::ModelProto& m) {
       auto* n = AddNode(m, "Transpose", {"y"}, {"z"});
       SetAttr(n, "perm", onnx::AttributeProto::INT, [](auto* a) { a->set_i(1); }); }),
     Stage::kLoad, StatusCode::kInvalidModel, "attribute 'perm' has type int"},
    {"attribute_string_for_float", MutatedModel([](onnx::ModelProto& m) {
       auto* n = AddNode(m, "LeakyRelu", {"y"}, {"z"});
       SetAttr(n, "alpha", onnx::AttributeProto::STRING, [](auto* a) { a->set_s("0.1"); }); }),
     Stage::kLoad, StatusCode::kInvalidModel, "attribute 'alpha' has type string"},
    {"attribute_without_type_or_value", MutatedModel([](onnx::ModelProto& m) {
       m.mutable_graph()->mutable_node(1)->add_attribute()->set_name("odd"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "attribute 'odd' has no type and no value"},
    {"required_attribute_missing", MutatedModel([](onnx::ModelProto& m) { AddNode(m, "Cast", {"y"}, {"z"}); }),
     Stage::kLoad, StatusCode::kInvalidModel, "required attribute 'to' is missing"},
    {"attribute_value_out_of_range", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {2, 4}).Output("y");
       OnnxModelBuilder::IntAttr(b.Node("Flatten", {"x"}, {"y"}), "axis", 5);
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({2, 4}, std::vector<float>(8, 1.f))}}};
     },
     Stage::kRun, StatusCode::kInvalidArgument, "Flatten: axis 5 is out of range for rank 2"},
    // ONNX 1.12's own shape inference used to crash the process on this
    // (a weight of higher rank than the data); found by the model fuzzer.
    {"conv_weight_rank_above_input", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {-1, 1}).FloatInit("w", {2, 1, 3, 3}, std::vector<float>(18, 1.f)).Output("y");
       b.Node("Conv", {"x", "w"}, {"y"});
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({1, 1}, {1})}}};
     },
     Stage::kRun, StatusCode::kInvalidArgument, "Conv"},
    {"transpose_perm_not_a_permutation", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {2, 4}).Output("y");
       OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"x"}, {"y"}), "perm", {0, 0});
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({2, 4}, std::vector<float>(8, 1.f))}}};
     },
     Stage::kRun, StatusCode::kInvalidArgument, "perm"},

    // ---- dims and initializer sizes
    {"negative_initializer_dim", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_initializer(0)->set_dims(0, -4); }),
     Stage::kLoad, StatusCode::kInvalidModel, "negative dimension -4"},
    {"overflowing_initializer_dims", MutatedModel([](onnx::ModelProto& m) {
       auto* t = m.mutable_graph()->mutable_initializer(0);
       t->set_dims(0, int64_t{1} << 40); t->add_dims(int64_t{1} << 40); }),
     Stage::kLoad, StatusCode::kResourceExhausted, "overflows"},
    {"absurd_input_dim", MutatedModel([](onnx::ModelProto& m) {
       m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)
           ->set_dim_value(int64_t{1} << 50); }),
     Stage::kLoad, StatusCode::kInvalidModel, "absurd dimension"},
    {"raw_data_size_mismatch", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_initializer(0)->set_dims(0, 5); }),
     Stage::kLoad, StatusCode::kInvalidModel, "has 16 bytes of raw data but its shape [5] of float32 needs 20"},
    {"typed_data_count_mismatch", MutatedModel([](onnx::ModelProto& m) {
       auto* t = m.mutable_graph()->mutable_initializer(0);
       t->clear_raw_data(); t->add_float_data(1); t->add_float_data(2); }),
     Stage::kLoad, StatusCode::kInvalidModel, "stores 2 values but its shape [4] needs 4"},
    {"unsupported_initializer_dtype", MutatedModel([](onnx::ModelProto& m) {
       m.mutable_graph()->mutable_initializer(0)->set_data_type(onnx::TensorProto::FLOAT16); }),
     Stage::kLoad, StatusCode::kUnsupported, "FLOAT16"},
    {"invalid_initializer_dtype_code", MutatedModel([](onnx::ModelProto& m) {
       m.mutable_graph()->mutable_initializer(0)->set_data_type(12345); }),
     Stage::kLoad, StatusCode::kUnsupported, "code 12345"},
    {"initializer_without_name", MutatedModel([](onnx::ModelProto& m) { m.mutable_graph()->mutable_initializer(0)->clear_name(); }),
     Stage::kLoad, StatusCode::kInvalidModel, "an initializer has no name"},

    // ---- external data
    {"external_data_from_memory", MutatedModel([](onnx::ModelProto& m) {
       auto* t = m.mutable_graph()->mutable_initializer(0);
       t->clear_raw_data(); t->set_data_location(onnx::TensorProto::EXTERNAL);
       auto* e = t->add_external_data(); e->set_key("location"); e->set_value("b.bin"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "cannot be used for a model loaded from memory"},
    {"external_data_inside_folder", ExternalData({{"location", "b.bin"}}), Stage::kRun, StatusCode::kOk, "",
     ExpectFloats({1, 4}, {4, 0, 12, 0})},
    {"external_data_parent_dir", ExternalData({{"location", "../secret.bin"}}), Stage::kLoad,
     StatusCode::kInvalidModel, "'../secret.bin' escapes the model's folder"},
    {"external_data_hidden_parent_dir", ExternalData({{"location", "sub/../../secret.bin"}}), Stage::kLoad,
     StatusCode::kInvalidModel, "escapes the model's folder"},
    {"external_data_absolute_path", ExternalData({{"location", "/etc/passwd"}}), Stage::kLoad,
     StatusCode::kInvalidModel, "'/etc/passwd' must be relative to the model's folder"},
    {"external_data_empty_location", ExternalData({{"location", ""}}), Stage::kLoad, StatusCode::kInvalidModel,
     "must be relative"},
    {"external_data_symlink_out", ExternalData({{"location", "link.bin"}}, [](const fs::path& dir) {
       fs::create_symlink(dir / "secret.bin", dir / "model" / "link.bin"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "'link.bin' resolves outside the model's folder"},
    {"external_data_symlinked_folder_out", ExternalData({{"location", "sub/secret.bin"}}, [](const fs::path& dir) {
       fs::create_directory_symlink(dir, dir / "model" / "sub"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "resolves outside the model's folder"},
    {"external_data_is_a_folder", ExternalData({{"location", "sub"}}, [](const fs::path& dir) {
       fs::create_directory(dir / "model" / "sub"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "external data 'sub' is not a regular file"},
    {"external_data_missing_file", ExternalData({{"location", "gone.bin"}}), Stage::kLoad, StatusCode::kNotFound,
     "gone.bin"},
    {"external_data_offset_past_end", ExternalData({{"location", "b.bin"}, {"offset", "8"}}), Stage::kLoad,
     StatusCode::kInvalidModel, "offset 8 + 16 bytes runs past the end of the file (16 bytes)"},
    {"external_data_huge_offset", ExternalData({{"location", "b.bin"}, {"offset", "9223372036854775807"}}),
     Stage::kLoad, StatusCode::kInvalidModel, "runs past the end of the file"},
    {"external_data_negative_offset", ExternalData({{"location", "b.bin"}, {"offset", "-4"}}), Stage::kLoad,
     StatusCode::kInvalidModel, "offset -4 is negative"},
    {"external_data_offset_not_a_number", ExternalData({{"location", "b.bin"}, {"offset", "12abc"}}), Stage::kLoad,
     StatusCode::kInvalidModel, "offset '12abc' is not a number"},
    {"external_data_offset_overflows", ExternalData({{"location", "b.bin"}, {"offset", "99999999999999999999"}}),
     Stage::kLoad, StatusCode::kInvalidModel, "is not a number"},
    {"external_data_length_mismatch", ExternalData({{"location", "b.bin"}, {"length", "64"}}), Stage::kLoad,
     StatusCode::kInvalidModel, "length 64 does not match the tensor's 16 bytes"},
    {"external_data_short_file", ExternalData({{"location", "short.bin"}}, [](const fs::path& dir) {
       WriteFile(dir / "model" / "short.bin", "abc"); }),
     Stage::kLoad, StatusCode::kInvalidModel, "runs past the end of the file (3 bytes)"},

    // ---- run-time indices and shapes
    {"gather_index_too_large", GatherWith({0, 3}), Stage::kRun, StatusCode::kOutOfRange, "index 3"},
    {"gather_index_too_negative", GatherWith({-4}), Stage::kRun, StatusCode::kOutOfRange, "index -4"},
    {"gather_negative_index_ok", GatherWith({-1, 0}), Stage::kRun, StatusCode::kOk, "",
     ExpectFloats({2, 2}, {4, 5, 0, 1})},
    {"gather_empty_indices", GatherWith({}), Stage::kRun, StatusCode::kOk, "", ExpectDims({{0, 2}})},
    {"slice_axis_out_of_range", SliceWith(0, 1, 2, 1), Stage::kRun, StatusCode::kInvalidArgument,
     "axis 2 is out of range for rank 2"},
    {"slice_step_zero", SliceWith(0, 1, 1, 0), Stage::kRun, StatusCode::kInvalidArgument, "step for axis 1 is 0"},
    // ONNX clamps starts/ends to the dim: far out of range slices are empty.
    {"slice_starts_past_end", SliceWith(100, 200, 1, 1), Stage::kRun, StatusCode::kOk, "", ExpectDims({{2, 0}})},
    {"slice_extreme_bounds", SliceWith(std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), 1, 1),
     Stage::kRun, StatusCode::kOk, "", ExpectDims({{2, 4}})},
    {"slice_extreme_negative_step", SliceWith(std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(),
                                              1, std::numeric_limits<int64_t>::min()),
     Stage::kRun, StatusCode::kOk, "", ExpectDims({{2, 1}})},
    {"slice_extreme_positive_step", SliceWith(1, std::numeric_limits<int64_t>::max(), 1,
                                              std::numeric_limits<int64_t>::max()),
     Stage::kRun, StatusCode::kOk, "", ExpectFloats({2, 1}, {1, 5})},
    {"reshape_count_differs", ReshapeTo({4}), Stage::kRun, StatusCode::kInvalidArgument,
     "cannot reshape [2, 3] to [4]: element counts differ"},
    {"reshape_two_inferred_dims", ReshapeTo({-1, -1}), Stage::kRun, StatusCode::kInvalidArgument, "more than one -1"},
    {"reshape_negative_dim", ReshapeTo({-2, 3}), Stage::kRun, StatusCode::kInvalidArgument, "negative dimension"},
    {"reshape_not_divisible", ReshapeTo({-1, 4}), Stage::kRun, StatusCode::kInvalidArgument, "not divisible"},
    {"reshape_overflowing_shape", ReshapeTo({int64_t{1} << 40, int64_t{1} << 40}), Stage::kRun,
     StatusCode::kInvalidArgument, "overflows"},
    {"expand_overflowing_shape", ExpandTo({int64_t{1} << 40, int64_t{1} << 40}), Stage::kRun,
     StatusCode::kResourceExhausted, "overflows"},
    {"expand_absurd_allocation", ExpandTo({int64_t{1} << 20, int64_t{1} << 20}), Stage::kRun,
     StatusCode::kResourceExhausted, "cannot allocate"},
    {"expand_negative_dim", ExpandTo({-3}), Stage::kRun, StatusCode::kInvalidArgument, "negative dimension"},

    // ---- bad requests
    {"input_wrong_name", AddReluScaleWith([] { return std::vector<NamedTensor>{{"z", GoodX()}}; }), Stage::kRun,
     StatusCode::kInvalidArgument, "unknown input 'z'; the model's inputs are 'x'"},
    {"input_missing", AddReluScaleWith([] { return std::vector<NamedTensor>{}; }), Stage::kRun,
     StatusCode::kInvalidArgument, "missing input 'x'"},
    {"input_given_twice", AddReluScaleWith([] { return std::vector<NamedTensor>{{"x", GoodX()}, {"x", GoodX()}}; }),
     Stage::kRun, StatusCode::kInvalidArgument, "given more than once"},
    {"input_wrong_dtype", AddReluScaleWith([] {
       return std::vector<NamedTensor>{{"x", Int64Tensor({1, 4}, {1, 2, 3, 4})}}; }),
     Stage::kRun, StatusCode::kInvalidArgument, "input 'x' has dtype int64, expected float32"},
    {"input_wrong_rank", AddReluScaleWith([] { return std::vector<NamedTensor>{{"x", FloatTensor({4}, {1, 2, 3, 4})}}; }),
     Stage::kRun, StatusCode::kInvalidArgument, "input 'x' has rank 1 (shape [4]), expected rank 2"},
    {"input_wrong_dims", AddReluScaleWith([] { return std::vector<NamedTensor>{{"x", FloatTensor({1, 3}, {1, 2, 3})}}; }),
     Stage::kRun, StatusCode::kInvalidArgument, "dim 1 must be 4"},
    {"input_undefined_tensor", AddReluScaleWith([] { return std::vector<NamedTensor>{{"x", Tensor()}}; }),
     Stage::kRun, StatusCode::kInvalidArgument, "empty (undefined) tensor"},
    {"input_view_without_data", AddReluScaleWith([] {
       return std::vector<NamedTensor>{{"x", Tensor::View(DType::kFloat32, {1, 4}, nullptr)}}; }),
     Stage::kRun, StatusCode::kInvalidArgument, "input 'x' has no data"},
    {"input_negative_dim", AddReluScaleWith([] {
       return std::vector<NamedTensor>{{"x", Tensor::View(DType::kFloat32, {-2, 4}, nullptr)}}; }),
     Stage::kRun, StatusCode::kInvalidArgument, "negative dimension -2"},
    {"input_overflowing_dims", AddReluScaleWith([] {
       static float dummy[4];
       return std::vector<NamedTensor>{{"x", Tensor::View(DType::kFloat32, {int64_t{1} << 62, 4}, dummy)}}; }),
     Stage::kRun, StatusCode::kResourceExhausted, "overflows"},

    // ---- 0-sized tensors: ONNX allows them; outputs keep the right shape
    {"empty_batch_elementwise", AddReluScaleWith([] { return std::vector<NamedTensor>{{"x", FloatTensor({0, 4}, {})}}; }),
     Stage::kRun, StatusCode::kOk, "", ExpectDims({{0, 4}})},
    {"empty_reduce_sum", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {-1, 3}).Int64Init("axes", {1}, {0}).Output("y");
       OnnxModelBuilder::IntAttr(b.Node("ReduceSum", {"x", "axes"}, {"y"}), "keepdims", 0);
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({0, 3}, {})}}};
     },
     Stage::kRun, StatusCode::kOk, "", ExpectFloats({3}, {0, 0, 0})},
    {"empty_matmul_rows", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {-1, 3}).FloatInit("w", {3, 2}, {1, 2, 3, 4, 5, 6}).Output("y");
       b.Node("MatMul", {"x", "w"}, {"y"});
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({0, 3}, {})}}};
     },
     Stage::kRun, StatusCode::kOk, "", ExpectDims({{0, 2}})},
    {"empty_matmul_inner_dim", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {2, -1}).Input("w", kFloat, {-1, 3}).Output("y");
       b.Node("MatMul", {"x", "w"}, {"y"});
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({2, 0}, {})}, {"w", FloatTensor({0, 3}, {})}}};
     },
     Stage::kRun, StatusCode::kOk, "", ExpectFloats({2, 3}, {0, 0, 0, 0, 0, 0})},
    {"empty_softmax_transpose_concat", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {-1, 4}).FloatInit("c", {1, 4}, {1, 2, 3, 4}).Output("y");
       b.Node("Softmax", {"x"}, {"s"});
       OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"s"}, {"t"}), "perm", {1, 0});
       OnnxModelBuilder::IntsAttr(b.Node("Transpose", {"t"}, {"u"}), "perm", {1, 0});
       OnnxModelBuilder::IntAttr(b.Node("Concat", {"u", "c"}, {"y"}), "axis", 0);
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({0, 4}, {})}}};
     },
     Stage::kRun, StatusCode::kOk, "", ExpectFloats({1, 4}, {1, 2, 3, 4})},
    {"empty_conv_batch", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {-1, 1, 3, 3}).FloatInit("w", {2, 1, 1, 1}, {1, 2}).Output("y");
       b.Node("Conv", {"x", "w"}, {"y"});
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({0, 1, 3, 3}, {})}}};
     },
     Stage::kRun, StatusCode::kOk, "", ExpectDims({{0, 2, 3, 3}})},

    // ---- NaN and Inf propagate like IEEE arithmetic says
    {"nan_inf_elementwise", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {-1, 4}).FloatInit("one", {}, {1}).FloatInit("w", {4}, {2, 0, 2, 0}).Output("y");
       b.Node("Add", {"x", "one"}, {"a"});
       b.Node("Mul", {"a", "w"}, {"m"});
       b.Node("Sub", {"m", "one"}, {"y"});
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({2, 4}, {kNaN, kInf, -kInf, 1, 0, 1, kInf, -kInf})}}};
     },
     Stage::kRun, StatusCode::kOk, "",
     ExpectFloats({2, 4}, {kNaN, kNaN, -kInf, -1, 1, -1, kInf, kNaN})},
    {"nan_inf_matmul_softmax", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("x", kFloat, {-1, 2}).FloatInit("w", {2, 2}, {1, 0, 0, 1}).Output("y");
       b.Node("MatMul", {"x", "w"}, {"m"});
       b.Node("Softmax", {"m"}, {"y"});
       return Scenario{b.Serialize(), "", {{"x", FloatTensor({2, 2}, {kNaN, 0, kInf, 0})}}};
     },
     Stage::kRun, StatusCode::kOk, "", ExpectFloats({2, 2}, {kNaN, kNaN, kNaN, kNaN})},

    // Control flow: sub-graphs nested past the limit, bodies that read what
    // does not exist, loop-carried values that change type or shape.
    {"subgraphs_nested_too_deep", [](const fs::path&) {
       OnnxModelBuilder b(13);
       b.Input("cond", onnx::TensorProto::BOOL, {}).Input("x", kFloat, {3}).Output("y");
       onnx::NodeProto* node = &b.Node("If", {"cond"}, {"y"}, "if0");
       for (int depth = 1; depth <= 20; ++depth) {
         testing::BodyBuilder else_branch(*node, "else_branch");
         else_branch.Output("e" + std::to_string(depth), kFloat, {3});
         else_branch.Node("Identity", {"x"}, {"e" + std::to_string(depth)});
         testing::BodyBuilder then_branch(*node, "then_branch");
         then_branch.Output("t" + std::to_string(depth), kFloat, {3});
         node = &then_branch.Node("If", {"cond"}, {"t" + std::to_string(depth)}, "if" + std::to_string(depth));
       }
       testing::BodyBuilder last_else(*node, "else_branch");
       last_else.Output("e_last", kFloat, {3});
       last_else.Node("Identity", {"x"}, {"e_last"});
       testing::BodyBuilder last_then(*node, "then_branch");
       last_then.Output("t_last", kFloat, {3});
       last_then.Node("Identity", {"x"}, {"t_last"});
       return Scenario{b.Serialize(), "", {}};
     },
     Stage::kLoad, StatusCode::kInvalidModel, "nest more than 16 deep"},
    {"loop_body_reads_missing_value", [](const fs::path&) {
       OnnxModelBuilder b = testing::LoopSumModel();
       b.proto().mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g()->mutable_node(1)->set_input(
           1, "no_such_value");
       return Scenario{b.Serialize(), "", {}};
     },
     Stage::kLoad, StatusCode::kInvalidModel, "uses 'no_such_value', which no node, input or initializer defines"},
    {"loop_carried_dtype_changes", [](const fs::path&) {
       OnnxModelBuilder b = testing::LoopSumModel();
       auto* body = b.proto().mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
       body->mutable_input(2)->mutable_type()->mutable_tensor_type()->set_elem_type(kInt64);
       return Scenario{b.Serialize(), "", {}};
     },
     Stage::kCreate, StatusCode::kInvalidModel, "loop-carried value 0 enters the body as 's' (int64)"},
    {"loop_carried_shape_differs_from_body", [](const fs::path&) {
       OnnxModelBuilder b = testing::LoopSumModel();
       auto* s0 = b.proto().mutable_graph()->mutable_initializer(0);
       s0->set_dims(0, 4);
       s0->set_raw_data(std::string(4 * sizeof(float), '\0'));
       return Scenario{b.Serialize(), "", {{"M", Int64Tensor({}, {2})}, {"x", FloatTensor({3}, {1, 2, 3})}}};
     },
     Stage::kRun, StatusCode::kInvalidArgument, "input 's' is declared [3] but receives [4]"},
    {"loop_negative_trip_count_runs_nothing", [](const fs::path&) {
       return Scenario{testing::LoopSumModel().Serialize(), "",
                       {{"M", Int64Tensor({}, {-5})}, {"x", FloatTensor({3}, {1, 2, 3})}}};
     },
     Stage::kRun, StatusCode::kOk, "",
     [](const std::vector<NamedTensor>& out) {
       ASSERT_EQ(out.size(), 2u);
       ASSERT_EQ(out[0].tensor.dims(), (Dims{3}));
       for (int i = 0; i < 3; ++i) EXPECT_EQ(out[0].tensor.data<float>()[i], 0.0f);
       EXPECT_EQ(out[1].tensor.dims(), (Dims{0, 3}));
     }},
    {"if_branch_output_count_differs", [](const fs::path&) {
       OnnxModelBuilder b = testing::IfModel();
       auto* then_branch = b.proto().mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
       *then_branch->add_output() = then_branch->output(0);
       return Scenario{b.Serialize(), "", {}};
     },
     Stage::kCreate, StatusCode::kInvalidModel, "then_branch returns 2 values but the node has 1 outputs"},
};

// ------------------------------------------------------------------ test

class BadInput : public ::testing::TestWithParam<std::tuple<Case, TierPolicy>> {};

// Loads, creates and runs the row's scenario; returns the first error and
// the stage it came from (kRun with an OK status when everything ran).
struct Outcome {
  Stage stage = Stage::kRun;
  Status status;
  std::vector<NamedTensor> outputs;
};

Outcome LoadCreateRun(const Scenario& s, TierPolicy tier) {
  Outcome o;
  auto model = s.model_path.empty() ? Model::LoadFromBytes(s.model_bytes.data(), s.model_bytes.size())
                                    : Model::Load(s.model_path);
  if (!model.ok()) return {Stage::kLoad, model.status(), {}};
  SessionOptions options;
  options.tier = tier;
  options.intra_op_threads = 1;
  options.jit_min_region_nodes = 1;  // every fusible op goes through the JIT
  auto session = Session::Create(*model, options);
  if (!session.ok()) return {Stage::kCreate, session.status(), {}};
  auto out = (*session)->Run(s.inputs);
  if (!out.ok()) return {Stage::kRun, out.status(), {}};
  // A second run must agree: neither tier may keep state from the first.
  auto again = (*session)->Run(s.inputs);
  EXPECT_TRUE(again.ok()) << again.status().ToString();
  o.outputs = std::move(out).value();
  return o;
}

TEST_P(BadInput, FailsCleanlyOrRunsCorrectly) {
  const auto& [c, tier] = GetParam();
  const fs::path dir =
      fs::path(::testing::TempDir()) / "bad_input" / (std::string(c.name) + "_" + TierPolicyName(tier));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const Scenario scenario = c.make(dir);

  const Outcome o = LoadCreateRun(scenario, tier);
  if (c.code == StatusCode::kOk) {
    ASSERT_TRUE(o.status.ok()) << StageName(o.stage) << ": " << o.status.ToString();
    ASSERT_TRUE(c.check != nullptr);
    c.check(o.outputs);
  } else {
    ASSERT_FALSE(o.status.ok()) << "expected " << StatusCodeName(c.code) << " containing '" << c.message << "'";
    EXPECT_EQ(StageName(o.stage), StageName(c.stage)) << o.status.ToString();
    EXPECT_EQ(StatusCodeName(o.status.code()), StatusCodeName(c.code)) << o.status.ToString();
    EXPECT_NE(o.status.message().find(c.message), std::string::npos)
        << "message '" << o.status.message() << "' does not contain '" << c.message << "'";
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Reliability, BadInput,
                         ::testing::Combine(::testing::ValuesIn(kCases),
                                            ::testing::Values(TierPolicy::kInterpreter, TierPolicy::kJit)),
                         [](const ::testing::TestParamInfo<std::tuple<Case, TierPolicy>>& info) {
                           return std::string(std::get<0>(info.param).name) + "_" +
                                  TierPolicyName(std::get<1>(info.param));
                         });

// A rejected request leaves the session as it was: the next good request
// runs and gives the right answer.
TEST(BadInputSession, SessionStaysUsableAfterRejectedRequests) {
  const std::string bytes = AddReluScale().Serialize();
  auto model = Model::LoadFromBytes(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  for (TierPolicy tier : {TierPolicy::kInterpreter, TierPolicy::kJit}) {
    SessionOptions options;
    options.tier = tier;
    options.intra_op_threads = 1;
    options.jit_min_region_nodes = 1;
    auto session = Session::Create(*model, options);
    ASSERT_TRUE(session.ok()) << session.status().ToString();
    EXPECT_FALSE((*session)->Run({{"x", FloatTensor({4}, {1, 2, 3, 4})}}).ok());
    EXPECT_FALSE((*session)->Run({{"x", Int64Tensor({1, 4}, {1, 2, 3, 4})}}).ok());
    auto out = (*session)->Run({{"x", GoodX()}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ExpectFloats({1, 4}, {4, 0, 12, 0})(*out);
  }
}

TEST(BadInputFiles, ModelPathErrors) {
  auto missing = Model::Load("/nonexistent/kiln/model.onnx");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("cannot open"), std::string::npos) << missing.status().ToString();

  auto folder = Model::Load(::testing::TempDir());
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(folder.status().message().find("is a directory"), std::string::npos) << folder.status().ToString();
}

}  // namespace
}  // namespace kiln
