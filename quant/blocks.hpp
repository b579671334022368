// blocks.hpp: the fixed-block loops the quantizers' element-wise passes share. Elements are cut into
// blocks of kBlockSize; passes over at least kParallelMin elements run the blocks on oneTBB. Sums are
// kept per block and added in block order, so they do not depend on the thread count (DESIGN.md §3.2).
// Not here: the quantizers' arithmetic (quant/<name>.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace bitgrad::quant {

inline constexpr int64_t kBlockSize = int64_t{1} << 14;
inline constexpr int64_t kParallelMin = int64_t{1} << 16;  // below this, waking threads costs more

// body(begin, end) over [0, n) in block-sized pieces (in parallel when n >= kParallelMin).
void parallel_blocks(int64_t n, const std::function<void(int64_t, int64_t)>& body);

// body(block, begin, end) for block = 0 .. ceil(n / kBlockSize) - 1, each [begin, end) that block.
void for_each_block(int64_t n, const std::function<void(int64_t, int64_t, int64_t)>& body);

// The sum over blocks of body(begin, end), added in block order.
double block_sum(int64_t n, const std::function<double(int64_t, int64_t)>& body);

// sum(a[i] * b[i]) for i < n: each block summed in float (vectorised), the blocks in double, in order.
double dot(const float* a, const float* b, int64_t n);

// K sums at once: body(begin, end, acc) adds its block's contributions to acc (zeroed per block); the
// blocks' accumulators are added in block order.
template <size_t K, typename Body>
std::array<double, K> block_sums(int64_t n, const Body& body) {
  std::vector<std::array<double, K>> partial(static_cast<size_t>((n + kBlockSize - 1) / kBlockSize));
  for_each_block(n, [&](int64_t block, int64_t begin, int64_t end) {
    std::array<double, K> acc{};
    body(begin, end, acc);
    partial[static_cast<size_t>(block)] = acc;
  });
  std::array<double, K> total{};
  for (const auto& p : partial)
    for (size_t k = 0; k < K; ++k) total[k] += p[k];
  return total;
}

}  // namespace bitgrad::quant
