// Command-line parsing and error reporting shared by the `kiln`
// subcommands.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "tools/kiln_cli.h"

namespace kiln::cli {

int ReportError(const Status& status) {
  std::fprintf(stderr, "kiln: error: %s\n", status.message().c_str());
  return kExitFailure;
}

int ReportError(const std::string& subject, const Status& status) {
  std::fprintf(stderr, "kiln: error: %s: %s\n", subject.c_str(), status.message().c_str());
  return kExitFailure;
}

int ReportUsageError(const std::string& message, const char* usage) {
  std::fprintf(stderr, "kiln: error: %s\n\n%s", message.c_str(), usage);
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

StatusOr<double> ParseSeconds(const std::string& text, const std::string& what, double max_seconds) {
  double value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || !std::isfinite(value)) {
    return InvalidArgument(what, " must be a number of seconds, got '", text, "'");
  }
  if (value <= 0 || value > max_seconds) {
    return InvalidArgument(what, " must be more than 0 and at most ", max_seconds, " seconds, got ", text);
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

}  // namespace kiln::cli
