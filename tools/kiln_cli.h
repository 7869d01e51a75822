// Shared pieces of the `kiln` command-line tool: argument parsing, error
// reporting, help texts and the subcommand entry points.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "kiln/status.h"

namespace kiln::cli {

// Exit codes: 0 success, 1 the work failed (bad model, bad input, a failing
// run), 2 the command line itself is wrong.
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints the one-line error "kiln: error: <message>" to stderr and returns
// kExitFailure. The message should start with the file it concerns.
int ReportError(const Status& status);
// Same, prefixing the message with `subject: `.
int ReportError(const std::string& subject, const Status& status);
// Prints "kiln: error: <message>" and then `usage` (the command's help
// text) to stderr; returns kExitUsage.
int ReportUsageError(const std::string& message, const char* usage);

// Help texts (kiln_usage.cc): the command list, and each command's options.
const char* MainUsage();
const char* RunUsage();
const char* InfoUsage();
const char* DotUsage();

// A subcommand's parsed command line. Flags are "--name VALUE" or
// "--name=VALUE" (or bare "--name" for switches); everything else is
// positional.
struct ParsedArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;  // repeatable flags keep every value
  std::set<std::string> switches;
  bool help = false;

  // The last value of `flag`, or `fallback` when absent.
  std::string Get(const std::string& flag, const std::string& fallback = "") const;
  bool Has(const std::string& flag) const { return values.count(flag) != 0; }
};

// Parses `args` (after the subcommand name). `value_flags` take a value,
// `switch_flags` do not. An unknown flag or a missing value is an
// InvalidArgument naming it.
StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args, const std::set<std::string>& value_flags,
                               const std::set<std::string>& switch_flags);

// Parses a whole decimal integer in [min_value, max_value]; the error names
// `what`.
StatusOr<int64_t> ParseInt(const std::string& text, const std::string& what, int64_t min_value, int64_t max_value);

// Parses a decimal number of seconds in (0, max_seconds] ("2", "0.5"); the
// error names `what`.
StatusOr<double> ParseSeconds(const std::string& text, const std::string& what, double max_seconds);

// The load options from --graph-opt basic|all (default all) and
// --channels-last auto|on|off (default auto).
StatusOr<LoadOptions> ParseLoadOptions(const ParsedArgs& args);

// Loads a model, returning errors that already name the file.
StatusOr<std::shared_ptr<const Model>> LoadModel(const std::string& path, const LoadOptions& options);

int RunCommand(const std::vector<std::string>& args);
int InfoCommand(const std::vector<std::string>& args);
int DotCommand(const std::vector<std::string>& args);

}  // namespace kiln::cli
