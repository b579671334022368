// conv_test.cpp: core/conv.hpp against a naive 7-loop direct convolution in double (forward, dx, dW,
// db) over a grid of strides, paddings, dilations, kernels and batch sizes; thread-count invariance;
// shape validation errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "core/conv.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/tensor_ops.hpp"
#include "core/threads.hpp"

namespace bitgrad::core {
namespace {

// Reference results with, per element, the sum of |terms| (the scale of float rounding error).
struct Ref {
  std::vector<double> out, out_mag, dx, dx_mag, dw, dw_mag, db, db_mag;
};

// out[n,o,oh,ow] = b[o] + sum_{c,i,j} x[n,c,oh*s-p+i*d, ow*s-p+j*d] w[o,c,i,j], and the adjoints for
// the given grad_out g, all in the same seven loops.
Ref naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& g,
               const Conv2dOptions& opt) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const int64_t o = w.dim(0), kh = w.dim(2), kw = w.dim(3);
  const int64_t ho = g.dim(2), wo = g.dim(3);
  Ref r;
  r.out.assign(static_cast<size_t>(g.numel()), 0.0);
  r.out_mag = r.out;
  r.dx.assign(static_cast<size_t>(x.numel()), 0.0);
  r.dx_mag = r.dx;
  r.dw.assign(static_cast<size_t>(w.numel()), 0.0);
  r.dw_mag = r.dw;
  r.db.assign(static_cast<size_t>(o), 0.0);
  r.db_mag = r.db;
  const float* px = x.data();
  const float* pw = w.data();
  const float* pg = g.data();
  for (int64_t in = 0; in < n; ++in)
    for (int64_t oc = 0; oc < o; ++oc)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          const auto oi = static_cast<size_t>(((in * o + oc) * ho + oh) * wo + ow);
          const double gv = pg[oi];
          if (b.defined()) {
            r.out[oi] += b.data()[oc];
            r.out_mag[oi] += std::fabs(b.data()[oc]);
          }
          r.db[static_cast<size_t>(oc)] += gv;
          r.db_mag[static_cast<size_t>(oc)] += std::fabs(gv);
          for (int64_t ic = 0; ic < c; ++ic)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t ih = oh * opt.stride - opt.padding + i * opt.dilation;
                const int64_t iw = ow * opt.stride - opt.padding + j * opt.dilation;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                const auto xi = static_cast<size_t>(((in * c + ic) * h + ih) * wd + iw);
                const auto wi = static_cast<size_t>(((oc * c + ic) * kh + i) * kw + j);
                const double xv = px[xi], wv = pw[wi];
                r.out[oi] += xv * wv;
                r.out_mag[oi] += std::fabs(xv * wv);
                r.dx[xi] += gv * wv;
                r.dx_mag[xi] += std::fabs(gv * wv);
                r.dw[wi] += gv * xv;
                r.dw_mag[wi] += std::fabs(gv * xv);
              }
        }
  return r;
}

// |got - want| <= 1e-5 * (1 + sum |terms|) element-wise; returns the first failing index or -1.
int64_t first_mismatch(const Tensor& got, const std::vector<double>& want,
                       const std::vector<double>& mag) {
  if (got.numel() != static_cast<int64_t>(want.size())) return 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (std::fabs(got.data()[i] - want[i]) > 1e-5 * (1.0 + mag[i])) return static_cast<int64_t>(i);
  return -1;
}

