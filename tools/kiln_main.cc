// The `kiln` command-line tool: `kiln run`, `kiln info`, `kiln dot`.
//
// A tool may exit on error (the library never does): every failure becomes
// one "kiln: error: ..." line on stderr and a non-zero exit code.
#include <charconv>
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "tools/kiln_cli.h"

namespace kiln::cli {

const char* UsageText() {
  return R"(usage: kiln <command> [options]

commands:
  run MODEL [options]     run a model and print its outputs' checksums and latency
      --input NAME=FILE.npy   an input from a .npy file (repeatable); inputs not
                              given get deterministic pseudo-random data
      --dim NAME=VALUE        bind a symbolic dim (e.g. --dim batch=1) for
                              generated inputs (repeatable)
      --output-dir DIR        write output i to DIR/output_<i>.npy
      --tier interp|jit|auto  execution tier (default auto)
      --graph-opt basic|all   load-time rewrites: basic keeps every op of the
                              model (no fused kernels); all also fuses
                              LayerNorm, GELU and epilogues (default all)
      --channels-last auto|on|off
                              run convolutional sub-graphs in NHWC: auto where
                              the host's convolutions prefer it (default auto)
      --iters N               timed runs after warmup (default 10)
      --warmup N              untimed runs after the first run (default 1)
      --threads N             intra-op threads, 0 = one per core (default 0)
      --report FILE.json      write timings and memory stats as JSON
      --profile               print per-node time (and add it to the report)
      --trace FILE.json       write a Chrome trace (Perfetto): a slice per node
                              or region run, by tier; JIT compiles on their own track
  info MODEL [--graph] [--regions] [--graph-opt basic|all] [--channels-last auto|on|off]
                          inputs, outputs, opset, op histogram, unsupported ops;
                          --graph also prints the graph as text, --regions the
                          JIT regions (members, inputs, outputs, why)
  dot MODEL [--no-constants] [--regions] [--graph-opt basic|all] [--channels-last auto|on|off]
                          the model's graph in Graphviz DOT format, on stdout;
                          --regions colours each JIT region

  kiln --help             this text
)";
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "kiln: error: %s\n", status.message().c_str());
  return kExitFailure;
}

int ReportError(const std::string& subject, const Status& status) {
  std::fprintf(stderr, "kiln: error: %s: %s\n", subject.c_str(), status.message().c_str());
  return kExitFailure;
}

int ReportUsageError(const std::string& message) {
  std::fprintf(stderr, "kiln: error: %s\n\n%s", message.c_str(), UsageText());
  return kExitUsage;
}

std::string ParsedArgs::Get(const std::string& flag, const std::string& fallback) const {
  auto it = values.find(flag);
  return it == values.end() || it->second.empty() ? fallback : it->second.back();
}

StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const std::set<std::string>& value_flags,
                               const std::set<std::string>& switch_flags) {
  ParsedArgs parsed;
  bool only_positional = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (only_positional || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      if (!only_positional && arg.size() > 1 && arg[0] == '-' && arg != "-h") {
        return InvalidArgument("unknown option '", arg, "'");
      }
      if (arg == "-h") {
        parsed.help = true;
        continue;
      }
      parsed.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "help") {
      parsed.help = true;
    } else if (switch_flags.count(name)) {
      if (has_value) return InvalidArgument("option '--", name, "' takes no value");
      parsed.switches.insert(name);
    } else if (value_flags.count(name)) {
      if (!has_value) {
        if (i + 1 >= args.size()) return InvalidArgument("option '--", name, "' needs a value");
        value = args[++i];
      }
      parsed.values[name].push_back(value);
    } else {
      return InvalidArgument("unknown option '--", name, "'");
    }
  }
  return parsed;
}

StatusOr<int64_t> ParseInt(const std::string& text, const std::string& what, int64_t min_value, int64_t max_value) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return InvalidArgument(what, " must be an integer, got '", text, "'");
  }
  if (value < min_value || value > max_value) {
    return InvalidArgument(what, " must be in [", min_value, ", ", max_value, "], got ", value);
  }
  return value;
}

StatusOr<LoadOptions> ParseLoadOptions(const ParsedArgs& args) {
  LoadOptions options;
  const std::string level = args.Get("graph-opt", "all");
  if (level == "basic") {
    options.graph_optimization = GraphOptimization::kBasic;
  } else if (level == "all") {
    options.graph_optimization = GraphOptimization::kAll;
  } else {
    return InvalidArgument("--graph-opt must be basic or all, got '", level, "'");
  }
  const std::string layout = args.Get("channels-last", "auto");
  if (layout == "auto") {
    options.channels_last = ChannelsLast::kAuto;
  } else if (layout == "on") {
    options.channels_last = ChannelsLast::kOn;
  } else if (layout == "off") {
    options.channels_last = ChannelsLast::kOff;
  } else {
    return InvalidArgument("--channels-last must be auto, on or off, got '", layout, "'");
  }
  return options;
}

StatusOr<std::shared_ptr<const Model>> LoadModel(const std::string& path, const LoadOptions& options) {
  // Model::Load already names the file in its errors.
  return Model::Load(path, options);
}

std::string FormatShape(const TensorInfo& info) {
  if (!info.rank_known) return "?";
  std::string out = "[";
  for (size_t i = 0; i < info.dims.size(); ++i) {
    if (i > 0) out += ", ";
    if (info.dims[i] >= 0) {
      out += std::to_string(info.dims[i]);
    } else if (i < info.dim_names.size() && !info.dim_names[i].empty()) {
      out += info.dim_names[i];
    } else {
      out += "?";
    }
  }
  return out + "]";
}

namespace {

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return ReportUsageError("no command given");
  const std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(UsageText(), stdout);
    return 0;
  }
  if (command == "run") return RunCommand(rest);
  if (command == "info") return InfoCommand(rest);
  if (command == "dot") return DotCommand(rest);
  return ReportUsageError("unknown command '" + command + "'");
}

}  // namespace
}  // namespace kiln::cli

int main(int argc, char** argv) {
  // kiln's library reports errors as Status values; a C++ exception here
  // would come from a dependency (protobuf, std::bad_alloc), and still
  // deserves one line rather than an abort.
  try {
    return kiln::cli::Main(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kiln: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
  }
  return kiln::cli::kExitFailure;
}
