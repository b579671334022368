// threads.cpp: the process-wide oneTBB global_control that caps parallelism.
#include "core/threads.hpp"

#include <tbb/global_control.h>
#include <tbb/info.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "core/error.hpp"

namespace bitgrad::core {

namespace {
std::mutex g_mutex;
std::unique_ptr<tbb::global_control> g_control;  // the one documented piece of global state
}  // namespace

void set_num_threads(int n) {
  check_lazy(n >= 1, [&] { return "threads: expected at least 1 thread, got " + std::to_string(n); });
  std::lock_guard<std::mutex> lock(g_mutex);
  g_control.reset();
  g_control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    static_cast<size_t>(n));
}

int num_threads() {
  return static_cast<int>(
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

void init_threads_from_env() {
  const char* v = std::getenv("BITGRAD_THREADS");
  if (v == nullptr || *v == '\0') return;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  check_lazy(end != nullptr && *end == '\0' && n >= 1 && n <= 4096, [&] {
    return std::string("BITGRAD_THREADS: expected a positive integer, got '") + v + "'";
  });
  set_num_threads(static_cast<int>(n));
}

}  // namespace bitgrad::core
