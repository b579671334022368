// conv.cpp: 2-D convolution (core/conv.hpp), oneTBB over images. The forward pass, the stride-1
// input gradient (the forward pass of the flipped kernel) and the weight gradient run as a direct
// convolution: each image is zero-padded and split into its stride phases, so that every kernel tap
// (c, i, j) reads a contiguous run of the buffer, and the register-blocked shifted GEMMs of
// core/conv_kernels.hpp consume those runs without an im2col matrix. Outputs are computed on the
// phase grid (Wq columns per row, Wq - Wo of them discarded). The strided input gradient keeps
// im2col's adjoint (Eigen GEMM, then col2im): one stride-1 convolution per stride phase through the
// same kernel measured no faster on ResNet-20's two strided layers (too many small calls).
// The weight gradient sums per-chunk partials in chunk order over a chunk count independent of
// scheduling, so results are the same for a given thread count (and for any count up to
// kMinChunks). Not here: Winograd/FFT algorithms or packed-integer kernels (kernels/).
#include "core/conv.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/conv_kernels.hpp"
#include "core/eigen_view.hpp"
#include "core/error.hpp"
#include "core/eval_epilogue.hpp"
#include "core/threads.hpp"

namespace bitgrad::core {

namespace {

// GEMM widths in output columns of the col2im path (strided input gradients). Small maps group
// whole images up to kGroupCols (Eigen's packing and call overheads dominate thinner GEMMs); large
// maps are cut into bands of rows of about kBandCols, so that the [C*kh*kw, cols] tile stays in L2.
constexpr int64_t kGroupCols = 512;
constexpr int64_t kBandCols = 256;
// Lower bound on the number of weight-gradient chunks (partial dW sums), independent of threads.
constexpr int64_t kMinChunks = 8;
constexpr int64_t kSlack = 16;
// Short rows are copied in whole chunks of kChunk floats, the chunk count fixed at compile time:
// GCC turns a copy loop of run-time length into a memcpy call per row, which costs more than the
// copy itself for 8..32-float rows.
constexpr int64_t kChunk = 16;

// dst[r*dst_ld + t] = src[r*src_ld + t] + add for t < kChunks*kChunk: writes past the row's width.
template <int64_t kChunks>
void copy_rows(const float* src, int64_t src_ld, float* dst, int64_t dst_ld, int64_t rows,
               float add) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * src_ld;
    float* d = dst + r * dst_ld;
    for (int64_t t = 0; t < kChunks * kChunk; ++t) d[t] = s[t] + add;
  }
}

// p[0, kChunk) = 0 in one fixed-size store (a fill of run-time length becomes a memset call).
void store_zero_chunk(float* p) { std::fill_n(p, kChunk, 0.0f); }

// dst[t] = src[t] for t < count, copied in whole chunks: up to kChunk - 1 floats past count too.
void copy_chunks(const float* src, float* dst, int64_t count) {
  switch ((count + kChunk - 1) / kChunk) {
    case 1:
      return copy_rows<1>(src, 0, dst, 0, 1, 0.0f);
    case 2:
      return copy_rows<2>(src, 0, dst, 0, 1, 0.0f);
    case 3:
      return copy_rows<3>(src, 0, dst, 0, 1, 0.0f);
    case 4:
      return copy_rows<4>(src, 0, dst, 0, 1, 0.0f);
    default:
      std::copy(src, src + count, dst);
  }
}

