#include "graph/onnx_loader.h"

#include <onnx/defs/schema.h>
#include <onnx/onnx-data_pb.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <climits>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <thread>
#include <unordered_map>

#include "graph/log.h"
#include "graph/mapped_file.h"
#include "graph/onnx_dtype.h"
#include "graph/onnx_shape_inference.h"
#include "graph/raw_data_elision.h"
#include "graph/value_kinds.h"
#include "kiln/sequence.h"

namespace kiln::graph {
namespace {

namespace fs = std::filesystem;

StatusOr<DType> DTypeFromOnnx(int32_t elem_type) {
  if (std::optional<DType> dtype = DTypeFromOnnxCode(elem_type)) return *dtype;
  const std::string name = onnx::TensorProto_DataType_IsValid(elem_type)
                               ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(elem_type))
                               : "code " + std::to_string(elem_type);
  return Unsupported("element type ", name, " is not supported");
}

ShapeInfo ShapeFromProto(const onnx::TypeProto& type) {
  ShapeInfo shape;
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return shape;
  shape.rank_known = true;
  for (const auto& d : type.tensor_type().shape().dim()) {
    if (d.has_dim_value() && d.dim_value() >= 0) {
      shape.dims.push_back(Dim::Concrete(d.dim_value()));
    } else if (d.has_dim_param()) {
      shape.dims.push_back(Dim::Symbolic(d.dim_param()));
    } else {
      shape.dims.push_back(Dim{});
    }
  }
  return shape;
}

// What a TypeProto declares, in kiln's terms.
struct DeclaredType {
  ValueKind kind = ValueKind::kTensor;
  DType dtype = DType::kUndefined;
  ShapeInfo shape;
};

// A tensor, a sequence of tensors, or an optional of either; Unsupported
// for maps, sparse tensors, nested sequences and unknown element types.
StatusOr<DeclaredType> DeclaredTypeFromProto(const onnx::TypeProto& type) {
  DeclaredType declared;
  const onnx::TypeProto* inner = &type;
  bool optional = false;
  if (inner->has_optional_type()) {
    optional = true;
    inner = &inner->optional_type().elem_type();
  }
  bool sequence = false;
  if (inner->has_sequence_type()) {
    sequence = true;
    inner = &inner->sequence_type().elem_type();
  }
  if (!inner->has_tensor_type()) {
    return Unsupported("only tensors, sequences of tensors and optionals of those are supported, not ",
                       type.has_map_type()             ? "maps"
                       : type.has_sparse_tensor_type() ? "sparse tensors"
                                                       : "this type");
  }
  KILN_ASSIGN_OR_RETURN(declared.dtype, DTypeFromOnnx(inner->tensor_type().elem_type()));
  declared.kind = sequence ? (optional ? ValueKind::kOptionalSequence : ValueKind::kSequence)
                           : (optional ? ValueKind::kOptionalTensor : ValueKind::kTensor);
  // A sequence's elements may have different shapes, so only tensors keep
  // theirs.
  if (!sequence) declared.shape = ShapeFromProto(*inner);
  return declared;
}

// Resolves an external-data location against `base_dir`, refusing anything
// that could read outside it: absolute paths, "..", and symlinks whose target
// leaves the folder.
StatusOr<std::string> ResolveExternalPath(const std::string& base_dir, const std::string& location) {
  if (base_dir.empty()) {
    return InvalidModel("external data '", location, "' cannot be used for a model loaded from memory");
  }
  fs::path rel(location);
  if (location.empty() || rel.is_absolute() || rel.has_root_name() || rel.has_root_directory()) {
    return InvalidModel("external data path '", location, "' must be relative to the model's folder");
  }
  for (const auto& part : rel) {
    if (part == "..") return InvalidModel("external data path '", location, "' escapes the model's folder");
  }
  std::error_code ec;
  fs::path base = fs::weakly_canonical(fs::path(base_dir), ec);
  if (ec) return NotFound("model folder '", base_dir, "': ", ec.message());
  fs::path full = fs::weakly_canonical(base / rel, ec);
  if (ec) return NotFound("external data '", location, "': ", ec.message());
  auto [base_end, full_it] = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
  if (base_end != base.end()) {
    return InvalidModel("external data path '", location, "' resolves outside the model's folder");
  }
  // A folder (or a device, or a FIFO) opens like a file but has no bytes to
  // read at an offset.
  const fs::file_status status = fs::status(full, ec);
  if (!ec && fs::exists(status) && !fs::is_regular_file(status)) {
    return InvalidModel("external data '", location, "' is not a regular file");
  }
  return full.string();
}

Status ReadExternalData(const onnx::TensorProto& proto, const std::string& base_dir, size_t expected_bytes, void* dst) {
  std::string location;
  int64_t offset = 0;
  int64_t length = -1;
  // The whole value must be a number: "12abc" is as wrong as "abc".
  const auto parse = [](const std::string& text, int64_t* value) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, *value);
    return ec == std::errc() && ptr == end;
  };
  for (const auto& entry : proto.external_data()) {
    const std::string& key = entry.key();
    if (key == "location") {
      location = entry.value();
    } else if ((key == "offset" && !parse(entry.value(), &offset)) ||
               (key == "length" && !parse(entry.value(), &length))) {
      return InvalidModel("external data ", key, " '", entry.value(), "' is not a number");
    }
  }
  if (offset < 0) return InvalidModel("external data offset ", offset, " is negative");
  if (length >= 0 && static_cast<uint64_t>(length) != expected_bytes) {
    return InvalidModel("external data length ", length, " does not match the tensor's ", expected_bytes, " bytes");
  }
  KILN_ASSIGN_OR_RETURN(std::string path, ResolveExternalPath(base_dir, location));
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open external data file '", location, "'");
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  if (static_cast<uint64_t>(offset) > file_size || expected_bytes > file_size - static_cast<uint64_t>(offset)) {
    return InvalidModel("external data '", location, "': offset ", offset, " + ", expected_bytes,
                        " bytes runs past the end of the file (", file_size, " bytes)");
  }
  in.seekg(offset);
  in.read(static_cast<char*>(dst), static_cast<std::streamsize>(expected_bytes));
  if (!in) return IoError("reading external data '", location, "' failed");
  return Status::Ok();
}

