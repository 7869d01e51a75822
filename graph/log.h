// kiln's one named spdlog logger ("kiln"). Its level comes from
// KILN_LOG_LEVEL (trace, debug, info, warn, error, off) and defaults to warn;
// a session option may raise or lower it.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace kiln {

spdlog::logger& Log();
// Sets the logger's level from a name; returns false for an unknown name.
bool SetLogLevel(const std::string& level_name);

}  // namespace kiln