// dst[r*dst_ld + t] = src[r*src_ld + t] + add for r < rows, t < width (both ld >= width). Leading
// rows are copied in whole chunks while a chunk stays inside both row ranges ((rows-1)*ld + width
// floats), the rest exactly: a row's overrun (< kChunk floats) then only reads and writes later
// rows of the same ranges, so callers must write whatever lies between rows after this call.
void copy_rows_overrun(const float* src, int64_t src_ld, float* dst, int64_t dst_ld, int64_t rows,
                       int64_t width, float add) {
  if (rows <= 0) return;
  const int64_t chunks = (width + kChunk - 1) / kChunk;
  const int64_t span = chunks * kChunk;
  // Row r may use chunks when r*ld + span <= (rows-1)*ld + width for both lds.
  auto fast_rows = [&](int64_t ld) {
    const int64_t room = (rows - 1) * ld + width - span;
    return room < 0 ? 0 : std::min(rows - 1, room / ld + 1);
  };
  const int64_t fast = std::min(fast_rows(src_ld), fast_rows(dst_ld));
  switch (chunks) {
    case 1:
      copy_rows<1>(src, src_ld, dst, dst_ld, fast, add);
      break;
    case 2:
      copy_rows<2>(src, src_ld, dst, dst_ld, fast, add);
      break;
    case 3:
      copy_rows<3>(src, src_ld, dst, dst_ld, fast, add);
      break;
    case 4:
      copy_rows<4>(src, src_ld, dst, dst_ld, fast, add);
      break;
    default:
      for (int64_t r = 0; r < fast; ++r)
        for (int64_t t = 0; t < width; ++t) dst[r * dst_ld + t] = src[r * src_ld + t] + add;
  }
  for (int64_t r = fast; r < rows; ++r)
    for (int64_t t = 0; t < width; ++t) dst[r * dst_ld + t] = src[r * src_ld + t] + add;
}

// d[ow * kStride] += s[ow], row r of d at r * dst_stride (col2im's rows).
template <int64_t kStride>
void scatter_add_rows(float* dst, const float* src, int64_t rows, int64_t width, int64_t dst_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dst + r * dst_stride;
    const float* s = src + r * width;
    for (int64_t ow = 0; ow < width; ++ow) d[ow * kStride] += s[ow];
  }
}

using ConstStridedMap = Eigen::Map<const MatrixRM, 0, Eigen::OuterStride<>>;

struct Geometry {
  int64_t n, c, h, w;  // input
  int64_t o, kh, kw;   // weight
  int64_t ho, wo;      // output
  int64_t stride, ph, pw, dil;  // padding may differ per axis internally (flipped-kernel passes)

  int64_t ckk() const { return c * kh * kw; }
  int64_t hw() const { return ho * wo; }
  int64_t image() const { return c * h * w; }
  int64_t hp() const { return h + 2 * ph; }
  int64_t wp() const { return w + 2 * pw; }
  bool padded() const { return ph > 0 || pw > 0; }
  // Images per work unit: more than one only for maps below kBandCols.
  int64_t group() const {
    if (n == 0) return 1;
    return hw() >= kBandCols ? 1 : std::clamp<int64_t>((kGroupCols + hw() - 1) / hw(), 1, n);
  }
  // Output rows per GEMM within a unit (all of them for groups).
  int64_t band_rows() const {
    if (group() > 1) return ho;
    return std::clamp<int64_t>((kBandCols + wo - 1) / wo, 1, ho);
  }
  int64_t padded_group() const { return group() * c * hp() * wp() + kSlack; }
  int64_t col_tile() const { return ckk() * group() * band_rows() * wo + kSlack; }
};

Geometry make_geometry(const Shape& x, const Shape& weight, const Conv2dOptions& options) {
  const Shape out = conv2d_output_shape(x, weight, options);
  return {x[0], x[1], x[2], x[3], weight[0], weight[2], weight[3], out[2], out[3],
          options.stride, options.padding, options.padding, options.dilation};
}

// The adjoint of im2col on the tile of output rows [r0, r0 + nr) of nb images, where
//   col[(c*kh + i)*kw + j, (b*nr + r)*Wo + ow] is the tap of xp[b, c, (r0 + r)*s + i*d, ow*s +
//   j*d]:
// dxp[b, c, ...] += col[...] (dxp zero-padded by ph, pw).
void col2im(const float* col, int64_t nb, int64_t r0, int64_t nr, float* dxp, const Geometry& g) {
  const int64_t hp = g.hp(), wp = g.wp(), tile = nr * g.wo, ld = nb * tile;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const float* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        for (int64_t b = 0; b < nb; ++b) {
          float* dst = dxp + (b * g.c + c) * hp * wp + (r0 * g.stride + i * g.dil) * wp + j * g.dil;
          const float* src = row + b * tile;
          if (g.stride == 1) scatter_add_rows<1>(dst, src, nr, g.wo, wp);
          else if (g.stride == 2) scatter_add_rows<2>(dst, src, nr, g.wo, 2 * wp);
          else
            for (int64_t r = 0; r < nr; ++r) {
              float* d = dst + r * g.stride * wp;
              const float* s = src + r * g.wo;
              for (int64_t ow = 0; ow < g.wo; ++ow) d[ow * g.stride] += s[ow];
            }
        }
      }
}

