#include "jit/persistent_code_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "graph/atomic_file.h"
#include "graph/log.h"

namespace kiln::jit {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[] = "KILN-JIT-OBJECT 1";
constexpr char kSuffix[] = ".kobj";

uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

// One lane: 8 bytes at a time, multiply-rotate, finalised with the length.
uint64_t HashLane(const std::string& bytes, uint64_t seed, uint64_t multiplier) {
  uint64_t h = seed;
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    h = (h ^ Mix(word + seed)) * multiplier;
    h = (h << 29) | (h >> 35);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
  h = (h ^ Mix(tail ^ (bytes.size() - i))) * multiplier;
  return Mix(h ^ bytes.size());
}

std::string Hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// "name=value" lines, ended by an empty line.
std::string Header(const std::string& fingerprint, const std::string& key_hash, const std::string& symbol,
                   const std::string& object) {
  std::ostringstream h;
  h << kMagic << "\n"
    << "fingerprint=" << fingerprint << "\n"
    << "key=" << key_hash << "\n"
    << "symbol=" << symbol << "\n"
    << "size=" << object.size() << "\n"
    << "checksum=" << ContentHash(object) << "\n\n";
  return h.str();
}

}  // namespace

std::string ContentHash(const std::string& bytes) {
  return Hex(HashLane(bytes, 0x9e3779b97f4a7c15ull, 0x100000001b3ull)) +
         Hex(HashLane(bytes, 0xd6e8feb86659fd93ull, 0x9fb21c651e98df25ull));
}

StatusOr<std::unique_ptr<PersistentCodeCache>> PersistentCodeCache::Open(const std::string& dir,
                                                                         std::string fingerprint, int64_t max_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return IoError("JIT code cache: cannot create folder '", dir, "'", ec ? ": " + ec.message() : "");
  }
  return std::unique_ptr<PersistentCodeCache>(new PersistentCodeCache(dir, std::move(fingerprint), max_bytes));
}

std::string PersistentCodeCache::PathFor(const std::string& key) const {
  return (fs::path(dir_) / (ContentHash(fingerprint_ + '\0' + key) + kSuffix)).string();
}

void PersistentCodeCache::Reject(const std::string& path, const std::string& why) {
  rejected_.fetch_add(1, std::memory_order_relaxed);
  if (!warned_.exchange(true)) {
    Log().warn("jit cache: ignoring entry {}: {} (further rejections are logged at debug)", path, why);
  } else {
    Log().debug("jit cache: ignoring entry {}: {}", path, why);
  }
}

std::optional<PersistentCodeCache::Entry> PersistentCodeCache::Find(const std::string& key) {
  const std::string path = PathFor(key);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t end = contents.find("\n\n");
  if (end == std::string::npos) {
    Reject(path, "no complete header");
    return std::nullopt;
  }
  std::istringstream header(contents.substr(0, end + 1));
  std::string line, magic;
  std::getline(header, magic);
  std::string fingerprint, key_hash, symbol, checksum;
  int64_t size = -1;
  while (std::getline(header, line)) {
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string name = line.substr(0, eq), value = line.substr(eq + 1);
    if (name == "fingerprint") fingerprint = value;
    if (name == "key") key_hash = value;
    if (name == "symbol") symbol = value;
    if (name == "checksum") checksum = value;
    if (name == "size") size = std::atoll(value.c_str());
  }
  Entry entry;
  entry.symbol = symbol;
  entry.object = contents.substr(end + 2);
  if (magic != kMagic) {
    Reject(path, "not a kiln JIT entry of this format");
  } else if (fingerprint != fingerprint_) {
    Reject(path, "built for '" + fingerprint + "', not this host and build");
  } else if (key_hash != ContentHash(key)) {
    Reject(path, "written for another region");
  } else if (size != static_cast<int64_t>(entry.object.size())) {
    Reject(path, "truncated: " + std::to_string(entry.object.size()) + " of " + std::to_string(size) + " bytes");
  } else if (checksum != ContentHash(entry.object) || symbol.empty()) {
    Reject(path, "checksum mismatch");
  } else {
    hits_.fetch_add(1, std::memory_order_relaxed);
    // A hit makes the entry the most recently used for eviction.
    ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
    return entry;
  }
  return std::nullopt;
}

void PersistentCodeCache::Store(const std::string& key, const Entry& entry) {
  const Status written = graph::WriteFileAtomically(
      PathFor(key), Header(fingerprint_, ContentHash(key), entry.symbol, entry.object) + entry.object);
  if (!written.ok()) {
    Log().warn("jit cache: {}", written.message());
    return;
  }
  writes_.fetch_add(1, std::memory_order_relaxed);
  EvictToCap();
}

void PersistentCodeCache::EvictToCap() {
  struct File {
    fs::path path;
    fs::file_time_type time;
    int64_t bytes;
  };
  std::vector<File> files;
  int64_t total = 0;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (const auto& item : fs::directory_iterator(dir_, ec)) {
    if (item.path().filename().string().find(std::string(kSuffix) + ".tmp.") != std::string::npos) {
      // A writer that died between writing and renaming left this; one
      // still writing renames within seconds.
      std::error_code item_ec;
      if (now - item.last_write_time(item_ec) > std::chrono::hours(1) && !item_ec) fs::remove(item.path(), item_ec);
      continue;
    }
    if (item.path().extension() != kSuffix) continue;
    std::error_code item_ec;
    const auto bytes = static_cast<int64_t>(item.file_size(item_ec));
    const auto time = item.last_write_time(item_ec);
    if (item_ec) continue;  // another process removed it meanwhile
    files.push_back({item.path(), time, bytes});
    total += bytes;
  }
  if (total <= max_bytes_) return;
  std::sort(files.begin(), files.end(), [](const File& a, const File& b) { return a.time < b.time; });
  for (const File& f : files) {
    if (total <= max_bytes_) break;
    fs::remove(f.path, ec);
    total -= f.bytes;
    Log().debug("jit cache: evicted {} ({} bytes)", f.path.string(), f.bytes);
  }
}

PersistentCodeCache::Counters PersistentCodeCache::counters() const {
  return {hits_.load(), misses_.load(), rejected_.load(), writes_.load()};
}

}  // namespace kiln::jit
