// blocks.cpp: the fixed-block loops of quant/blocks.hpp on oneTBB.
#include "quant/blocks.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>

namespace bitgrad::quant {

void parallel_blocks(int64_t n, const std::function<void(int64_t, int64_t)>& body) {
  if (n < kParallelMin) {
    body(int64_t{0}, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, kBlockSize),
                    [&](const tbb::blocked_range<int64_t>& r) { body(r.begin(), r.end()); });
}

void for_each_block(int64_t n, const std::function<void(int64_t, int64_t, int64_t)>& body) {
  const int64_t blocks = (n + kBlockSize - 1) / kBlockSize;
  const auto run = [&](int64_t block) {
    body(block, block * kBlockSize, std::min(n, (block + 1) * kBlockSize));
  };
  if (n < kParallelMin) {
    for (int64_t block = 0; block < blocks; ++block) run(block);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, blocks, 1), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t block = r.begin(); block < r.end(); ++block) run(block);
  });
}

double block_sum(int64_t n, const std::function<double(int64_t, int64_t)>& body) {
  return block_sums<1>(n, [&](int64_t begin, int64_t end, std::array<double, 1>& acc) {
    acc[0] += body(begin, end);
  })[0];
}

double dot(const float* a, const float* b, int64_t n) {
  return block_sum(n, [&](int64_t begin, int64_t end) {
    float partial = 0.0f;
    for (int64_t i = begin; i < end; ++i) partial += a[i] * b[i];
    return static_cast<double>(partial);
  });
}

}  // namespace bitgrad::quant