// Copies a typed repeated field into the tensor, converting element type;
// fails when the element count differs from the shape's.
template <typename Dst, typename Field>
Status CopyTypedField(const Field& field, int64_t count, Tensor& tensor, const std::string& what,
                      const char* field_name) {
  if (static_cast<int64_t>(field.size()) != count) {
    return InvalidModel(what, " has ", field.size(), " values in ", field_name, " but its shape ",
                        DimsToString(tensor.dims()), " needs ", count);
  }
  Dst* out = tensor.data<Dst>();
  for (int64_t i = 0; i < count; ++i) out[i] = static_cast<Dst>(field.Get(static_cast<int>(i)));
  return Status::Ok();
}

// Raw data at least this aligned is shared rather than copied: every dtype's
// elements are then aligned, which is all kiln's kernels and generated code
// assume of a tensor they do not pack.
constexpr uintptr_t kSharedRawDataAlignment = 16;

// An initializer's raw data that was taken out of the message before
// parsing (raw_data_elision.h) and read into memory that `owner` keeps.
struct ElidedRawData {
  char* data = nullptr;  // 64-byte aligned
  uint64_t size = 0;
  std::shared_ptr<void> owner;
};

// `raw_owner`, when set, owns `proto`: a tensor whose raw data is aligned
// enough then shares the parsed bytes (and keeps `raw_owner` alive) instead
// of copying them. `elided`, when set, stands for `proto`'s raw_data.
StatusOr<Tensor> TensorFromProto(const onnx::TensorProto& proto, const std::string& base_dir,
                                 const std::shared_ptr<void>& raw_owner = nullptr,
                                 const ElidedRawData* elided = nullptr) {
  const std::string what = "tensor '" + proto.name() + "'";
  if (proto.has_segment()) return Unsupported(what, ": segmented tensors are not supported");
  auto dtype_or = DTypeFromOnnx(proto.data_type());
  if (!dtype_or.ok()) return dtype_or.status().WithContext(what);
  DType dtype = *dtype_or;
  Dims dims(proto.dims().begin(), proto.dims().end());
  for (int64_t d : dims) {
    if (d < 0) return InvalidModel(what, " has negative dimension ", d);
  }
  auto count_or = CheckedNumElements(dims, dtype);
  if (!count_or.ok()) return count_or.status().WithContext(what);
  const int64_t count = *count_or;
  const size_t bytes = static_cast<size_t>(count) * DTypeSize(dtype);

  // Size checks come before the allocation so an absurd shape with little
  // data fails cleanly instead of exhausting memory.
  const bool external = proto.data_location() == onnx::TensorProto::EXTERNAL;
  const bool has_raw_data = elided != nullptr || proto.has_raw_data();
  const uint64_t raw_bytes = elided != nullptr ? elided->size : proto.raw_data().size();
  if (!external && has_raw_data && raw_bytes != bytes) {
    return InvalidModel(what, " has ", raw_bytes, " bytes of raw data but its shape ", DimsToString(dims), " of ",
                        DTypeName(dtype), " needs ", bytes);
  }
  if (!external && !has_raw_data) {
    int64_t stored = 0;
    switch (dtype) {
      case DType::kFloat32: stored = proto.float_data_size(); break;
      case DType::kFloat64: stored = proto.double_data_size(); break;
      case DType::kInt64: stored = proto.int64_data_size(); break;
      default: stored = proto.int32_data_size(); break;
    }
    if (stored != count) {
      return InvalidModel(what, " stores ", stored, " values but its shape ", DimsToString(dims), " needs ", count);
    }
  }
  if (!external && elided != nullptr) return Tensor::Shared(dtype, std::move(dims), elided->owner, elided->data);
  if (!external && proto.has_raw_data() && raw_owner != nullptr && bytes > 0 &&
      reinterpret_cast<uintptr_t>(proto.raw_data().data()) % kSharedRawDataAlignment == 0) {
    // Only this tensor refers to these bytes, and the parsed message is not
    // read again once the graph is built.
    return Tensor::Shared(dtype, std::move(dims), raw_owner, const_cast<char*>(proto.raw_data().data()));
  }
  auto tensor_or = Tensor::Allocate(dtype, dims);
  if (!tensor_or.ok()) return tensor_or.status().WithContext(what);
  Tensor tensor = std::move(tensor_or).value();

  if (external) {
    Status s = ReadExternalData(proto, base_dir, bytes, tensor.raw_data());
    if (!s.ok()) return s.WithContext(what);
    return tensor;
  }
  if (proto.has_raw_data()) {
    if (bytes > 0) std::memcpy(tensor.raw_data(), proto.raw_data().data(), bytes);
    return tensor;
  }
  Status s;
  switch (dtype) {
    case DType::kFloat32: s = CopyTypedField<float>(proto.float_data(), count, tensor, what, "float_data"); break;
    case DType::kFloat64: s = CopyTypedField<double>(proto.double_data(), count, tensor, what, "double_data"); break;
    case DType::kInt64: s = CopyTypedField<int64_t>(proto.int64_data(), count, tensor, what, "int64_data"); break;
    case DType::kInt32: s = CopyTypedField<int32_t>(proto.int32_data(), count, tensor, what, "int32_data"); break;
    case DType::kInt16: s = CopyTypedField<int16_t>(proto.int32_data(), count, tensor, what, "int32_data"); break;
    case DType::kInt8: s = CopyTypedField<int8_t>(proto.int32_data(), count, tensor, what, "int32_data"); break;
    case DType::kUint8: s = CopyTypedField<uint8_t>(proto.int32_data(), count, tensor, what, "int32_data"); break;
    case DType::kBool: s = CopyTypedField<bool>(proto.int32_data(), count, tensor, what, "int32_data"); break;
    case DType::kUndefined:
    case DType::kSequence: s = Internal("not a tensor element type"); break;
  }
  KILN_RETURN_IF_ERROR(s);
  return tensor;
}

