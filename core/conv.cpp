// conv.cpp: 2-D convolution as im2col + Eigen GEMM, oneTBB over the batch (core/conv.hpp).
// Work is cut into tiles small enough that the im2col matrix is still in cache when Eigen packs it:
// a band of output rows of one image, or, for small maps, a group of whole images in one GEMM (so
// GEMMs never get too thin). Tiles run in chunks (one scratch set per chunk). The weight gradient
// sums per-chunk partials in chunk order over a chunk count independent of scheduling, so results
// are the same for a given thread count (and for any count up to kMinChunks).
// Not here: a direct/Winograd algorithm or packed-integer kernels (kernels/).
#include "core/conv.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/eigen_view.hpp"
#include "core/error.hpp"
#include "core/threads.hpp"

namespace bitgrad::core {

namespace {

// GEMM widths in output columns. Small maps group whole images up to kGroupCols (Eigen's packing
// and call overheads dominate thinner GEMMs; 512 measured ~25% faster than 256 on 8x8 maps); large
// maps are cut into bands of rows of about kBandCols, so that the [C*kh*kw, cols] im2col tile of a
// ResNet layer is still in L2 when Eigen packs it.
constexpr int64_t kGroupCols = 512;
constexpr int64_t kBandCols = 256;
// Lower bound on the number of weight-gradient chunks (partial dW sums), independent of threads.
constexpr int64_t kMinChunks = 8;
// Stride-1 im2col copies rows in whole 16-float chunks; buffers carry kSlack floats for the overrun.
constexpr int64_t kChunk = 16;
constexpr int64_t kSlack = kChunk;

// Stride-1 row copies in whole 16-float chunks, the chunk count fixed at compile time: GCC turns a
// copy loop of run-time length into a memcpy call per row, which costs more than the copy itself for
// 8..32-float rows. Row r copies src + r*src_stride to dst + r*dst_stride; chunks may overrun.
template <int64_t kChunks>
void copy_rows(float* dst, const float* src, int64_t rows, int64_t dst_stride, int64_t src_stride) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dst_stride, src + r * src_stride, kChunks * kChunk * sizeof(float));
}
void copy_rows(int64_t chunks, float* dst, const float* src, int64_t rows, int64_t dst_stride,
               int64_t src_stride) {
  switch (chunks) {
    case 1: return copy_rows<1>(dst, src, rows, dst_stride, src_stride);
    case 2: return copy_rows<2>(dst, src, rows, dst_stride, src_stride);
    case 3: return copy_rows<3>(dst, src, rows, dst_stride, src_stride);
    case 4: return copy_rows<4>(dst, src, rows, dst_stride, src_stride);
    default:
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(dst + r * dst_stride, src + r * src_stride,
                    static_cast<size_t>(chunks * kChunk) * sizeof(float));
  }
}

// Strided row gathers d[ow] = s[ow * kStride] with the stride known at compile time, so that GCC
// vectorises them (with permutes) instead of emitting one scalar move per element.
template <int64_t kStride>
void gather_rows(float* dst, const float* src, int64_t rows, int64_t width, int64_t src_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = src + r * src_stride;
    float* d = dst + r * width;
    for (int64_t ow = 0; ow < width; ++ow) d[ow] = s[ow * kStride];
  }
}

// The adjoint: d[ow * kStride] += s[ow], row r of d at r * dst_stride.
template <int64_t kStride>
void scatter_add_rows(float* dst, const float* src, int64_t rows, int64_t width, int64_t dst_stride) {
  for (int64_t r = 0; r < rows; ++r) {
    float* d = dst + r * dst_stride;
    const float* s = src + r * width;
    for (int64_t ow = 0; ow < width; ++ow) d[ow * kStride] += s[ow];
  }
}

