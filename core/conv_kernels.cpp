// conv_kernels.cpp: shifted_gemm and shifted_gemm_wgrad (core/conv_kernels.hpp), register-blocked
// on Eigen packets, and their scalar references. Tile sizes fill the vector register file: with 32
// registers (AVX-512) 24 accumulators, with 16 (AVX2, SSE, NEON) 12.
#include "core/conv_kernels.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

namespace bitgrad::core::conv_kernels {

namespace {

using Packet = Eigen::internal::packet_traits<float>::type;
constexpr int kLanes = Eigen::internal::packet_traits<float>::size;
constexpr int kAccumulators = kLanes >= 16 ? 24 : 12;
// Forward tile: kBlockO rows (one broadcast weight each) by up to kMaxQv vectors of columns.
constexpr int kBlockO = kAccumulators / 3;
constexpr int kMaxQv = 3;
// Weight-gradient tile: up to 4 vectors of o by kb(ov) taps; positions per cache block.
constexpr int kMaxOv = 4;
constexpr int kb_for(int ov) { return std::min(kAccumulators / ov, 12); }
constexpr int64_t kWgradBlockFloats = 4096;  // gt floats per block (16 KiB, stays in L1)

using Eigen::internal::ploadu;
using Eigen::internal::pmadd;
using Eigen::internal::pset1;
using Eigen::internal::pstoreu;

template <int kQv>
void store_tile(const Packet (&acc)[kBlockO][kQv], float* out, int64_t ldo) {
  for (int r = 0; r < kBlockO; ++r)
    for (int v = 0; v < kQv; ++v) pstoreu(out + r * ldo + v * kLanes, acc[r][v]);
}

// kBlockO x kQv*kLanes tile of shifted_gemm at columns starting at `in`, `out`.
template <int kQv>
void forward_tile(const float* in, const int64_t* off, int64_t k_count, const float* wb, float* out,
                  int64_t ldo) {
  Packet acc[kBlockO][kQv];
  for (int r = 0; r < kBlockO; ++r)
    for (int v = 0; v < kQv; ++v) acc[r][v] = pset1<Packet>(0.0f);
  if (k_count <= 0) return store_tile<kQv>(acc, out, ldo);
  for (int64_t k = 0; k < k_count; ++k) {
    const float* src = in + off[k];
    Packet x[kQv];
    for (int v = 0; v < kQv; ++v) x[v] = ploadu<Packet>(src + v * kLanes);
    const float* w = wb + k * kBlockO;
    for (int r = 0; r < kBlockO; ++r) {
      const Packet wr = pset1<Packet>(w[r]);
      for (int v = 0; v < kQv; ++v) acc[r][v] = pmadd(wr, x[v], acc[r][v]);
    }
  }
  store_tile<kQv>(acc, out, ldo);
}

// kKb taps by kOv vectors of o, accumulated into dwt over rows x cols positions.
template <int kOv, int kKb>
void wgrad_tile(const float* in, const int64_t* off, int64_t rows, int64_t cols, int64_t in_ld,
                const float* gt, int64_t o_pad, float* dwt) {
  Packet acc[kKb][kOv];
  for (int j = 0; j < kKb; ++j)
    for (int v = 0; v < kOv; ++v) acc[j][v] = ploadu<Packet>(dwt + j * o_pad + v * kLanes);
  const float* src[kKb];
  for (int j = 0; j < kKb; ++j) src[j] = in + off[j];
  // One flat loop over positions (a nested row loop made GCC spill the accumulators around it).
  const float* g = gt;
  int64_t idx = 0, t = 0;  // the position's offset in `in` and its column
  for (int64_t p = 0; p < rows * cols; ++p) {
    Packet gv[kOv];
    for (int v = 0; v < kOv; ++v) gv[v] = ploadu<Packet>(g + v * kLanes);
    for (int j = 0; j < kKb; ++j) {
      const Packet xb = pset1<Packet>(src[j][idx]);
      for (int v = 0; v < kOv; ++v) acc[j][v] = pmadd(xb, gv[v], acc[j][v]);
    }
    g += o_pad;
    ++idx;
    if (++t == cols) {
      t = 0;
      idx += in_ld - cols;
    }
  }
  for (int j = 0; j < kKb; ++j)
    for (int v = 0; v < kOv; ++v) pstoreu(dwt + j * o_pad + v * kLanes, acc[j][v]);
}

using WgradTileFn = void (*)(const float*, const int64_t*, int64_t, int64_t, int64_t, const float*,
                             int64_t, float*);

// wgrad_tile<kOv, 1..kb_for(kOv)>, indexed by tap count - 1 (the last entry is the full tile).
template <int kOv, int... kKbs>
constexpr std::array<WgradTileFn, sizeof...(kKbs)> wgrad_table(
    std::integer_sequence<int, kKbs...>) {
  return {&wgrad_tile<kOv, kKbs + 1>...};
}

template <int kOv>
void wgrad_group(const float* in, const int64_t* off, int64_t k_count, int64_t rows, int64_t cols,
                 int64_t in_ld, const float* gt, int64_t o_pad, float* dwt) {
  constexpr int kKb = kb_for(kOv);
  static constexpr auto table = wgrad_table<kOv>(std::make_integer_sequence<int, kKb>());
  for (int64_t k0 = 0; k0 < k_count; k0 += kKb) {
    const int64_t kb = std::min<int64_t>(kKb, k_count - k0);
    table[static_cast<size_t>(kb - 1)](in, off + k0, rows, cols, in_ld, gt, o_pad,
                                       dwt + k0 * o_pad);
  }
}

}  // namespace

int64_t lanes() { return kLanes; }
int64_t block_o() { return kBlockO; }

void shifted_gemm(const float* in, const int64_t* off, int64_t k_count, const float* wpack,
                  int64_t o_blocks, float* out, int64_t ldo, int64_t q_count) {
  constexpr int64_t kTile = kMaxQv * kLanes;
  for (int64_t b = 0; b < o_blocks; ++b) {
    const float* wb = wpack + b * k_count * kBlockO;
    float* ob = out + b * kBlockO * ldo;
    int64_t q = 0;
    for (; q + kTile <= q_count; q += kTile)
      forward_tile<kMaxQv>(in + q, off, k_count, wb, ob + q, ldo);
    const int64_t vectors = (q_count - q + kLanes - 1) / kLanes;
    if (vectors == 1)
      forward_tile<1>(in + q, off, k_count, wb, ob + q, ldo);
    else if (vectors == 2)
      forward_tile<2>(in + q, off, k_count, wb, ob + q, ldo);
    else if (vectors == 3)
      forward_tile<3>(in + q, off, k_count, wb, ob + q, ldo);
  }
}

void shifted_gemm__ref(const float* in, const int64_t* off, int64_t k_count, const float* wpack,
                       int64_t o_blocks, float* out, int64_t ldo, int64_t q_count) {
  const int64_t q_end = (q_count + kLanes - 1) / kLanes * kLanes;
  for (int64_t o = 0; o < o_blocks * kBlockO; ++o)
    for (int64_t q = 0; q < q_end; ++q) {
      const float* w = wpack + (o / kBlockO) * k_count * kBlockO + o % kBlockO;
      float acc = 0.0f;
      for (int64_t k = 0; k < k_count; ++k) acc = std::fma(w[k * kBlockO], in[off[k] + q], acc);
      out[o * ldo + q] = acc;
    }
}

void shifted_gemm_wgrad(const float* in, const int64_t* off, int64_t k_count, int64_t rows,
                        int64_t cols, int64_t in_ld, const float* gt, int64_t o_pad, float* dwt) {
  const int64_t vectors = o_pad / kLanes;
  const int64_t block_rows = std::max<int64_t>(1, kWgradBlockFloats / (cols * o_pad));
  for (int64_t r0 = 0; r0 < rows; r0 += block_rows) {
    const int64_t nr = std::min(block_rows, rows - r0);
    const float* in_r = in + r0 * in_ld;
    const float* gt_r = gt + r0 * cols * o_pad;
    for (int64_t v0 = 0; v0 < vectors; v0 += kMaxOv) {
      const float* g = gt_r + v0 * kLanes;
      float* d = dwt + v0 * kLanes;
      switch (std::min<int64_t>(kMaxOv, vectors - v0)) {
        case 1:
          wgrad_group<1>(in_r, off, k_count, nr, cols, in_ld, g, o_pad, d);
          break;
        case 2:
          wgrad_group<2>(in_r, off, k_count, nr, cols, in_ld, g, o_pad, d);
          break;
        case 3:
          wgrad_group<3>(in_r, off, k_count, nr, cols, in_ld, g, o_pad, d);
          break;
        default:
          wgrad_group<4>(in_r, off, k_count, nr, cols, in_ld, g, o_pad, d);
          break;
      }
    }
  }
}

void shifted_gemm_wgrad__ref(const float* in, const int64_t* off, int64_t k_count, int64_t rows,
                             int64_t cols, int64_t in_ld, const float* gt, int64_t o_pad,
                             float* dwt) {
  for (int64_t k = 0; k < k_count; ++k)
    for (int64_t o = 0; o < o_pad; ++o) {
      float acc = dwt[k * o_pad + o];
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t t = 0; t < cols; ++t)
          acc = std::fma(in[off[k] + r * in_ld + t], gt[(r * cols + t) * o_pad + o], acc);
      dwt[k * o_pad + o] = acc;
    }
}

