// error.cpp: check() and its optional source-location suffix.
#include "core/error.hpp"

#include <cstdlib>
#include <string_view>

namespace bitgrad {

void check(bool cond, const std::string& message, std::source_location where) {
  if (cond) return;
  static const bool with_location = [] {
    const char* v = std::getenv("BITGRAD_ERROR_LOCATION");
    return v != nullptr && std::string_view(v) == "1";
  }();
  if (!with_location) throw Error(message);
  throw Error(message + " [" + where.file_name() + ":" + std::to_string(where.line()) + "]");
}

}  // namespace bitgrad
