// bench_threads.hpp: the thread count every bitgrad benchmark runs with: BITGRAD_THREADS when set (as
// the library reads it, core/threads.hpp), else 2 (the cores of the machines these figures come from).
#pragma once

#include <cstdlib>

#include "core/threads.hpp"

namespace bitgrad::bench {

inline void init_bench_threads() {
  const char* env = std::getenv("BITGRAD_THREADS");
  if (env != nullptr && *env != '\0')
    core::init_threads_from_env();
  else
    core::set_num_threads(2);
}

}  // namespace bitgrad::bench
