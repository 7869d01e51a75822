// The versions a model's regions were compiled for, kept beside the
// persistent code cache (SessionOptions::jit_cache_dir) so that a new process
// running the same model (another replica, a restart) queues those compiles
// when its session is created, instead of waiting for each region to turn
// hot again. With the cache warm they are links, not compiles: compiled code
// serves as soon as linking is done, often from the first runs.
//
// What is kept. One file per model partition, `<dir>/<fingerprint>.hotset`,
// named by a hash of the partitioned graph's text (ops, attributes, shapes,
// the regions' kinds and nodes; not the weights, which the code cache's keys
// cover). Each line names a region by id and a signature it was compiled
// for, or that its shape-generic version was. The file is a hint: an entry
// that does not fit the region (another model with the same fingerprint, a
// damaged file) is skipped with a log line, and the compile it names still
// goes through verification and the trial like any other.
//
// Sharing. Recording rewrites the file through a temporary file and a
// rename, merging what is on disk, so readers see a whole file. Two
// processes recording at the same moment may lose one of their entries: the
// next compile of it records it again.
//
// Thread safety: every member may be called from any thread.
#pragma once

#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "graph/graph.h"
#include "graph/mutex.h"
#include "graph/region.h"
#include "runtime/shape_signature.h"

namespace kiln::runtime {

class HotSetManifest {
 public:
  struct Entry {
    int region = 0;
    ShapeSignature signature;
    // The region's shape-generic version, planned on `signature`.
    bool generic = false;

    bool operator<(const Entry& o) const {
      return std::tie(region, generic, signature) < std::tie(o.region, o.generic, o.signature);
    }
  };

  // A manifest in `dir`, for a model named later by Bind. Touches nothing.
  explicit HotSetManifest(std::string dir) : dir_(std::move(dir)) {}

  // A hash of `graph` and its regions (ids as the tier serves them, each with
  // the graph it belongs to): equal for the same model partitioned the same
  // way, in any process.
  static std::string Fingerprint(const graph::Graph& graph, const std::vector<graph::Region>& regions);

  // Names the model: its partition's Fingerprint. Computing that takes a
  // moment on a large graph, so the tier does it on its compile thread
  // rather than in Session::Create. Entries recorded before are written now.
  void Bind(const std::string& fingerprint);

  // The entries on disk that are well formed; none when the file is missing
  // or the manifest is not bound yet. Malformed lines are skipped and logged
  // once per call.
  std::vector<Entry> Read() const;

  // Adds `entry` to the file unless this manifest recorded it already.
  // Failures (a read-only folder, a full disk) are logged and otherwise
  // ignored: the manifest is an optimisation.
  void Record(const Entry& entry);

  // The file's path; empty until bound.
  std::string path() const;

  // Parses ShapeSignature::ToString's form ("[1,16];[16];[]"); false on
  // anything else. Exposed for tests.
  static bool ParseSignature(const std::string& text, ShapeSignature& signature);

 private:
  std::vector<Entry> ReadLocked() const KILN_REQUIRES(mu_);
  // Rewrites the file with recorded_ and what is on disk.
  void WriteLocked() KILN_REQUIRES(mu_);

  const std::string dir_;
  mutable Mutex mu_;
  std::string path_ KILN_GUARDED_BY(mu_);
  std::set<Entry> recorded_ KILN_GUARDED_BY(mu_);
};

// Whether `signature` can be one of `region`'s in `graph`: one dims per
// region input, each of its value's rank, equal to the value's dims where
// those are known.
bool SignatureFitsRegion(const graph::Graph& graph, const graph::Region& region, const ShapeSignature& signature);

}  // namespace kiln::runtime
