// memory.hpp: the process's resident memory, for reports (`bitgrad train` logs peak RSS) and for the
// test that training does not grow memory step after step. Linux: /proc/self/statm and getrusage.
// Tensor storage's own accounting (live, peak and cached bytes) is core::storage_stats() in tensor.hpp.
#pragma once

#include <cstdint>

namespace bitgrad::core {

int64_t resident_bytes();       // current resident set size; 0 if /proc/self/statm is unreadable
int64_t peak_resident_bytes();  // the largest resident set size so far (getrusage ru_maxrss)

}  // namespace bitgrad::core
