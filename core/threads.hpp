// threads.hpp: how many worker threads bitgrad's parallel loops (oneTBB) may use.
// The limit is process-wide (oneTBB's global_control): set it once at start-up. Default: the
// BITGRAD_THREADS environment variable when set, else all hardware threads. Not here: thread pools of
// our own; all parallelism goes through oneTBB.
#pragma once

namespace bitgrad::core {

// Sets the maximum number of threads (>= 1) used by parallel loops from now on. Throws Error for n < 1.
void set_num_threads(int n);
// The current limit.
int num_threads();
// Applies BITGRAD_THREADS when it is set (throws Error when it is not a positive integer). Called by
// the CLI at start-up; libraries embedding bitgrad may call it or set_num_threads themselves.
void init_threads_from_env();

}  // namespace bitgrad::core