void check_against_naive(const Shape& xs, const Shape& ws, bool with_bias, const Conv2dOptions& opt,
                         uint64_t seed) {
  Rng rng(seed);
  const Tensor x = rng.uniform_tensor(xs, -1.0f, 1.0f);
  const Tensor w = rng.uniform_tensor(ws, -1.0f, 1.0f);
  const Tensor b = with_bias ? rng.uniform_tensor(Shape{ws[0]}, -1.0f, 1.0f) : Tensor();
  const Shape os = conv2d_output_shape(xs, ws, opt);
  const Tensor g = rng.uniform_tensor(os, -1.0f, 1.0f);
  const Ref ref = naive_conv(x, w, b, g, opt);

  const Tensor out = conv2d_forward(x, w, b, opt);
  REQUIRE(out.shape() == os);
  CHECK(first_mismatch(out, ref.out, ref.out_mag) == -1);
  CHECK(first_mismatch(conv2d_backward_input(g, w, xs, opt), ref.dx, ref.dx_mag) == -1);
  CHECK(first_mismatch(conv2d_backward_weight(g, x, ws, opt), ref.dw, ref.dw_mag) == -1);
  CHECK(first_mismatch(conv2d_backward_bias(g), ref.db, ref.db_mag) == -1);
}

TEST_CASE("conv2d matches a naive direct convolution over a grid of options", "[conv]") {
  struct Kernel {
    int64_t kh, kw;
  };
  uint64_t seed = 1;
  for (int64_t n : {1, 3})
    for (Kernel k : {Kernel{1, 1}, Kernel{3, 3}, Kernel{2, 3}})
      for (int stride : {1, 2})
        for (int padding : {0, 1, 2})
          for (int dilation : {1, 2})
            for (bool bias : {false, true}) {
              const Conv2dOptions opt{stride, padding, dilation};
              INFO("n " << n << " kernel " << k.kh << "x" << k.kw << " stride " << stride
                        << " padding " << padding << " dilation " << dilation << " bias " << bias);
              check_against_naive(Shape{n, 3, 7, 6}, Shape{4, 3, k.kh, k.kw}, bias, opt, seed++);
            }
}

TEST_CASE("conv2d matches the naive convolution across image groups and row bands", "[conv]") {
  // Small maps put several images into one GEMM, with a partial last group when B does not divide N;
  // large maps run one band of output rows per GEMM.
  struct Case {
    Shape x, w;
    Conv2dOptions opt;
  };
  const std::vector<Case> cases = {
      {Shape{7, 5, 9, 9}, Shape{6, 5, 3, 3}, {1, 1, 1}},    // 9x9 maps
      {Shape{7, 5, 9, 9}, Shape{6, 5, 3, 3}, {2, 1, 1}},    // 5x5 maps, the whole batch at once
      {Shape{20, 4, 8, 8}, Shape{8, 4, 3, 3}, {1, 1, 1}},   // 8x8, several groups and chunks
      {Shape{5, 3, 16, 16}, Shape{4, 3, 3, 3}, {1, 1, 1}},  // one image per GEMM
      {Shape{6, 4, 6, 6}, Shape{8, 4, 1, 1}, {2, 0, 1}},    // strided 1x1 (option-B shortcut)
      {Shape{9, 8, 5, 5}, Shape{4, 8, 1, 1}, {1, 0, 1}},    // pointwise: no im2col
      // Large maps are cut into bands of output rows, the last one partial.
      {Shape{2, 3, 24, 20}, Shape{4, 3, 3, 3}, {1, 1, 1}},
      {Shape{2, 3, 40, 36}, Shape{5, 3, 3, 3}, {2, 1, 1}},
      {Shape{2, 2, 30, 33}, Shape{3, 2, 3, 2}, {1, 2, 2}},
      // Output rows of whole SIMD vectors and whole weight blocks (ResNet's 32x32 and 16x16 maps).
      {Shape{3, 8, 16, 16}, Shape{16, 8, 3, 3}, {1, 1, 1}},
      {Shape{2, 3, 32, 32}, Shape{16, 3, 3, 3}, {2, 1, 1}},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    INFO("x " << c.x.to_string() << " w " << c.w.to_string() << " stride " << c.opt.stride);
    check_against_naive(c.x, c.w, true, c.opt, seed++);
  }
}