// dx[b] = the interior of dxp[b] (drops the padding).
void unpad_images(const float* dxp, int64_t nb, float* dx, const Geometry& g) {
  const int64_t hp = g.hp(), wp = g.wp();
  for (int64_t pl = 0; pl < nb * g.c; ++pl)
    for (int64_t r = 0; r < g.h; ++r) {
      const float* src = dxp + pl * hp * wp + (r + g.ph) * wp + g.pw;
      std::copy(src, src + g.w, dx + pl * g.h * g.w + r * g.w);
    }
}

// [O, nb*HW] from nb images' [O, HW] blocks of grad_out.
void gather_grad(const float* g_out, int64_t nb, float* dst, const Geometry& g) {
  const int64_t hw = g.hw(), ld = nb * hw;
  for (int64_t oc = 0; oc < g.o; ++oc)
    for (int64_t b = 0; b < nb; ++b)
      std::copy(g_out + (b * g.o + oc) * hw, g_out + (b * g.o + oc + 1) * hw, dst + oc * ld + b * hw);
}

// Rows [r0, r0 + nr) of one image's [O, HW] block, as an [O, nr*Wo] matrix.
ConstStridedMap band(const float* image_out, int64_t r0, int64_t nr, const Geometry& g) {
  return ConstStridedMap(image_out + r0 * g.wo, g.o, nr * g.wo, Eigen::OuterStride<>(g.hw()));
}

// Runs body(k, first_group, end_group) for chunks k = 0..chunks-1 in parallel; chunk k gets the
// contiguous groups [k*groups/chunks, (k+1)*groups/chunks).
template <typename Body>
void for_each_chunk(int64_t groups, int64_t chunks, Body&& body) {
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, chunks, 1),
      [&](const tbb::blocked_range<int64_t>& r) {
        for (int64_t k = r.begin(); k != r.end(); ++k)
          body(k, k * groups / chunks, (k + 1) * groups / chunks);
      },
      tbb::simple_partitioner());
}

// Enough chunks to balance the threads in the per-image passes (no reduction, any count works).
int64_t balance_chunks(int64_t groups) {
  return std::clamp<int64_t>(4 * num_threads(), 1, std::max<int64_t>(groups, 1));
}

std::unique_ptr<float[]> scratch(int64_t size) {
  return std::make_unique_for_overwrite<float[]>(static_cast<size_t>(std::max<int64_t>(size, 1)));
}

void check_grad_out(const Tensor& grad_out, const Shape& expected, const char* op) {
  check_lazy(grad_out.shape() == expected, [&] {
    return std::string(op) + ": expected grad_out of shape " + expected.to_string() + ", got " +
           grad_out.shape().to_string();
  });
}

// ---- direct convolution on stride phases
// ---------------------------------------------------------- An image is stored as C*s*s phase
// planes of Hq x Wq, phase (a, b) of channel c holding the padded image's pixels (r*s + a, t*s +
// b). Output (oh, ow) of tap (c, i, j) reads padded pixel (oh*s + i*d, ow*s + j*d), i.e. plane (c,
// (i*d) % s, (j*d) % s) at row oh + (i*d)/s, column ow + (j*d)/s. So with q = oh*Wq + ow every tap
// reads the run buffer[off[k] + q]: the shifted GEMM.
struct Direct {
  int64_t s, hq, wq;
  int64_t q;        // positions computed per image: Ho * Wq
  int64_t q_alloc;  // q rounded up to whole SIMD vectors (the kernel writes that many)
  int64_t buffer;   // floats per phase-split image, with zeroed slack for the kernel's over-read
  std::vector<int64_t> off;  // per tap k = (c*kh + i)*kw + j
};

