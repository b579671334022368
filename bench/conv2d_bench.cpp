// conv2d_bench.cpp: core/conv.hpp's forward, backward-input and backward-weight passes at the 3x3 conv
// shapes of ResNet-20 for batch 128, on 28x28 (Fashion-MNIST) and 32x32 (CIFAR) inputs, next to raw
// Eigen GEMM at the matching [O, C*9] x [C*9, HW*N] shape. Reports GFLOP/s (2*N*O*Ho*Wo*C*kh*kw per
// pass) and the thread count. Threads: BITGRAD_THREADS when set, else 2.
// Not here: whole-model training steps (those live with the nn benchmarks).
#include <benchmark/benchmark.h>
#include <tbb/parallel_for.h>

#include <string>
#include <vector>

#include "bench_threads.hpp"
#include "core/conv.hpp"
#include "core/rng.hpp"
#include "core/tensor_ops.hpp"
#include "core/threads.hpp"

namespace {

using bitgrad::core::Conv2dOptions;
using bitgrad::core::Rng;
using bitgrad::core::Shape;
using bitgrad::core::Tensor;

constexpr int64_t kBatch = 128;

// One ResNet-20 conv: input size, channels in and out, stride (3x3 kernel, padding 1).
struct ConvShape {
  int64_t h, c, o;
  int stride;
};

// Stages at h, h/2, h/4 (28 -> 28, 14, 7; 32 -> 32, 16, 8).
std::vector<ConvShape> resnet20_shapes(int64_t h, bool gray_stem) {
  std::vector<ConvShape> s;
  if (gray_stem) s.push_back({h, 1, 16, 1});
  s.push_back({h, 3, 16, 1});
  s.push_back({h, 16, 16, 1});
  s.push_back({h, 16, 32, 2});
  s.push_back({h / 2, 32, 32, 1});
  s.push_back({h / 2, 32, 64, 2});
  s.push_back({h / 4, 64, 64, 1});
  return s;
}

struct Problem {
  Tensor x, w, g;  // no bias: ResNet-20's convolutions are followed by batch norm
  Conv2dOptions opt;
  double flops;  // one pass
  std::string label;
};

Problem make_problem(const ConvShape& s) {
  Rng rng(42);
  Problem p;
  p.opt = Conv2dOptions{s.stride, 1, 1};
  p.x = rng.uniform_tensor(Shape{kBatch, s.c, s.h, s.h}, -1.0f, 1.0f);
  p.w = rng.uniform_tensor(Shape{s.o, s.c, 3, 3}, -0.5f, 0.5f);
  const Shape os = bitgrad::core::conv2d_output_shape(p.x.shape(), p.w.shape(), p.opt);
  p.g = rng.uniform_tensor(os, -1.0f, 1.0f);
  p.flops = 2.0 * static_cast<double>(kBatch * s.o * os[2] * os[3] * s.c * 9);
  p.label = std::to_string(s.h) + "x" + std::to_string(s.h) + " " + std::to_string(s.c) + "->" +
            std::to_string(s.o) + " s" + std::to_string(s.stride);
  return p;
}

void report(benchmark::State& state, const Problem& p, int threads) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(p.flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
  state.SetLabel(p.label);
}

void bm_forward(benchmark::State& state, ConvShape s) {
  const Problem p = make_problem(s);
  for (auto _ : state) benchmark::DoNotOptimize(bitgrad::core::conv2d_forward(p.x, p.w, Tensor(), p.opt));
  report(state, p, bitgrad::core::num_threads());
}

void bm_backward_input(benchmark::State& state, ConvShape s) {
  const Problem p = make_problem(s);
  for (auto _ : state)
    benchmark::DoNotOptimize(bitgrad::core::conv2d_backward_input(p.g, p.w, p.x.shape(), p.opt));
  report(state, p, bitgrad::core::num_threads());
}

void bm_backward_weight(benchmark::State& state, ConvShape s) {
  const Problem p = make_problem(s);
  for (auto _ : state)
    benchmark::DoNotOptimize(bitgrad::core::conv2d_backward_weight(p.g, p.x, p.w.shape(), p.opt));
  report(state, p, bitgrad::core::num_threads());
}

// Raw Eigen GEMM (core::matmul, single-threaded) at the forward's [O, C*9] x [C*9, Ho*Wo*N] shape:
// the ceiling one thread reaches on this shape without im2col or scatter costs.
void bm_gemm_baseline(benchmark::State& state, ConvShape s) {
  Problem p = make_problem(s);
  const int64_t ho = p.g.dim(2), wo = p.g.dim(3);
  Rng rng(7);
  const Tensor a = p.w.reshape({s.o, s.c * 9});
  const Tensor b = rng.uniform_tensor(Shape{s.c * 9, ho * wo * kBatch}, -1.0f, 1.0f);
  for (auto _ : state) benchmark::DoNotOptimize(bitgrad::core::matmul(a, b));
  p.label += " gemm [" + std::to_string(s.o) + "," + std::to_string(s.c * 9) + "]x[" +
             std::to_string(s.c * 9) + "," + std::to_string(ho * wo * kBatch) + "]";
  report(state, p, 1);
}

// The same GEMM split into per-image core::matmul calls run in parallel (oneTBB): the ceiling for
// the threaded conv, which does this plus im2col.
void bm_gemm_per_image(benchmark::State& state, ConvShape s) {
  Problem p = make_problem(s);
  const int64_t ho = p.g.dim(2), wo = p.g.dim(3);
  Rng rng(7);
  const Tensor a = p.w.reshape({s.o, s.c * 9});
  std::vector<Tensor> cols;
  for (int64_t n = 0; n < kBatch; ++n)
    cols.push_back(rng.uniform_tensor(Shape{s.c * 9, ho * wo}, -1.0f, 1.0f));
  for (auto _ : state) {
    tbb::parallel_for(int64_t{0}, kBatch, [&](int64_t n) {
      benchmark::DoNotOptimize(bitgrad::core::matmul(a, cols[static_cast<size_t>(n)]));
    });
  }
  p.label += " per-image gemm";
  report(state, p, bitgrad::core::num_threads());
}

void register_all() {
  for (int64_t h : {28, 32}) {
    for (const ConvShape& s : resnet20_shapes(h, h == 28)) {
      const std::string args = "/" + std::to_string(s.h) + "/" + std::to_string(s.c) + "/" +
                               std::to_string(s.o) + "/s" + std::to_string(s.stride);
      benchmark::RegisterBenchmark(("conv2d_forward" + args).c_str(), bm_forward, s)
          ->UseRealTime()->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("conv2d_backward_input" + args).c_str(), bm_backward_input, s)
          ->UseRealTime()->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("conv2d_backward_weight" + args).c_str(), bm_backward_weight, s)
          ->UseRealTime()->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("gemm_baseline" + args).c_str(), bm_gemm_baseline, s)
          ->UseRealTime()->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("gemm_per_image" + args).c_str(), bm_gemm_per_image, s)
          ->UseRealTime()->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bitgrad::bench::init_bench_threads();
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