// Attribute kinds follow AttributeProto.type; very old exporters leave type
// unset, in which case the populated field decides.
StatusOr<Attribute> AttributeFromProto(const onnx::AttributeProto& proto, const std::string& base_dir) {
  Attribute attr;
  auto type = proto.type();
  if (type == onnx::AttributeProto::UNDEFINED) {
    if (proto.has_f())
      type = onnx::AttributeProto::FLOAT;
    else if (proto.has_i())
      type = onnx::AttributeProto::INT;
    else if (proto.has_s())
      type = onnx::AttributeProto::STRING;
    else if (proto.has_t())
      type = onnx::AttributeProto::TENSOR;
    else if (proto.has_g())
      type = onnx::AttributeProto::GRAPH;
    else if (proto.floats_size())
      type = onnx::AttributeProto::FLOATS;
    else if (proto.ints_size())
      type = onnx::AttributeProto::INTS;
    else if (proto.strings_size())
      type = onnx::AttributeProto::STRINGS;
    else
      return InvalidModel("attribute '", proto.name(), "' has no type and no value");
  }
  switch (type) {
    case onnx::AttributeProto::FLOAT:
      attr.kind = Attribute::Kind::kFloat;
      attr.f = proto.f();
      break;
    case onnx::AttributeProto::INT:
      attr.kind = Attribute::Kind::kInt;
      attr.i = proto.i();
      break;
    case onnx::AttributeProto::STRING:
      attr.kind = Attribute::Kind::kString;
      attr.s = proto.s();
      break;
    case onnx::AttributeProto::TENSOR: {
      attr.kind = Attribute::Kind::kTensor;
      auto t = TensorFromProto(proto.t(), base_dir);
      if (!t.ok()) return t.status().WithContext("attribute '" + proto.name() + "'");
      attr.t = std::move(t).value();
      break;
    }
    case onnx::AttributeProto::GRAPH:
      // The body itself is built by GraphBuilder, which knows the enclosing
      // scopes its outer-scope references resolve in.
      attr.kind = Attribute::Kind::kGraph;
      break;
    case onnx::AttributeProto::FLOATS:
      attr.kind = Attribute::Kind::kFloats;
      attr.floats.assign(proto.floats().begin(), proto.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      attr.kind = Attribute::Kind::kInts;
      attr.ints.assign(proto.ints().begin(), proto.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      attr.kind = Attribute::Kind::kStrings;
      attr.strings.assign(proto.strings().begin(), proto.strings().end());
      break;
    case onnx::AttributeProto::TYPE_PROTO: {
      // A type (Optional's `type`): kept in kiln's notation as a string
      // (graph/value_kinds.h), since only value-kind propagation reads it.
      auto declared = DeclaredTypeFromProto(proto.tp());
      if (!declared.ok()) return declared.status().WithContext("attribute '" + proto.name() + "'");
      attr.kind = Attribute::Kind::kString;
      attr.s = TypeNotation(declared->kind, declared->dtype);
      break;
    }
    default:
      return Unsupported("attribute '", proto.name(), "' has unsupported type ",
                         onnx::AttributeProto_AttributeType_Name(type));
  }
  return attr;
}

Attribute::Kind KindFromSchemaType(onnx::AttributeProto::AttributeType t, bool* known) {
  *known = true;
  switch (t) {
    case onnx::AttributeProto::FLOAT: return Attribute::Kind::kFloat;
    case onnx::AttributeProto::INT: return Attribute::Kind::kInt;
    case onnx::AttributeProto::STRING: return Attribute::Kind::kString;
    case onnx::AttributeProto::TENSOR: return Attribute::Kind::kTensor;
    case onnx::AttributeProto::GRAPH: return Attribute::Kind::kGraph;
    case onnx::AttributeProto::FLOATS: return Attribute::Kind::kFloats;
    case onnx::AttributeProto::INTS: return Attribute::Kind::kInts;
    case onnx::AttributeProto::STRINGS: return Attribute::Kind::kStrings;
    default: *known = false; return Attribute::Kind::kInt;
  }
}

// Checks a node's attribute kinds against ONNX's schema for its opset, when
// ONNX knows the op. Unknown ops pass here; the session reports them.
Status CheckAttributesAgainstSchema(const Node& node) {
  const onnx::OpSchema* schema = nullptr;
  try {
    schema = onnx::OpSchemaRegistry::Schema(node.op_type, node.opset, node.domain);
  } catch (const std::exception&) {
    schema = nullptr;
  }
  if (schema == nullptr) return Status::Ok();
  const auto& declared = schema->attributes();
  for (const auto& [name, attr] : node.attributes) {
    auto it = declared.find(name);
    if (it == declared.end()) continue;  // unknown attributes are ignored, as ONNX Runtime does
    bool known = false;
    Attribute::Kind expected = KindFromSchemaType(it->second.type, &known);
    // Graph-valued attributes are not converted; everything else must match.
    if (known && expected != attr.kind) {
      return InvalidModel(node.Describe(), ": attribute '", name, "' has type ", AttributeKindName(attr.kind),
                          ", but opset ", node.opset, " of ", node.op_type, " declares ", AttributeKindName(expected));
    }
  }
  for (const auto& [name, decl] : declared) {
    if (decl.required && !node.attributes.count(name)) {
      return InvalidModel(node.Describe(), ": required attribute '", name, "' is missing");
    }
  }
  return Status::Ok();
}

// How deeply sub-graphs nest in `g` (0 when no node has a graph attribute),
// counting no further than `limit` + 1 so a hostile model cannot make the
// count itself expensive.
int SubgraphDepth(const onnx::GraphProto& g, int limit) {
  if (limit < 0) return 1;
  int deepest = 0;
  for (const auto& node : g.node()) {
    for (const auto& attr : node.attribute()) {
      if (attr.has_g()) deepest = std::max(deepest, 1 + SubgraphDepth(attr.g(), limit - 1));
      for (const auto& body : attr.graphs()) deepest = std::max(deepest, 1 + SubgraphDepth(body, limit - 1));
      if (deepest > limit) return deepest;
    }
  }
  return deepest;
}

// Sub-graphs read enclosing values whose dtype and shape are only known
// once the enclosing graph's value_info has been applied; copies them in.
void RefreshOuterScopeTypes(Graph& graph) {
  for (size_t n = 0; n < graph.num_nodes(); ++n) {
    Node& node = graph.node(static_cast<NodeId>(n));
    size_t next = node.num_explicit_inputs();
    for (const auto& [name, body] : MutableSubgraphs(node)) {
      for (ValueId inner : body->outer_scope_values()) {
        const Value& outer = graph.value(node.inputs[next++]);
        body->value(inner).kind = outer.kind;
        body->value(inner).dtype = outer.dtype;
        body->value(inner).shape = outer.shape;
      }
      RefreshOuterScopeTypes(*body);
    }
  }
}

class GraphBuilder {
 public:
  GraphBuilder(const onnx::ModelProto& model, const LoadOptions& options) : model_(model), options_(options) {}
  // Lets initializers share their raw data with `owner`, which owns `model`.
  void ShareRawDataWith(std::shared_ptr<void> owner) { raw_owner_ = std::move(owner); }
  // `model` was parsed without the main graph's large raw data: entry i,
  // when set, is initializer i's.
  void UseElidedRawData(std::vector<std::optional<ElidedRawData>> raw) {
    elided_ = std::move(raw);
    uses_elided_ = true;
  }

  StatusOr<Graph> Build() {
    KILN_RETURN_IF_ERROR(ReadOpsets());
    const onnx::GraphProto& g = model_.graph();
    graph_.name = g.name();
    ReadDescription();
    KILN_RETURN_IF_ERROR(BuildGraph(g));
    RefreshOuterScopeTypes(graph_);
    PropagateValueKinds(graph_);
    KILN_RETURN_IF_ERROR(graph_.Validate());
    KILN_RETURN_IF_ERROR(CheckValueKindUses(graph_));
    return std::move(graph_);
  }

 private:
  // A builder for the body of a node of `parent`'s graph.
  GraphBuilder(const onnx::ModelProto& model, const LoadOptions& options, GraphBuilder* parent)
      : model_(model), options_(options), parent_(parent), depth_(parent->depth_ + 1) {
    for (const auto& [domain, version] : parent->graph_.opset_imports()) graph_.set_opset_import(domain, version);
  }

  Status BuildGraph(const onnx::GraphProto& g) {
    KILN_RETURN_IF_ERROR(AddInitializers(g));
    KILN_RETURN_IF_ERROR(AddInputs(g));
    KILN_RETURN_IF_ERROR(AddNodeOutputs(g));
    KILN_RETURN_IF_ERROR(AddNodes(g));
    KILN_RETURN_IF_ERROR(AddOutputs(g));
    ApplyValueInfo(g);
    return Status::Ok();
  }

  // The value `name` refers to here: this graph's own, or an enclosing
  // graph's, which then becomes an outer-scope value of this graph (and of
  // every graph between, so each body's node passes it down explicitly).
  std::optional<ValueId> Resolve(const std::string& name) {
    if (auto id = graph_.FindValue(name)) return id;
    if (parent_ == nullptr) return std::nullopt;
    std::optional<ValueId> outer = parent_->Resolve(name);
    if (!outer) return std::nullopt;
    const Value& v = parent_->graph_.value(*outer);
    auto id = graph_.AddOuterScopeValue(name, v.dtype, v.shape);
    if (!id.ok()) return std::nullopt;  // unreachable: FindValue found no such name
    graph_.value(*id).kind = v.kind;
    return *id;
  }

  // Builds the body in `proto` and makes its outer-scope values implicit
  // inputs of `node` (the caller adds bodies in attribute order).
  StatusOr<std::shared_ptr<Graph>> BuildBody(const onnx::GraphProto& proto, Node& node) {
    GraphBuilder body(model_, options_, this);
    body.graph_.name = proto.name();
    KILN_RETURN_IF_ERROR(body.BuildGraph(proto));
    for (ValueId inner : body.graph_.outer_scope_values()) {
      std::optional<ValueId> outer = Resolve(body.graph_.value(inner).name);
      if (!outer) return Internal("outer-scope value '", body.graph_.value(inner).name, "' vanished");
      node.inputs.push_back(*outer);
      ++node.implicit_inputs;
    }
    return std::make_shared<Graph>(std::move(body.graph_));
  }

  void ReadDescription() {
    ModelDescription& d = graph_.description;
    d.producer_name = model_.producer_name();
    d.producer_version = model_.producer_version();
    d.domain = model_.domain();
    d.model_version = model_.model_version();
    d.doc_string = model_.doc_string();
    for (const auto& prop : model_.metadata_props()) d.metadata_props.emplace_back(prop.key(), prop.value());
  }

  Status ReadOpsets() {
    for (const auto& imp : model_.opset_import()) {
      std::string domain = imp.domain() == "ai.onnx" ? "" : imp.domain();
      if (imp.version() <= 0 || imp.version() > INT_MAX) {
        return InvalidModel("opset import for domain '", domain, "' has invalid version ", imp.version());
      }
      graph_.set_opset_import(domain, static_cast<int>(imp.version()));
    }
    if (model_.opset_import_size() == 0) {
      // IR version 1-2 models predate opset_import and mean opset 1.
      return Unsupported("the model has no opset_import (pre-2017 ONNX), which kiln does not support");
    }
    int opset = graph_.default_opset();
    if (opset > kMaxSupportedOpset) {
      return Unsupported("the model imports ONNX opset ", opset, "; kiln supports opsets ", kMinSupportedOpset, "-",
                         kMaxSupportedOpset);
    }
    return Status::Ok();
  }

  Status AddInitializers(const onnx::GraphProto& g) {
    // Only the main graph's initializers were scanned for elision.
    const bool elided = uses_elided_ && parent_ == nullptr;
    if (elided && elided_.size() != static_cast<size_t>(g.initializer_size())) {
      return Internal("the model has ", g.initializer_size(), " initializers, the raw-data scan found ",
                      elided_.size());
    }
    for (int i = 0; i < g.initializer_size(); ++i) {
      const onnx::TensorProto& init = g.initializer(i);
      if (init.name().empty()) return InvalidModel("an initializer has no name");
      const ElidedRawData* raw = nullptr;
      if (elided && elided_[static_cast<size_t>(i)]) raw = &*elided_[static_cast<size_t>(i)];
      auto tensor = TensorFromProto(init, options_.base_dir, raw_owner_, raw);
      if (!tensor.ok()) return tensor.status().WithContext("initializer '" + init.name() + "'");
      KILN_ASSIGN_OR_RETURN(ValueId id,
                            graph_.AddValue(init.name(), tensor->dtype(), ShapeInfo::FromDims(tensor->dims())));
      graph_.value(id).constant = std::move(tensor).value();
    }
    if (g.sparse_initializer_size() > 0) return Unsupported("sparse initializers are not supported");
    return Status::Ok();
  }

  Status AddInputs(const onnx::GraphProto& g) {
    for (const auto& in : g.input()) {
      if (in.name().empty()) return InvalidModel("a graph input has no name");
      if (auto existing = graph_.FindValue(in.name())) {
        // IR < 4 lists initializers among the inputs; kiln treats them as
        // constants (an initializer is a default, never overridden here).
        if (graph_.value(*existing).constant) continue;
        return InvalidModel("graph input '", in.name(), "' is declared twice");
      }
      // A body's formal inputs may leave their type to the node that runs
      // the body (ONNX infers it from the Loop's or Scan's inputs).
      if (parent_ != nullptr && in.type().value_case() == onnx::TypeProto::VALUE_NOT_SET) {
        KILN_ASSIGN_OR_RETURN(ValueId id, graph_.AddValue(in.name()));
        graph_.AddInput(id);
        continue;
      }
      auto declared = DeclaredTypeFromProto(in.type());
      if (!declared.ok()) return declared.status().WithContext("graph input '" + in.name() + "'");
      for (const Dim& d : declared->shape.dims) {
        if (d.size > (int64_t{1} << 40)) {
          return InvalidModel("graph input '", in.name(), "' has an absurd dimension ", d.size);
        }
      }
      KILN_ASSIGN_OR_RETURN(ValueId id, graph_.AddValue(in.name(), declared->dtype, std::move(declared->shape)));
      graph_.value(id).kind = declared->kind;
      graph_.AddInput(id);
    }
    return Status::Ok();
  }

  Status AddNodeOutputs(const onnx::GraphProto& g) {
    for (const auto& n : g.node()) {
      for (const auto& out : n.output()) {
        if (out.empty()) continue;
        if (graph_.FindValue(out)) {
          return InvalidModel("value '", out, "' is defined more than once (again by node '", n.name(), "' ",
                              n.op_type(), ")");
        }
        KILN_RETURN_IF_ERROR(graph_.AddValue(out).status());
      }
    }
    return Status::Ok();
  }

  Status AddNodes(const onnx::GraphProto& g) {
    for (const auto& n : g.node()) {
      Node node;
      node.name = n.name();
      node.op_type = n.op_type();
      node.domain = n.domain() == "ai.onnx" ? "" : n.domain();
      auto opset_it = graph_.opset_imports().find(node.domain);
      if (opset_it == graph_.opset_imports().end()) {
        return InvalidModel(node.Describe(), " uses domain '", node.domain, "', which the model does not import");
      }
      node.opset = opset_it->second;
      for (const auto& in : n.input()) {
        if (in.empty()) {
          node.inputs.push_back(kNoValue);
          continue;
        }
        auto id = Resolve(in);
        if (!id) return InvalidModel(node.Describe(), " uses '", in, "', which no node, input or initializer defines");
        node.inputs.push_back(*id);
      }
      for (const auto& out : n.output()) {
        node.outputs.push_back(out.empty() ? kNoValue : *graph_.FindValue(out));
      }
      for (const auto& a : n.attribute()) {
        if (a.name().empty()) return InvalidModel(node.Describe(), " has an attribute without a name");
        auto attr = AttributeFromProto(a, options_.base_dir);
        if (!attr.ok()) return attr.status().WithContext(node.Describe());
        if (!node.attributes.emplace(a.name(), std::move(attr).value()).second) {
          return InvalidModel(node.Describe(), " has attribute '", a.name(), "' twice");
        }
      }
      // Bodies in attribute-name order: the order implicit inputs follow.
      for (auto& [attr_name, attr] : node.attributes) {
        if (attr.kind != Attribute::Kind::kGraph) continue;
        const auto proto = std::find_if(n.attribute().begin(), n.attribute().end(),
                                        [&](const onnx::AttributeProto& a) { return a.name() == attr_name; });
        if (depth_ + 1 > kMaxSubgraphDepth) {
          return InvalidModel(node.Describe(), ": sub-graphs nest more than ", kMaxSubgraphDepth, " deep");
        }
        auto body = BuildBody(proto->g(), node);
        if (!body.ok()) return body.status().WithContext(node.Describe() + " attribute '" + attr_name + "'");
        attr.g = std::move(body).value();
      }
      KILN_RETURN_IF_ERROR(CheckAttributesAgainstSchema(node));
      KILN_RETURN_IF_ERROR(graph_.AddNode(std::move(node)).status());
    }
    return Status::Ok();
  }

  Status AddOutputs(const onnx::GraphProto& g) {
    if (g.output_size() == 0) return InvalidModel("the graph has no outputs");
    for (const auto& out : g.output()) {
      auto id = Resolve(out.name());
      if (!id) return InvalidModel("graph output '", out.name(), "' is not defined by any node, input or initializer");
      graph_.AddOutput(*id);
    }
    return Status::Ok();
  }

  // Declared and inferred types: outputs and value_info. A declared dtype
  // kiln cannot represent is left undefined here; the kernel producing the
  // value reports it.
  void ApplyValueInfo(const onnx::GraphProto& g) {
    auto apply = [&](const onnx::ValueInfoProto& vi) {
      auto id = graph_.FindValue(vi.name());
      if (!id) return;
      Value& v = graph_.value(*id);
      if (v.constant || v.is_graph_input) return;
      if (!vi.type().has_tensor_type()) {
        auto declared = DeclaredTypeFromProto(vi.type());
        if (!declared.ok()) return;
        v.kind = declared->kind;
        v.dtype = declared->dtype;
        v.shape = std::move(declared->shape);
        return;
      }
      auto dtype = DTypeFromOnnx(vi.type().tensor_type().elem_type());
      if (dtype.ok()) v.dtype = *dtype;
      ShapeInfo shape = ShapeFromProto(vi.type());
      if (shape.rank_known) v.shape = std::move(shape);
    };
    for (const auto& vi : g.value_info()) apply(vi);
    for (const auto& vi : g.output()) apply(vi);
  }

  const onnx::ModelProto& model_;
  const LoadOptions& options_;
  GraphBuilder* parent_ = nullptr;  // the builder of the graph whose node owns this body
  int depth_ = 0;                   // 0 for the model's graph
  Graph graph_;
  std::shared_ptr<void> raw_owner_;  // null: initializers copy their data
  bool uses_elided_ = false;
  std::vector<std::optional<ElidedRawData>> elided_;  // see UseElidedRawData
};

// Parses `data` (the model, or with `elided` its copy without the elided
// raw data) and builds the graph. `model_size` is the whole model's, for
// messages.
StatusOr<Graph> ParseAndBuild(const void* data, size_t size, uint64_t model_size, const LoadOptions& options,
                              std::optional<std::vector<std::optional<ElidedRawData>>> elided = std::nullopt) {
  if (model_size == 0) return InvalidModel("the model is empty (0 bytes)");
  // Initializers share the parsed raw data, so the message lives as long as
  // the last of them.
  auto owned_model = std::make_shared<onnx::ModelProto>();
  onnx::ModelProto& model = *owned_model;
  if (!model.ParseFromArray(data, static_cast<int>(size))) {
    return InvalidModel("not a valid ONNX protobuf (truncated or corrupt, ", model_size, " bytes)");
  }
  if (!model.has_graph()) return InvalidModel("the model has no graph");
  if (model.graph().node_size() == 0 && model.graph().output_size() == 0) {
    return InvalidModel("the model's graph is empty");
  }
  // ONNX's inference fills in the shapes of intermediate values; kiln's own
  // checks report structural errors more precisely, so inference that cannot
  // run only means fewer static shapes, not a failed load.
  // Checked before inference, which recurses into every body.
  if (SubgraphDepth(model.graph(), kMaxSubgraphDepth) > kMaxSubgraphDepth) {
    return InvalidModel("sub-graphs (If/Loop/Scan bodies) nest more than ", kMaxSubgraphDepth, " deep");
  }
  if (options.infer_shapes) RunOnnxShapeInference(model);
  GraphBuilder builder(model, options);
  builder.ShareRawDataWith(std::move(owned_model));
  if (elided) builder.UseElidedRawData(std::move(*elided));
  return builder.Build();
}

// Elided weights are read on a thread of their own while the message is
// parsed when there are at least this many bytes of both: the overlap saves
// at most the shorter of the two, so for a few weights or a small graph
// (an MLP's few nodes) it saves less than starting and scheduling the thread
// costs, above all when every core is busy.
constexpr uint64_t kBackgroundReadBytes = uint64_t{1} << 20;
constexpr uint64_t kBackgroundReadMessageBytes = uint64_t{32} << 10;

// Protobuf parsing copies every raw_data field; large weights are read
// from `source` straight into memory of their own instead
// (raw_data_elision.h). nullopt when the scan gives up: the caller parses
// the whole model.
std::optional<StatusOr<Graph>> LoadElided(const ByteSource& source, const LoadOptions& options) {
  if (source.size() > static_cast<uint64_t>(INT_MAX)) return std::nullopt;
  std::optional<ElidedModel> elided = ElideInitializerRawData(source);
  if (!elided) return std::nullopt;
  // All of them in one buffer, each 64-byte aligned: a buffer of 2 MiB or
  // more gets transparent huge pages (Tensor::Allocate), so that writing
  // the weights costs one page fault per 2 MiB rather than per 4 KiB, which
  // is most of a load on virtual machines. The buffer lives as long as the
  // last of these initializers (one that a pass replaces keeps its bytes
  // until then); payloads lie within the model, so it is never larger.
  constexpr uint64_t kAlignment = 64;
  uint64_t total = 0;
  for (const std::optional<RawDataLocation>& raw : elided->initializer_raw_data) {
    if (raw) total += (raw->size + kAlignment - 1) / kAlignment * kAlignment;
  }
  StatusOr<Tensor> buffer = Tensor::Allocate(DType::kUint8, {static_cast<int64_t>(total)});
  if (!buffer.ok()) return StatusOr<Graph>(buffer.status().WithContext("the model's weights"));
  auto owner = std::make_shared<Tensor>(std::move(buffer).value());
  char* next = static_cast<char*>(owner->raw_data());
  std::vector<std::optional<ElidedRawData>> raw_data(elided->initializer_raw_data.size());
  // The reads in pieces that never share a 2 MiB page of the buffer, so
  // that two threads reading at once fault in (and the kernel zeroes)
  // pages of their own: zeroing the buffer's fresh pages costs about as
  // much as copying the weights into them.
  struct Piece {
    uint64_t from;
    size_t size;
    char* to;
  };
  constexpr uint64_t kPieceBytes = uint64_t{2} << 20;
  std::vector<Piece> pieces;
  char* const base = static_cast<char*>(owner->raw_data());
  for (size_t i = 0; i < raw_data.size(); ++i) {
    const std::optional<RawDataLocation>& raw = elided->initializer_raw_data[i];
    if (!raw) continue;
    raw_data[i] = ElidedRawData{next, raw->size, owner};
    for (uint64_t done = 0; done < raw->size;) {
      const uint64_t at = static_cast<uint64_t>(next - base) + done;
      const uint64_t size = std::min(raw->size - done, kPieceBytes - at % kPieceBytes);
      pieces.push_back({raw->offset + done, static_cast<size_t>(size), next + done});
      done += size;
    }
    next += (raw->size + kAlignment - 1) / kAlignment * kAlignment;
  }
  // Pieces are claimed one at a time by every thread that reads; the first
  // failure stops the others' claims.
  std::atomic<size_t> next_piece{0};
  std::atomic<size_t> failed_piece{pieces.size()};
  auto read_pieces = [&source, &pieces, &next_piece, &failed_piece] {
    for (size_t i = next_piece.fetch_add(1); i < pieces.size(); i = next_piece.fetch_add(1)) {
      if (failed_piece.load(std::memory_order_relaxed) != pieces.size()) return;
      const Piece& piece = pieces[i];
      if (!source.Read(piece.from, piece.size, piece.to)) {
        size_t none = pieces.size();
        failed_piece.compare_exchange_strong(none, i);
        return;
      }
    }
  };
  auto read_failure = [&pieces, &failed_piece] {
    const Piece& piece = pieces[failed_piece.load()];
    return IoError("reading ", piece.size, " bytes of weights at offset ", piece.from, " failed");
  };
  if (total < kBackgroundReadBytes || elided->bytes.size() < kBackgroundReadMessageBytes) {
    read_pieces();
    if (failed_piece.load() != pieces.size()) return StatusOr<Graph>(read_failure());
    return ParseAndBuild(elided->bytes.data(), elided->bytes.size(), source.size(), options, std::move(raw_data));
  }
  // Nothing reads an elided payload before the graph is built (GraphBuilder
  // only points tensors at them; the passes that read weights run after
  // loading), so a thread reads them while this one parses the rest, runs
  // ONNX's shape inference and builds the graph, and then reads what is
  // left beside it: a model's load then takes about the longer of the two,
  // or less, rather than their sum.
  StatusOr<Graph> graph = Internal("not built");
  {
    std::thread reader(read_pieces);
    // Joined on every way out, before `pieces` and the buffer can go.
    struct JoinOnExit {
      std::thread& thread;
      ~JoinOnExit() { thread.join(); }
    } join{reader};
    graph = ParseAndBuild(elided->bytes.data(), elided->bytes.size(), source.size(), options, std::move(raw_data));
    if (graph.ok()) read_pieces();
  }
  if (failed_piece.load() != pieces.size()) return StatusOr<Graph>(read_failure());
  return graph;
}

}  // namespace

StatusOr<Graph> LoadOnnxModel(const void* data, size_t size, const LoadOptions& options) {
  if (data == nullptr || size == 0) return InvalidModel("the model is empty (0 bytes)");
  if (size > static_cast<size_t>(INT_MAX)) {
    return Unsupported("models over 2 GiB must keep their weights in external data files");
  }
  const MemoryByteSource source(data, size);
  if (std::optional<StatusOr<Graph>> loaded = LoadElided(source, options)) return std::move(*loaded);
  return ParseAndBuild(data, size, size, options);
}

StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return InvalidArgument("'", path, "' is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    // Missing is kNotFound; there but unreadable (permissions) is an I/O error.
    if (!fs::exists(path, ec)) return NotFound("cannot open '", path, "'");
    return IoError("cannot open '", path, "' for reading");
  }
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) return IoError("cannot read the size of '", path, "'");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.seekg(0);
  in.read(bytes.data(), size);
  if (!in) return IoError("reading '", path, "' failed");
  return bytes;
}

