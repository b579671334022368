// conv_kernels_test.cpp: core/conv_kernels.hpp's register-blocked shifted GEMMs against their
// scalar references, bit for bit (same summation order, fused multiply-adds), over tile-edge sizes:
// column counts around whole tiles, tap counts around the weight-gradient tile heights, one to five
// vectors of output channels, and offsets in arbitrary (non-monotonic) order; and the gradient
// transpose.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/conv_kernels.hpp"
#include "core/rng.hpp"

namespace bitgrad::core {
namespace {

std::vector<float> random_values(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

// k_count offsets into a buffer of `span` floats, each leaving room for `reach` floats after it.
std::vector<int64_t> random_offsets(Rng& rng, int64_t k_count, int64_t span, int64_t reach) {
  std::vector<int64_t> off(static_cast<size_t>(k_count));
  for (int64_t& o : off) o = static_cast<int64_t>(rng.below(static_cast<uint64_t>(span - reach)));
  return off;
}

// Index of the first element that differs (bit patterns compared as values; -1 when equal).
int64_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i])) return static_cast<int64_t>(i);
  return -1;
}

TEST_CASE("shifted_gemm equals its reference bit for bit at tile edges", "[kernel]") {
  const int64_t lanes = conv_kernels::lanes(), bo = conv_kernels::block_o();
  Rng rng(11);
  const std::vector<int64_t> q_counts = {1,         lanes - 1,     lanes,         2 * lanes + 1,
                                         3 * lanes, 3 * lanes + 1, 7 * lanes + 5, 10 * lanes};
  for (int64_t k_count : {1, 9, 27, 64})
    for (int64_t o_blocks : {1, 3})
      for (int64_t q_count : q_counts) {
        const int64_t q_alloc = (q_count + lanes - 1) / lanes * lanes;
        const int64_t span = 4 * q_alloc + 64;
        const std::vector<float> in = random_values(rng, span);
        const std::vector<int64_t> off = random_offsets(rng, k_count, span, q_alloc);
        const std::vector<float> w = random_values(rng, o_blocks * bo * k_count);
        const int64_t ldo = q_alloc + 3;  // rows not vector-aligned
        std::vector<float> got(static_cast<size_t>(o_blocks * bo * ldo), -7.0f), want = got;
        conv_kernels::shifted_gemm(in.data(), off.data(), k_count, w.data(), o_blocks, got.data(),
                                   ldo, q_count);
        conv_kernels::shifted_gemm__ref(in.data(), off.data(), k_count, w.data(), o_blocks,
                                        want.data(), ldo, q_count);
        INFO("k " << k_count << " o_blocks " << o_blocks << " q " << q_count);
        CHECK(first_difference(got, want) == -1);
        // Columns past the last whole vector are left alone.
        for (int64_t o = 0; o < o_blocks * bo; ++o)
          for (int64_t q = q_alloc; q < ldo; ++q)
            CHECK(got[static_cast<size_t>(o * ldo + q)] == -7.0f);
      }
}

TEST_CASE("shifted_gemm_wgrad equals its reference bit for bit at tile edges", "[kernel]") {
  const int64_t lanes = conv_kernels::lanes();
  Rng rng(12);
  struct Grid {
    int64_t rows, cols, in_ld;
  };
  for (int64_t vectors : {1, 2, 3, 4, 5})
    for (int64_t k_count : {1, 5, 6, 12, 13, 27, 40})
      for (Grid grid : {Grid{1, 1, 1}, Grid{3, 7, 9}, Grid{9, 32, 34}, Grid{40, 30, 30}}) {
        const int64_t o_pad = vectors * lanes;
        const int64_t positions = grid.rows * grid.cols;
        const int64_t reach = (grid.rows - 1) * grid.in_ld + grid.cols;
        const int64_t span = reach + 97;
        const std::vector<float> in = random_values(rng, span);
        const std::vector<int64_t> off = random_offsets(rng, k_count, span, reach);
        const std::vector<float> gt = random_values(rng, positions * o_pad);
        std::vector<float> got = random_values(rng, k_count * o_pad), want = got;  // accumulates
        conv_kernels::shifted_gemm_wgrad(in.data(), off.data(), k_count, grid.rows, grid.cols,
                                         grid.in_ld, gt.data(), o_pad, got.data());
        conv_kernels::shifted_gemm_wgrad__ref(in.data(), off.data(), k_count, grid.rows, grid.cols,
                                              grid.in_ld, gt.data(), o_pad, want.data());
        INFO("vectors " << vectors << " k " << k_count << " grid " << grid.rows << "x"
                        << grid.cols);
        CHECK(first_difference(got, want) == -1);
      }
}

TEST_CASE("transpose_to_rows equals its reference, padding columns untouched", "[kernel]") {
  const int64_t lanes = conv_kernels::lanes();
  Rng rng(13);
  for (int64_t o_count : {int64_t{1}, lanes - 1, lanes, lanes + 3, 3 * lanes})
    for (int64_t hw : {int64_t{1}, int64_t{7}, lanes, 2 * lanes + 5, int64_t{64}}) {
      const int64_t o_pad = (o_count + lanes - 1) / lanes * lanes + lanes;
      const std::vector<float> g = random_values(rng, o_count * hw);
      std::vector<float> got(static_cast<size_t>(hw * o_pad), -3.0f), want = got;
      conv_kernels::transpose_to_rows(g.data(), o_count, hw, got.data(), o_pad);
      conv_kernels::transpose_to_rows__ref(g.data(), o_count, hw, want.data(), o_pad);
      INFO("o " << o_count << " hw " << hw);
      CHECK(first_difference(got, want) == -1);
      CHECK(got[static_cast<size_t>(o_pad - 1)] == -3.0f);
    }
}

}  // namespace
}  // namespace bitgrad::core