Direct make_direct(const Geometry& g) {
  Direct d;
  d.s = g.stride;
  d.hq = (g.hp() + d.s - 1) / d.s;
  d.wq = (g.wp() + d.s - 1) / d.s;
  d.q = g.ho * d.wq;
  const int64_t lanes = conv_kernels::lanes();
  d.q_alloc = (d.q + lanes - 1) / lanes * lanes;
  d.off.resize(static_cast<size_t>(g.ckk()));
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t ri = i * g.dil, cj = j * g.dil;
        const int64_t plane = (c * d.s + ri % d.s) * d.s + cj % d.s;
        d.off[static_cast<size_t>((c * g.kh + i) * g.kw + j)] =
            (plane * d.hq + ri / d.s) * d.wq + cj / d.s;
      }
  // Reads reach off[k] + q_alloc - 1 <= C*s*s*Hq*Wq + lanes + (kw-1)*d (conv_kernels.hpp).
  d.buffer = g.c * d.s * d.s * d.hq * d.wq + d.q_alloc - d.q + lanes + g.kw * g.dil + kSlack;
  return d;
}

// dst = image x [C, H, W] zero-padded and split into phases (layout above), slack zeroed.
void split_phases(const float* x, const Geometry& g, const Direct& d, float* dst) {
  const int64_t s = d.s, hq = d.hq, wq = d.wq;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t a = 0; a < s; ++a)
      for (int64_t b = 0; b < s; ++b) {
        float* plane = dst + ((c * s + a) * s + b) * hq * wq;
        // Columns t with 0 <= t*s + b - pw < W hold pixels: t in [t_lo, t_hi).
        const int64_t t_lo = std::min(wq, std::max<int64_t>(0, (g.pw - b + s - 1) / s));
        const int64_t t_hi = std::max(t_lo, std::min(wq, (g.w + g.pw - b + s - 1) / s));
        // Rows r with 0 <= r*s + a - ph < H hold pixels: r in [r_lo, r_hi).
        const int64_t r_lo = std::min(hq, std::max<int64_t>(0, (g.ph - a + s - 1) / s));
        const int64_t r_hi = std::max(r_lo, std::min(hq, (g.h + g.ph - a + s - 1) / s));
        std::fill(plane, plane + r_lo * wq, 0.0f);
        std::fill(plane + r_hi * wq, plane + hq * wq, 0.0f);
        if (r_lo == r_hi) continue;
        const float* src = x + (c * g.h + r_lo * s + a - g.ph) * g.w + t_lo * s + b - g.pw;
        const int64_t count = t_hi - t_lo;
        if (s == 1 && t_lo <= kChunk && wq - count <= kChunk) {
          // Row by row, without a memset call per border: a whole-chunk zero store clears the first
          // row's left border; each row's whole-chunk copy is followed by one over the gap to the
          // next row's pixels (right and left border), whose copy then rewrites what that store
          // covered past the gap. Past the last row it lands on the zeroed bottom rows, the next
          // plane (written later) or the zeroed slack.
          store_zero_chunk(plane + r_lo * wq);
          const int64_t src_first = (r_lo - g.ph) * g.w + t_lo - g.pw;  // in this channel's plane
          for (int64_t r = 0; r < r_hi - r_lo; ++r) {
            float* row = plane + (r_lo + r) * wq + t_lo;
            if (src_first + r * g.w + (count + kChunk - 1) / kChunk * kChunk <= g.h * g.w)
              copy_chunks(src + r * g.w, row, count);
            else
              std::copy(src + r * g.w, src + r * g.w + count, row);
            store_zero_chunk(row + count);
          }
          continue;
        }
        if (s == 1) {
          // Whole-chunk copies: the overrun is cleared by the border fills below and the next
          // row's copy; the source rows stay inside the image (H*W, the last row copied exactly).
          copy_rows_overrun(src, g.w, plane + r_lo * wq + t_lo, wq, r_hi - r_lo, count, 0.0f);
        } else {
          for (int64_t r = r_lo; r < r_hi; ++r) {
            const float* sr = src + (r - r_lo) * s * g.w;
            float* row = plane + r * wq + t_lo;
            for (int64_t t = 0; t < count; ++t) row[t] = sr[t * s];
          }
        }
        for (int64_t r = r_lo; r < r_hi; ++r) {
          std::fill(plane + r * wq, plane + r * wq + t_lo, 0.0f);
          std::fill(plane + r * wq + t_hi, plane + (r + 1) * wq, 0.0f);
        }
      }
  const int64_t used = g.c * s * s * hq * wq;
  std::fill(dst + used, dst + d.buffer, 0.0f);
}