using StridedMap = Eigen::Map<MatrixRM, 0, Eigen::OuterStride<>>;
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
  // 1x1, stride 1, no padding: the im2col matrix is the image itself.
  bool pointwise() const { return kh == 1 && kw == 1 && stride == 1 && !padded(); }
  // Images per work unit: more than one only for maps below kBandCols.
  int64_t group() const {
    if (pointwise() || n == 0) return 1;
    return hw() >= kBandCols ? 1 : std::clamp<int64_t>((kGroupCols + hw() - 1) / hw(), 1, n);
  }
  // Output rows per GEMM within a unit (all of them for groups and pointwise convs).
  int64_t band_rows() const {
    if (pointwise() || group() > 1) return ho;
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

// xp[b] = x[b] with ph zero rows above and below, pw zero columns left and right, for nb images:
// [nb, C, Hp, Wp] (+ zeroed slack). Rows are copied in whole chunks where the source chunk stays
// inside the plane; the overrun stays inside the destination plane and lands on the row's right
// border or on later rows, all written afterwards.
void pad_images(const float* x, int64_t nb, float* xp, const Geometry& g) {
  const int64_t hp = g.hp(), wp = g.wp(), planes = nb * g.c;
  const int64_t chunks = (g.w + kChunk - 1) / kChunk;
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* src = x + pl * g.h * g.w;
    float* dst = xp + pl * hp * wp;
    std::fill(dst, dst + g.ph * wp, 0.0f);
    for (int64_t r = 0; r < g.h; ++r) {
      float* row = dst + (r + g.ph) * wp;
      std::fill(row, row + g.pw, 0.0f);
      if (r * g.w + chunks * kChunk <= g.h * g.w) copy_rows(chunks, row + g.pw, src + r * g.w, 1, 0, 0);
      else std::copy(src + r * g.w, src + (r + 1) * g.w, row + g.pw);
      std::fill(row + g.pw + g.w, row + wp, 0.0f);
    }
    std::fill(dst + (g.ph + g.h) * wp, dst + hp * wp, 0.0f);
  }
  std::fill(xp + planes * hp * wp, xp + planes * hp * wp + kSlack, 0.0f);
}

// The tile of output rows [r0, r0 + nr) of nb images:
//   col[(c*kh + i)*kw + j, (b*nr + r)*Wo + ow] = xp[b, c, (r0 + r)*s + i*d, ow*s + j*d]
// from padded images. Written in strictly increasing address order, so the stride-1 path may copy
// whole 16-float chunks: each chunk's overrun lands where the next write starts (col and xp carry
// kSlack floats at their ends).
void im2col(const float* xp, int64_t nb, int64_t r0, int64_t nr, float* col, const Geometry& g) {
  const int64_t hp = g.hp(), wp = g.wp(), tile = nr * g.wo, ld = nb * tile;
  const int64_t chunks = (g.wo + kChunk - 1) / kChunk;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        float* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        for (int64_t b = 0; b < nb; ++b) {
          const float* src =
              xp + (b * g.c + c) * hp * wp + (r0 * g.stride + i * g.dil) * wp + j * g.dil;
          float* dst = row + b * tile;
          if (g.stride == 1) {
            copy_rows(chunks, dst, src, nr, g.wo, wp);
            continue;
          }
          if (g.stride == 2) {
            gather_rows<2>(dst, src, nr, g.wo, 2 * wp);
            continue;
          }
          for (int64_t r = 0; r < nr; ++r) {
            const float* s = src + r * g.stride * wp;
            float* d = dst + r * g.wo;
            for (int64_t ow = 0; ow < g.wo; ++ow) d[ow] = s[ow * g.stride];
          }
        }
      }
}

// The adjoint of im2col on the same tile: dxp[b, c, ...] += col[...] (dxp padded like xp).
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
StridedMap band(float* image_out, int64_t r0, int64_t nr, const Geometry& g) {
  return StridedMap(image_out + r0 * g.wo, g.o, nr * g.wo, Eigen::OuterStride<>(g.hw()));
}
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