// PacketBlock<Packet16f, 16> names an attributed vector type as a template argument, which GCC
// reports as -Wignored-attributes (harmless here; Eigen silences it inside its own headers).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
void transpose_to_rows(const float* g, int64_t o_count, int64_t hw, float* gt, int64_t o_pad) {
  const int64_t o_tiles = o_count / kLanes * kLanes, p_tiles = hw / kLanes * kLanes;
  for (int64_t o0 = 0; o0 < o_tiles; o0 += kLanes) {
    for (int64_t p0 = 0; p0 < p_tiles; p0 += kLanes) {
      Eigen::internal::PacketBlock<Packet, kLanes> block;
      for (int i = 0; i < kLanes; ++i) block.packet[i] = ploadu<Packet>(g + (o0 + i) * hw + p0);
      Eigen::internal::ptranspose(block);
      for (int i = 0; i < kLanes; ++i) pstoreu(gt + (p0 + i) * o_pad + o0, block.packet[i]);
    }
    for (int64_t p = p_tiles; p < hw; ++p)
      for (int64_t o = o0; o < o0 + kLanes; ++o) gt[p * o_pad + o] = g[o * hw + p];
  }
  for (int64_t p = 0; p < hw; ++p)
    for (int64_t o = o_tiles; o < o_count; ++o) gt[p * o_pad + o] = g[o * hw + p];
}
#pragma GCC diagnostic pop

void transpose_to_rows__ref(const float* g, int64_t o_count, int64_t hw, float* gt, int64_t o_pad) {
  for (int64_t p = 0; p < hw; ++p)
    for (int64_t o = 0; o < o_count; ++o) gt[p * o_pad + o] = g[o * hw + p];
}

}  // namespace bitgrad::core::conv_kernels