// Weights [O, K] in blocks of block_o() rows, k-major within a block, zero rows past O.
std::vector<float> pack_weights(const float* w, int64_t o, int64_t k) {
  const int64_t bo = conv_kernels::block_o();
  const int64_t blocks = (o + bo - 1) / bo;
  std::vector<float> packed(static_cast<size_t>(blocks * bo * k), 0.0f);
  for (int64_t oc = 0; oc < o; ++oc)
    for (int64_t kk = 0; kk < k; ++kk)
      packed[static_cast<size_t>(((oc / bo) * k + kk) * bo + oc % bo)] = w[oc * k + kk];
  return packed;
}

// out [N, O, Ho, Wo] = conv(x, w) + bias (bias may be null); every element is written.
// Work units are (image, range of weight blocks): whole images for batches that keep the threads
// busy, else each image's output channels split further (small-batch inference).
void forward_into(const float* px, const float* pw, const float* pb, float* po, const Geometry& g,
                  const Conv2dEpilogue* epilogue = nullptr) {
  const float* pres =
      epilogue != nullptr && epilogue->residual.defined() ? epilogue->residual.data() : nullptr;
  const Direct d = make_direct(g);
  const int64_t k = g.ckk(), hw = g.hw(), bo = conv_kernels::block_o();
  const int64_t blocks = (g.o + bo - 1) / bo;
  const std::vector<float> wpack = pack_weights(pw, g.o, k);
  const int64_t splits =
      g.n == 0 ? 1 : std::clamp<int64_t>((4 * num_threads() + g.n - 1) / g.n, 1, blocks);
  const int64_t units = g.n * splits;
  for_each_chunk(units, balance_chunks(units), [&](int64_t, int64_t first, int64_t end) {
    if (first == end) return;
    Tensor in = Tensor::empty(Shape{d.buffer});
    Tensor res = Tensor::empty(Shape{blocks * bo * d.q_alloc});
    int64_t split_image = -1;
    for (int64_t u = first; u < end; ++u) {
      const int64_t n = u / splits, part = u % splits;
      const int64_t b0 = part * blocks / splits, b1 = (part + 1) * blocks / splits;
      if (n != split_image) split_phases(px + n * g.image(), g, d, in.data());
      split_image = n;
      conv_kernels::shifted_gemm(in.data(), d.off.data(), k, wpack.data() + b0 * k * bo, b1 - b0,
                                 res.data(), d.q_alloc, d.q);
      for (int64_t oc = b0 * bo; oc < std::min(b1 * bo, g.o); ++oc) {
        const float* src = res.data() + (oc - b0 * bo) * d.q_alloc;
        float* dst = po + (n * g.o + oc) * hw;
        const float bias = pb != nullptr ? pb[oc] : 0.0f;
        // Each row's overrun lands on the start of the next row, which the next row's copy
        // rewrites.
        copy_rows_overrun(src, d.wq, dst, g.wo, g.ho, g.wo, bias);
        if (epilogue == nullptr) continue;
        const auto uo = static_cast<size_t>(oc);
        batch_norm_row(dst, pres != nullptr ? pres + (n * g.o + oc) * hw : nullptr, hw,
                       {epilogue->mean[uo], epilogue->scale[uo], epilogue->offset[uo]},
                       epilogue->relu, dst);
      }
    }
  });
}

