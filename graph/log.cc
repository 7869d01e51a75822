#include "graph/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace kiln {

spdlog::logger& Log() {
  // The only global mutable state kiln has, by design: one logger, created
  // thread-safely on first use and writing to stderr.
  static const std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_color_mt("kiln");
    l->set_level(spdlog::level::warn);
    if (const char* env = std::getenv("KILN_LOG_LEVEL"); env != nullptr && *env != '\0') {
      auto level = spdlog::level::from_str(env);
      // from_str maps unknown names to "off"; only accept real names.
      if (level != spdlog::level::off || std::string(env) == "off") l->set_level(level);
    }
    return l;
  }();
  return *logger;
}

bool SetLogLevel(const std::string& level_name) {
  auto level = spdlog::level::from_str(level_name);
  if (level == spdlog::level::off && level_name != "off") return false;
  Log().set_level(level);
  return true;
}

}  // namespace kiln
