// Loads an ONNX model with libkiln, runs it once on a fixed ramp input and
// prints each output's shape and first values.
//
//   kiln_consumer MODEL.onnx
//
// Dims the model leaves open are taken as 1. Only kiln's installed public
// headers are used; see CMakeLists.txt for how it is built.
#include <cstdio>
#include <string>
#include <vector>

#include <kiln/session.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
    return 2;
  }
  // The headers this was compiled with against the library it loaded.
  const std::string headers = std::to_string(KILN_VERSION_MAJOR) + "." + std::to_string(KILN_VERSION_MINOR) + "." +
                              std::to_string(KILN_VERSION_PATCH);
  std::printf("kiln %s (headers %s)\n", kiln::Version(), headers.c_str());

  kiln::StatusOr<std::shared_ptr<const kiln::Model>> model = kiln::Model::Load(argv[1]);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  kiln::StatusOr<std::unique_ptr<kiln::Session>> session = kiln::Session::Create(*model);
  if (!session.ok()) {
    std::fprintf(stderr, "%s\n", session.status().ToString().c_str());
    return 1;
  }

  std::vector<kiln::NamedTensor> inputs;
  for (const kiln::TensorInfo& info : (*model)->inputs()) {
    if (info.dtype != kiln::DType::kFloat32) {
      std::fprintf(stderr, "input %s is %s; this example feeds float32 only\n", info.name.c_str(),
                   kiln::DTypeName(info.dtype));
      return 1;
    }
    kiln::Dims dims = info.dims;
    for (int64_t& dim : dims) dim = dim < 0 ? 1 : dim;
    kiln::StatusOr<kiln::Tensor> tensor = kiln::Tensor::Allocate(kiln::DType::kFloat32, dims);
    if (!tensor.ok()) {
      std::fprintf(stderr, "%s\n", tensor.status().ToString().c_str());
      return 1;
    }
    float* data = tensor->data<float>();
    for (int64_t i = 0; i < tensor->num_elements(); ++i) data[i] = static_cast<float>(i % 17) / 17.0f - 0.5f;
    inputs.push_back({info.name, std::move(*tensor)});
  }

  kiln::StatusOr<std::vector<kiln::NamedTensor>> outputs = (*session)->Run(inputs);
  if (!outputs.ok()) {
    std::fprintf(stderr, "%s\n", outputs.status().ToString().c_str());
    return 1;
  }
  for (const kiln::NamedTensor& output : *outputs) {
    std::printf("%s %s %s:", output.name.c_str(), kiln::DTypeName(output.tensor.dtype()),
                kiln::DimsToString(output.tensor.dims()).c_str());
    if (output.tensor.dtype() == kiln::DType::kFloat32) {
      for (int64_t i = 0; i < output.tensor.num_elements() && i < 4; ++i) {
        std::printf(" %g", output.tensor.data<float>()[i]);
      }
    }
    std::printf("\n");
  }
  return 0;
}