// Stride 1: dx is the "full" convolution of grad_out with the flipped, transposed kernel,
// W'[c, o, i, j] = W[o, c, kh-1-i, kw-1-j], padding d*(k-1) - p (when that is >= 0), run through
// forward_into.
// It moves O*kh*kw values per output position through the split where col2im moves about
// 2*C*kh*kw, and computes whole blocks of block_o() output channels, so it is used only when O is
// not much larger than C (not for stems like 3 -> 16, whose dx training never needs).
bool flipped_backward_applies(const Geometry& g) {
  return g.stride == 1 && g.dil * (g.kh - 1) >= g.ph && g.dil * (g.kw - 1) >= g.pw &&
         g.o <= 2 * g.c;
}

void backward_input_flipped(const float* pg, const float* pw, float* pdx, const Geometry& g) {
  std::vector<float> flipped(static_cast<size_t>(g.o * g.ckk()));
  for (int64_t o = 0; o < g.o; ++o)
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j)
          flipped[static_cast<size_t>(((c * g.o + o) * g.kh + (g.kh - 1 - i)) * g.kw + (g.kw - 1 - j))] =
              pw[((o * g.c + c) * g.kh + i) * g.kw + j];
  const Geometry t{g.n, g.o, g.ho, g.wo, g.c, g.kh, g.kw, g.h, g.w, 1,
                   g.dil * (g.kh - 1) - g.ph, g.dil * (g.kw - 1) - g.pw, g.dil};
  forward_into(pg, flipped.data(), nullptr, pdx, t);
}

// dW [O, C, kh, kw] from grad_out and x: per chunk of images, dWt [K, O_pad] += the shifted GEMM of
// each image's phases with its gradient transposed to [Ho*Wo, O_pad]; chunks summed in order.
Tensor backward_weight_direct(const float* pg, const float* px, const Shape& weight_shape,
                              const Geometry& g) {
  const Direct d = make_direct(g);
  const int64_t k = g.ckk(), hw = g.hw(), lanes = conv_kernels::lanes();
  const int64_t o_pad = (g.o + lanes - 1) / lanes * lanes;
  const int64_t chunks = std::clamp<int64_t>(std::max<int64_t>(kMinChunks, num_threads()), 1,
                                             std::max<int64_t>(g.n, 1));
  const int64_t part = k * o_pad;
  Tensor partial(Shape{chunks * part});
  for_each_chunk(g.n, chunks, [&](int64_t c, int64_t first, int64_t end) {
    if (first == end) return;
    Tensor in = Tensor::empty(Shape{d.buffer});
    Tensor gt(Shape{hw * o_pad});  // columns past O stay zero
    float* dwt = partial.data() + c * part;
    for (int64_t n = first; n < end; ++n) {
      split_phases(px + n * g.image(), g, d, in.data());
      const float* gn = pg + n * g.o * hw;
      float* pgt = gt.data();
      conv_kernels::transpose_to_rows(gn, g.o, hw, pgt, o_pad);
      conv_kernels::shifted_gemm_wgrad(in.data(), d.off.data(), k, g.ho, g.wo, d.wq, pgt, o_pad,
                                       dwt);
    }
  });
  Tensor dw = Tensor::empty(weight_shape);
  float* pdw = dw.data();
  const float* pp = partial.data();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, k, 16),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      for (int64_t kk = r.begin(); kk < r.end(); ++kk)
                        for (int64_t oc = 0; oc < g.o; ++oc) {
                          float sum = 0.0f;
                          for (int64_t c = 0; c < chunks; ++c)
                            sum += pp[c * part + kk * o_pad + oc];
                          pdw[oc * k + kk] = sum;
                        }
                    });
  return dw;
}

}  // namespace