StatusOr<Graph> LoadOnnxFile(const std::string& path) {
  LoadOptions options;
  options.base_dir = fs::path(path).parent_path().string();
  if (options.base_dir.empty()) options.base_dir = ".";
  // Read with pread, weights straight into their tensors: mapping the file
  // would touch each of its pages through the process's page tables, which
  // costs more than the copy on virtual machines.
  if (std::unique_ptr<FileByteSource> file = FileByteSource::Open(path)) {
    if (std::optional<StatusOr<Graph>> loaded = LoadElided(*file, options)) return std::move(*loaded);
  }
  // Anything else is parsed straight from the mapping: no copy of the file
  // in memory. MappedFile also names what is wrong with the path.
  KILN_ASSIGN_OR_RETURN(MappedFile bytes, MappedFile::Open(path));
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    return Unsupported("models over 2 GiB must keep their weights in external data files");
  }
  return ParseAndBuild(bytes.data(), bytes.size(), bytes.size(), options);
}

StatusOr<NamedProtoTensor> LoadTensorProtoFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  onnx::TensorProto proto;
  if (bytes.size() > static_cast<size_t>(INT_MAX) ||
      !proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return InvalidArgument("'", path, "' is not a serialized TensorProto");
  }
  KILN_ASSIGN_OR_RETURN(Tensor tensor, TensorFromProto(proto, fs::path(path).parent_path().string()));
  return NamedProtoTensor{proto.name(), std::move(tensor)};
}