// out [N, O, Ho, Wo] (zero-filled by the caller) = conv(x, w) + bias (bias may be null).
void forward_into(const float* px, const float* pw, const float* pb, float* po, const Geometry& g) {
  const int64_t hw = g.hw(), ckk = g.ckk(), group = g.group(), rows = g.band_rows();
  const int64_t groups = (g.n + group - 1) / group;
  const ConstMatMap wm(pw, g.o, ckk);
  // Fills rows [r0, r0 + nr) of image n's output with the bias (the GEMM then accumulates onto it).
  auto fill_bias = [&](int64_t n, int64_t r0, int64_t nr) {
    if (pb == nullptr) return;
    for (int64_t oc = 0; oc < g.o; ++oc) {
      float* row = po + (n * g.o + oc) * hw + r0 * g.wo;
      std::fill(row, row + nr * g.wo, pb[oc]);
    }
  };

  for_each_chunk(groups, balance_chunks(groups), [&](int64_t, int64_t first, int64_t end) {
    if (first == end) return;
    if (g.pointwise()) {  // the image is its own im2col matrix
      for (int64_t n = first; n < end; ++n) {
        fill_bias(n, 0, g.ho);
        MutMatMap(po + n * g.o * hw, g.o, hw).noalias() +=
            wm * ConstMatMap(px + n * g.image(), ckk, hw);
      }
      return;
    }
    auto xpad = scratch(g.padded_group());
    auto col = scratch(g.col_tile());
    auto tmp = group > 1 ? scratch(g.o * group * hw) : nullptr;
    for (int64_t gi = first; gi < end; ++gi) {
      const int64_t n0 = gi * group;
      const int64_t nb = std::min(group, g.n - n0);
      float* on = po + n0 * g.o * hw;
      pad_images(px + n0 * g.image(), nb, xpad.get(), g);
      if (nb == 1) {  // bands of rows, straight into the NCHW output
        for (int64_t r0 = 0; r0 < g.ho; r0 += rows) {
          const int64_t nr = std::min(rows, g.ho - r0);
          im2col(xpad.get(), 1, r0, nr, col.get(), g);
          fill_bias(n0, r0, nr);
          band(on, r0, nr, g).noalias() += wm * ConstMatMap(col.get(), ckk, nr * g.wo);
        }
        continue;
      }
      const int64_t ld = nb * hw;  // whole images: one GEMM, then scatter to NCHW
      im2col(xpad.get(), nb, 0, g.ho, col.get(), g);
      MutMatMap(tmp.get(), g.o, ld).noalias() = wm * ConstMatMap(col.get(), ckk, ld);
      for (int64_t b = 0; b < nb; ++b)
        for (int64_t oc = 0; oc < g.o; ++oc) {
          const float* src = tmp.get() + oc * ld + b * hw;
          float* dst = on + (b * g.o + oc) * hw;
          const float bv = pb != nullptr ? pb[oc] : 0.0f;
          for (int64_t k = 0; k < hw; ++k) dst[k] = src[k] + bv;
        }
    }
  });
}