Shape conv2d_output_shape(const Shape& x, const Shape& weight, const Conv2dOptions& options) {
  check_lazy(x.rank() == 4 && weight.rank() == 4, [&] {
    return "conv2d: expected x [N, C, H, W] and weight [O, C, kh, kw], got x " + x.to_string() +
           " and weight " + weight.to_string();
  });
  check_lazy(x[1] == weight[1], [&] {
    return "conv2d: channel mismatch: x " + x.to_string() + " has " + std::to_string(x[1]) +
           " channels but weight " + weight.to_string() + " expects " + std::to_string(weight[1]);
  });
  check_lazy(options.stride >= 1 && options.dilation >= 1 && options.padding >= 0, [&] {
    return "conv2d: expected stride >= 1, dilation >= 1, padding >= 0, got stride " +
           std::to_string(options.stride) + ", dilation " + std::to_string(options.dilation) +
           ", padding " + std::to_string(options.padding);
  });
  check_lazy(weight[0] >= 1 && weight[2] >= 1 && weight[3] >= 1, [&] {
    return "conv2d: expected a non-empty weight [O, C, kh, kw], got " + weight.to_string();
  });
  const int64_t span_h = int64_t{options.dilation} * (weight[2] - 1) + 1;
  const int64_t span_w = int64_t{options.dilation} * (weight[3] - 1) + 1;
  const int64_t padded_h = x[2] + 2 * int64_t{options.padding};
  const int64_t padded_w = x[3] + 2 * int64_t{options.padding};
  check_lazy(span_h <= padded_h && span_w <= padded_w, [&] {
    return "conv2d: kernel of extent " + std::to_string(span_h) + "x" + std::to_string(span_w) +
           " (weight " + weight.to_string() + ", dilation " + std::to_string(options.dilation) +
           ") is larger than the padded input " + std::to_string(padded_h) + "x" +
           std::to_string(padded_w) + " (x " + x.to_string() + ", padding " +
           std::to_string(options.padding) + ")";
  });
  return Shape{x[0], weight[0], (padded_h - span_h) / options.stride + 1,
               (padded_w - span_w) / options.stride + 1};
}

Tensor conv2d_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      const Conv2dOptions& options) {
  const Geometry g = make_geometry(x.shape(), weight.shape(), options);
  if (bias.defined()) {
    check_lazy(bias.rank() == 1 && bias.dim(0) == g.o, [&] {
      return "conv2d: expected bias [" + std::to_string(g.o) + "] for weight " +
             weight.shape().to_string() + ", got " + bias.shape().to_string();
    });
  }
  const Tensor cx = x.contiguous();
  const Tensor cw = weight.contiguous();
  const Tensor cb = bias.defined() ? bias.contiguous() : Tensor();
  Tensor out = Tensor::empty(Shape{g.n, g.o, g.ho, g.wo});
  forward_into(cx.data(), cw.data(), cb.defined() ? cb.data() : nullptr, out.data(), g);
  return out;
}