namespace {

StatusOr<Tensor> SequenceFromProto(const onnx::SequenceProto& proto, DType element_dtype, const std::string& base_dir) {
  if (proto.elem_type() != onnx::SequenceProto::TENSOR && proto.elem_type() != onnx::SequenceProto::UNDEFINED) {
    return Unsupported("sequences of ", onnx::SequenceProto_DataType_Name(proto.elem_type()),
                       " are not supported, only sequences of tensors");
  }
  std::vector<Tensor> elements;
  for (const auto& t : proto.tensor_values()) {
    KILN_ASSIGN_OR_RETURN(Tensor element, TensorFromProto(t, base_dir));
    if (elements.empty() && element_dtype == DType::kUndefined) element_dtype = element.dtype();
    elements.push_back(std::move(element));
  }
  return MakeSequence(element_dtype, std::move(elements));
}

}  // namespace

StatusOr<NamedProtoTensor> LoadValueProtoFile(const std::string& path, ValueKind kind, DType element_dtype) {
  if (kind == ValueKind::kTensor) return LoadTensorProtoFile(path);
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  const std::string base_dir = fs::path(path).parent_path().string();
  if (bytes.size() > static_cast<size_t>(INT_MAX)) return InvalidArgument("'", path, "' is too large");
  if (kind == ValueKind::kSequence) {
    onnx::SequenceProto proto;
    if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return InvalidArgument("'", path, "' is not a serialized SequenceProto");
    }
    KILN_ASSIGN_OR_RETURN(Tensor sequence, SequenceFromProto(proto, element_dtype, base_dir));
    return NamedProtoTensor{proto.name(), std::move(sequence)};
  }
  onnx::OptionalProto proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return InvalidArgument("'", path, "' is not a serialized OptionalProto");
  }
  switch (proto.elem_type()) {
    case onnx::OptionalProto::UNDEFINED: return NamedProtoTensor{proto.name(), NoneOptional()};
    case onnx::OptionalProto::TENSOR: {
      if (!proto.has_tensor_value()) return NamedProtoTensor{proto.name(), NoneOptional()};
      KILN_ASSIGN_OR_RETURN(Tensor tensor, TensorFromProto(proto.tensor_value(), base_dir));
      return NamedProtoTensor{proto.name(), std::move(tensor)};
    }
    case onnx::OptionalProto::SEQUENCE: {
      if (!proto.has_sequence_value()) return NamedProtoTensor{proto.name(), NoneOptional()};
      KILN_ASSIGN_OR_RETURN(Tensor sequence, SequenceFromProto(proto.sequence_value(), element_dtype, base_dir));
      return NamedProtoTensor{proto.name(), std::move(sequence)};
    }
    default:
      return Unsupported("optionals of ", onnx::OptionalProto_DataType_Name(proto.elem_type()), " are not supported");
  }
}

}  // namespace kiln::graph