// Stride 1: dx is the "full" convolution of grad_out with the flipped, transposed kernel,
// W'[c, o, i, j] = W[o, c, kh-1-i, kw-1-j], padding d*(k-1) - p (when that is >= 0). Running it
// through forward_into avoids col2im's scattered accumulation and the GEMM's zeroing of col.
// It moves O*kh*kw values per output position through im2col where col2im moves about 2*C*kh*kw
// (GEMM result, then accumulation), so it is used only when O is not much larger than C (not for
// stems like 3 -> 16).
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
  Tensor out(Shape{g.n, g.o, g.ho, g.wo});
  forward_into(cx.data(), cw.data(), cb.defined() ? cb.data() : nullptr, out.data(), g);
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& weight, const Shape& x_shape,
                             const Conv2dOptions& options) {
  const Geometry g = make_geometry(x_shape, weight.shape(), options);
  check_grad_out(grad_out, Shape{g.n, g.o, g.ho, g.wo}, "conv2d_backward_input");
  const Tensor cg = grad_out.contiguous();
  const Tensor cw = weight.contiguous();
  Tensor dx(x_shape);
  if (!g.pointwise() && flipped_backward_applies(g)) {
    backward_input_flipped(cg.data(), cw.data(), dx.data(), g);
    return dx;
  }
  // Otherwise (strided, or padding beyond the kernel's reach): cols = W^T g, then col2im.
  const int64_t hw = g.hw(), ckk = g.ckk(), group = g.group(), rows = g.band_rows();
  const int64_t groups = (g.n + group - 1) / group;
  const float* pg = cg.data();
  float* pdx = dx.data();
  const ConstMatMap wm(cw.data(), g.o, ckk);

  for_each_chunk(groups, balance_chunks(groups), [&](int64_t, int64_t first, int64_t end) {
    if (first == end) return;
    if (g.pointwise()) {  // dx_n = W^T g_n, written in place
      for (int64_t n = first; n < end; ++n)
        MutMatMap(pdx + n * g.image(), g.c, hw).noalias() =
            wm.transpose() * ConstMatMap(pg + n * g.o * hw, g.o, hw);
      return;
    }
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
  const int64_t hw = g.hw(), ckk = g.ckk(), group = g.group(), rows = g.band_rows();
  const int64_t groups = (g.n + group - 1) / group;
  const int64_t chunks = std::clamp<int64_t>(std::max<int64_t>(kMinChunks, num_threads()), 1,
                                             std::max<int64_t>(groups, 1));
  const int64_t wsize = g.o * ckk;
  std::vector<float> partial(static_cast<size_t>(chunks * wsize), 0.0f);
  const float* pg = cg.data();
  const float* px = cx.data();

  for_each_chunk(groups, chunks, [&](int64_t k, int64_t first, int64_t end) {
    if (first == end) return;
    MutMatMap dw(partial.data() + k * wsize, g.o, ckk);
    if (g.pointwise()) {
      for (int64_t n = first; n < end; ++n)
        dw.noalias() += ConstMatMap(pg + n * g.o * hw, g.o, hw) *
                        ConstMatMap(px + n * g.image(), ckk, hw).transpose();
      return;
    }
    auto xpad = scratch(g.padded_group());
    auto col = scratch(g.col_tile());
    auto gbuf = group > 1 ? scratch(g.o * group * hw) : nullptr;
    for (int64_t gi = first; gi < end; ++gi) {
      const int64_t n0 = gi * group;
      const int64_t nb = std::min(group, g.n - n0);
      const float* gn = pg + n0 * g.o * hw;
      pad_images(px + n0 * g.image(), nb, xpad.get(), g);
      if (nb == 1) {
        for (int64_t r0 = 0; r0 < g.ho; r0 += rows) {
          const int64_t nr = std::min(rows, g.ho - r0);
          im2col(xpad.get(), 1, r0, nr, col.get(), g);
          dw.noalias() += band(gn, r0, nr, g) * ConstMatMap(col.get(), ckk, nr * g.wo).transpose();
        }
        continue;
      }
      const int64_t ld = nb * hw;
      gather_grad(gn, nb, gbuf.get(), g);
      im2col(xpad.get(), nb, 0, g.ho, col.get(), g);
      dw.noalias() += ConstMatMap(gbuf.get(), g.o, ld) * ConstMatMap(col.get(), ckk, ld).transpose();
    }
  });

  // Sum the partials in chunk order (each element independently, so this part may run in parallel).
  Tensor dw(weight_shape);
  float* pdw = dw.data();
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, wsize, 4096), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t k = 0; k < chunks; ++k) {
      const float* p = partial.data() + k * wsize;
      for (int64_t i = r.begin(); i < r.end(); ++i) pdw[i] += p[i];
    }
  });
  return dw;
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