Tensor conv2d_forward_fused(const Tensor& x, const Tensor& weight, const Tensor& bias,
                            const Conv2dEpilogue& epilogue, const Conv2dOptions& options) {
  const Geometry g = make_geometry(x.shape(), weight.shape(), options);
  if (bias.defined()) {
    check_lazy(bias.rank() == 1 && bias.dim(0) == g.o, [&] {
      return "conv2d_forward_fused: expected bias [" + std::to_string(g.o) + "] for weight " +
             weight.shape().to_string() + ", got " + bias.shape().to_string();
    });
  }
  const auto o = static_cast<size_t>(g.o);
  check_lazy(
      epilogue.mean.size() == o && epilogue.scale.size() == o && epilogue.offset.size() == o, [&] {
        return "conv2d_forward_fused: expected epilogue mean, scale and offset of " +
               std::to_string(g.o) + " values for weight " + weight.shape().to_string() + ", got " +
               std::to_string(epilogue.mean.size()) + ", " + std::to_string(epilogue.scale.size()) +
               " and " + std::to_string(epilogue.offset.size());
      });
  const Shape out_shape{g.n, g.o, g.ho, g.wo};
  if (epilogue.residual.defined())
    check_lazy(epilogue.residual.shape() == out_shape, [&] {
      return "conv2d_forward_fused: expected a residual of shape " + out_shape.to_string() +
             ", got " + epilogue.residual.shape().to_string();
    });
  Conv2dEpilogue e = epilogue;
  if (e.residual.defined()) e.residual = e.residual.contiguous();
  const Tensor cx = x.contiguous();
  const Tensor cw = weight.contiguous();
  const Tensor cb = bias.defined() ? bias.contiguous() : Tensor();
  Tensor out = Tensor::empty(out_shape);
  forward_into(cx.data(), cw.data(), cb.defined() ? cb.data() : nullptr, out.data(), g, &e);
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& x_shape,
                             const Conv2dOptions& options) {
  const Geometry g = make_geometry(x_shape, weight.shape(), options);
  check_grad_out(grad_out, Shape{g.n, g.o, g.ho, g.wo}, "conv2d_backward_input");
  const Tensor cg = grad_out.contiguous();
  const Tensor cw = weight.contiguous();
  if (flipped_backward_applies(g)) {
    Tensor dx = Tensor::empty(x_shape);
    backward_input_flipped(cg.data(), cw.data(), dx.data(), g);
    return dx;
  }
  Tensor dx(x_shape);
  // Otherwise (strided, or padding beyond the kernel's reach): cols = W^T g, then col2im.
  const int64_t hw = g.hw(), ckk = g.ckk(), group = g.group(), rows = g.band_rows();
  const int64_t groups = (g.n + group - 1) / group;
  const float* pg = cg.data();
  float* pdx = dx.data();
  const ConstMatMap wm(cw.data(), g.o, ckk);

  for_each_chunk(groups, balance_chunks(groups), [&](int64_t, int64_t first, int64_t end) {
    if (first == end) return;
    // Without padding col2im accumulates straight into dx (zero-filled); else into a padded copy.
    auto dxpad = g.padded() ? scratch(g.padded_group()) : nullptr;
    auto col = scratch(g.col_tile());
    auto gbuf = group > 1 ? scratch(g.o * group * hw) : nullptr;
    for (int64_t gi = first; gi < end; ++gi) {
      const int64_t n0 = gi * group;
      const int64_t nb = std::min(group, g.n - n0);
      const float* gn = pg + n0 * g.o * hw;
      float* target = pdx + n0 * g.image();
      if (g.padded()) {
        std::fill(dxpad.get(), dxpad.get() + nb * g.c * g.hp() * g.wp(), 0.0f);
        target = dxpad.get();
      }
      if (nb == 1) {
        for (int64_t r0 = 0; r0 < g.ho; r0 += rows) {
          const int64_t nr = std::min(rows, g.ho - r0);
          MutMatMap(col.get(), ckk, nr * g.wo).noalias() = wm.transpose() * band(gn, r0, nr, g);
          col2im(col.get(), 1, r0, nr, target, g);
        }
      } else {
        const int64_t ld = nb * hw;
        gather_grad(gn, nb, gbuf.get(), g);
        MutMatMap(col.get(), ckk, ld).noalias() = wm.transpose() * ConstMatMap(gbuf.get(), g.o, ld);
        col2im(col.get(), nb, 0, g.ho, target, g);
      }
      if (g.padded()) unpad_images(dxpad.get(), nb, pdx + n0 * g.image(), g);
    }
  });
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dOptions& options) {
  const Geometry g = make_geometry(x.shape(), weight_shape, options);
  check_grad_out(grad_out, Shape{g.n, g.o, g.ho, g.wo}, "conv2d_backward_weight");
  const Tensor cg = grad_out.contiguous();
  const Tensor cx = x.contiguous();
  return backward_weight_direct(cg.data(), cx.data(), weight_shape, g);
}

Tensor conv2d_backward_bias(const Tensor& grad_out) {
  check_lazy(grad_out.rank() == 4, [&] {
    return "conv2d_backward_bias: expected grad_out [N, O, Ho, Wo], got " +
           grad_out.shape().to_string();
  });
  const Tensor cg = grad_out.contiguous();
  const int64_t n = cg.dim(0), o = cg.dim(1), hw = cg.dim(2) * cg.dim(3);
  Tensor db(Shape{o});
  const float* pg = cg.data();
  float* pdb = db.data();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, o), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t oc = r.begin(); oc < r.end(); ++oc) {
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const float* p = pg + (i * o + oc) * hw;
        float row = 0.0f;
        for (int64_t k = 0; k < hw; ++k) row += p[k];
        s += row;
      }
      pdb[oc] = static_cast<float>(s);
    }
  });
  return db;
}

}  // namespace bitgrad::core
