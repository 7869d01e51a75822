// The `kiln` command-line tool's entry point: `kiln run`, `kiln info`,
// `kiln dot`, `kiln version`.
//
// A tool may exit on error (the library never does): every failure becomes
// one "kiln: error: ..." line on stderr and a non-zero exit code.
//
// Everything else in kiln is compiled for x86-64-v3 (AVX2, FMA; see
// .bazelrc). This file and the help texts alone are compiled for baseline
// x86-64 (tools/BUILD), so that on an older CPU the tool can still print
// its help and version and say what the CPU is missing, instead of dying
// on an illegal instruction. Until the host check has passed, the code here
// calls nothing else of kiln's but Version() and CheckHostCpu() (itself
// compiled for baseline x86-64).
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "kiln/session.h"
#include "kiln/version.h"
#include "tools/kiln_cli.h"

namespace kiln::cli {
namespace {

bool IsHelp(const char* arg) {
  return std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0 || std::strcmp(arg, "help") == 0;
}

bool IsVersion(const char* arg) { return std::strcmp(arg, "--version") == 0 || std::strcmp(arg, "version") == 0; }

// kiln's version, and whether this host can run it (the one thing about
// the CPU that the public API answers).
int PrintVersion() {
  std::printf("kiln %s\n", Version());
  const Status cpu = CheckHostCpu();
  if (cpu.ok()) {
    std::printf("host cpu: supported (kiln's kernels need x86-64-v3: AVX2, FMA)\n");
  } else {
    std::printf("host cpu: not supported: %s\n", cpu.message().c_str());
  }
  return 0;
}

// ReportUsageError's twin for the checks before the host check, which must
// not call into code compiled for x86-64-v3.
int EarlyUsageError(const char* message) {
  std::fprintf(stderr, "kiln: error: %s\n\n%s", message, MainUsage());
  return kExitUsage;
}

int Main(int argc, char** argv) {
  if (argc < 2) return EarlyUsageError("no command given");
  // Help and version only print text, so they work on any CPU: a user on an
  // unsupported host can still find out which kiln this is and why not.
  if (IsHelp(argv[1])) {
    std::fputs(MainUsage(), stdout);
    return 0;
  }
  if (IsVersion(argv[1])) {
    if (argc > 2) return EarlyUsageError("version takes no arguments");
    return PrintVersion();
  }
  // Before any code compiled for x86-64-v3 runs.
  if (const Status cpu = CheckHostCpu(); !cpu.ok()) return ReportError(cpu);

  const std::string command = argv[1];
  const std::vector<std::string> rest(argv + 2, argv + argc);
  if (command == "run") return RunCommand(rest);
  if (command == "info") return InfoCommand(rest);
  if (command == "dot") return DotCommand(rest);
  return ReportUsageError("unknown command '" + command + "'", MainUsage());
}

}  // namespace
}  // namespace kiln::cli

int main(int argc, char** argv) {
  // kiln's library reports errors as Status values; a C++ exception here
  // would come from a dependency (protobuf, std::bad_alloc, std::thread),
  // and still deserves one line rather than an abort.
  try {
    return kiln::cli::Main(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "kiln: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
  }
  return kiln::cli::kExitFailure;
}
