#include "runtime/hot_set_manifest.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "graph/atomic_file.h"
#include "graph/log.h"
#include "graph/printer.h"
#include "jit/persistent_code_cache.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[] = "kiln hot set 1";
constexpr char kSuffix[] = ".hotset";
// A manifest is a few lines per region; anything longer is not one.
constexpr std::streamsize kMaxBytes = 1 << 20;
constexpr size_t kMaxRank = 16;

bool ParseDims(const std::string& text, Dims& dims) {
  // "[]" or "[d0,d1,...]" with non-negative decimal sizes.
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') return false;
  dims.clear();
  const std::string body = text.substr(1, text.size() - 2);
  if (body.empty()) return true;
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find(',', start);
    if (end == std::string::npos) end = body.size();
    const std::string digits = body.substr(start, end - start);
    if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    dims.push_back(std::strtoll(digits.c_str(), nullptr, 10));
    if (dims.size() > kMaxRank) return false;
    start = end + 1;
  }
  return true;
}

std::string EntryLine(const HotSetManifest::Entry& entry) {
  return std::to_string(entry.region) + (entry.generic ? " generic " : " specialized ") + entry.signature.ToString();
}

}  // namespace

void HotSetManifest::Bind(const std::string& fingerprint) {
  MutexLock lock(mu_);
  path_ = (fs::path(dir_) / (fingerprint + kSuffix)).string();
  if (!recorded_.empty()) WriteLocked();
}

std::string HotSetManifest::path() const {
  MutexLock lock(mu_);
  return path_;
}

std::string HotSetManifest::Fingerprint(const graph::Graph& graph, const std::vector<graph::Region>& regions) {
  std::string text = graph::PrintGraph(graph);
  for (const graph::Region& region : regions) {
    text += "region " + std::to_string(region.id) + " kind " + std::to_string(static_cast<int>(region.kind)) +
            " row_axis " + std::to_string(region.row_axis) + " path '" + region.path + "' nodes";
    for (graph::NodeId node : region.nodes) text += " " + std::to_string(node);
    text += " inputs";
    for (graph::ValueId value : region.inputs) text += " " + std::to_string(value);
    text += "\n";
  }
  return jit::ContentHash(text);
}

bool HotSetManifest::ParseSignature(const std::string& text, ShapeSignature& signature) {
  signature.dims.clear();
  if (text.empty()) return true;  // a region without inputs
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string::npos) end = text.size();
    Dims dims;
    if (!ParseDims(text.substr(start, end - start), dims)) return false;
    signature.dims.push_back(std::move(dims));
    start = end + 1;
  }
  return true;
}

std::vector<HotSetManifest::Entry> HotSetManifest::Read() const {
  MutexLock lock(mu_);
  return ReadLocked();
}

std::vector<HotSetManifest::Entry> HotSetManifest::ReadLocked() const {
  std::vector<Entry> entries;
  if (path_.empty()) return entries;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return entries;
  // Read in small pieces: a manifest is usually a few hundred bytes.
  std::string contents;
  char piece[4096];
  while (in.read(piece, sizeof(piece)) || in.gcount() > 0) {
    contents.append(piece, static_cast<size_t>(in.gcount()));
    if (static_cast<std::streamsize>(contents.size()) > kMaxBytes) {
      Log().warn("jit hot set: {} is over {} bytes; ignored", path_, kMaxBytes);
      return entries;
    }
  }
  std::istringstream lines(contents);
  std::string line;
  if (!std::getline(lines, line) || line != kMagic) {
    Log().warn("jit hot set: {} is not a hot-set file of this format; ignored", path_);
    return entries;
  }
  int malformed = 0;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string region, kind, signature;
    fields >> region >> kind >> signature;
    Entry entry;
    const bool region_ok =
        !region.empty() && region.size() < 10 && region.find_first_not_of("0123456789") == std::string::npos;
    if (!region_ok || (kind != "generic" && kind != "specialized") || !ParseSignature(signature, entry.signature)) {
      ++malformed;
      continue;
    }
    entry.region = std::atoi(region.c_str());
    entry.generic = kind == "generic";
    entries.push_back(std::move(entry));
  }
  if (malformed > 0) Log().warn("jit hot set: skipped {} malformed lines of {}", malformed, path_);
  return entries;
}

void HotSetManifest::Record(const Entry& entry) {
  MutexLock lock(mu_);
  if (!recorded_.insert(entry).second || path_.empty()) return;
  WriteLocked();
}

void HotSetManifest::WriteLocked() {
  // Merge with what other processes (and earlier sessions) wrote.
  std::set<Entry> all(recorded_);
  for (Entry& e : ReadLocked()) all.insert(std::move(e));
  std::string text = std::string(kMagic) + "\n";
  for (const Entry& e : all) text += EntryLine(e) + "\n";

  const Status written = graph::WriteFileAtomically(path_, text);
  if (!written.ok()) Log().warn("jit hot set: {}", written.message());
}

bool SignatureFitsRegion(const graph::Graph& graph, const graph::Region& region, const ShapeSignature& signature) {
  if (signature.dims.size() != region.inputs.size()) return false;
  for (size_t i = 0; i < region.inputs.size(); ++i) {
    const graph::ShapeInfo& shape = graph.value(region.inputs[i]).shape;
    if (!shape.rank_known) continue;
    const Dims& dims = signature.dims[i];
    if (dims.size() != shape.dims.size()) return false;
    for (size_t d = 0; d < dims.size(); ++d) {
      if (shape.dims[d].is_concrete() && shape.dims[d].size != dims[d]) return false;
    }
  }
  return true;
}

}  // namespace kiln::runtime
