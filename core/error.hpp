// error.hpp: bitgrad::Error, the one exception type for user-facing failures, and check().
// Use check() at API boundaries (shapes, arguments, files); internal invariants use assert.
// Not here: status codes, logging, or process exit.
#pragma once

#include <source_location>
#include <stdexcept>
#include <string>

namespace bitgrad {

// Thrown for bad input: wrong shapes, bad arguments, missing or corrupt files, non-finite losses.
// The message says what was expected and what was found; it is meant to be printed as one line.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error(message) when cond is false. The source location is kept for debugging builds only
// (BITGRAD_ERROR_LOCATION=1 in the environment appends "[file:line]").
void check(bool cond, const std::string& message,
           std::source_location where = std::source_location::current());

// As check(), but builds the message only on failure: check_lazy(cond, [&] { return "..."; }).
template <typename MakeMessage>
void check_lazy(bool cond, MakeMessage&& make_message,
                std::source_location where = std::source_location::current()) {
  if (!cond) check(false, make_message(), where);
}

}  // namespace bitgrad