TEST_CASE("conv2d gives bit-identical results with 1 and 2 threads", "[conv]") {
  const int previous = num_threads();
  Rng rng(7);
  for (int stride : {1, 2}) {
    const Conv2dOptions opt{stride, 1, 1};
    const Tensor x = rng.uniform_tensor(Shape{32, 8, 12, 12}, -1.0f, 1.0f);
    const Tensor w = rng.uniform_tensor(Shape{16, 8, 3, 3}, -1.0f, 1.0f);
    const Tensor b = rng.uniform_tensor(Shape{16}, -1.0f, 1.0f);
    const Tensor g = rng.uniform_tensor(conv2d_output_shape(x.shape(), w.shape(), opt), -1.0f, 1.0f);
    std::vector<Tensor> results[2];
    for (int t = 0; t < 2; ++t) {
      set_num_threads(t + 1);
      results[t] = {conv2d_forward(x, w, b, opt), conv2d_backward_input(g, w, x.shape(), opt),
                    conv2d_backward_weight(g, x, w.shape(), opt), conv2d_backward_bias(g)};
    }
    for (size_t i = 0; i < results[0].size(); ++i) {
      INFO("stride " << stride << " result " << i);
      CHECK(max_abs_diff(results[0][i], results[1][i]) == 0.0f);
    }
  }
  set_num_threads(previous);
}

TEST_CASE("conv2d_output_shape computes sizes and rejects bad shapes and options", "[conv]") {
  using Catch::Matchers::Contains;
  CHECK(conv2d_output_shape(Shape{2, 3, 32, 32}, Shape{16, 3, 3, 3}, {2, 1, 1}) ==
        Shape{2, 16, 16, 16});
  CHECK(conv2d_output_shape(Shape{1, 1, 28, 20}, Shape{4, 1, 3, 5}, {1, 0, 2}) ==
        Shape{1, 4, 24, 12});
  CHECK(conv2d_output_shape(Shape{1, 1, 3, 3}, Shape{1, 1, 5, 5}, {1, 1, 1}) == Shape{1, 1, 1, 1});

  CHECK_THROWS_WITH(conv2d_output_shape(Shape{2, 3, 5, 5}, Shape{4, 2, 3, 3}, {}),
                    Contains("[2, 3, 5, 5]") && Contains("[4, 2, 3, 3]"));
  CHECK_THROWS_WITH(conv2d_output_shape(Shape{1, 1, 3, 3}, Shape{1, 1, 5, 5}, {}),
                    Contains("larger than the padded input"));
  CHECK_THROWS_WITH(conv2d_output_shape(Shape{1, 1, 5, 5}, Shape{1, 1, 3, 3}, {1, 0, 3}),
                    Contains("larger than the padded input"));
  CHECK_THROWS_AS(conv2d_output_shape(Shape{3, 5, 5}, Shape{1, 3, 3, 3}, {}), Error);
  CHECK_THROWS_AS(conv2d_output_shape(Shape{1, 3, 5, 5}, Shape{1, 3, 3, 3}, {0, 0, 1}), Error);
  CHECK_THROWS_AS(conv2d_output_shape(Shape{1, 3, 5, 5}, Shape{1, 3, 3, 3}, {1, -1, 1}), Error);
  CHECK_THROWS_AS(conv2d_output_shape(Shape{1, 3, 5, 5}, Shape{1, 3, 3, 3}, {1, 0, 0}), Error);

  const Tensor x(Shape{1, 3, 5, 5});
  const Tensor w(Shape{4, 3, 3, 3});
  CHECK_THROWS_WITH(conv2d_forward(x, w, Tensor(Shape{3}), {}), Contains("bias"));
  CHECK_THROWS_WITH(conv2d_backward_input(Tensor(Shape{1, 4, 5, 5}), w, x.shape(), {}),
                    Contains("[1, 4, 3, 3]"));
  CHECK_THROWS_AS(conv2d_backward_weight(Tensor(Shape{1, 4, 5, 5}), x, w.shape(), {}), Error);
}

}  // namespace
}  // namespace bitgrad::core
