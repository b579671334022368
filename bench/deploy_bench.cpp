// deploy_bench.cpp: whole-model inference speed of ResNet-20 exported to the packed form
// (quant/export.hpp, kernels/runtime/packed_runtime.hpp) against the same network in FP32 on our
// engine (nn::ResNetCifar in eval mode under NoGradGuard, the fused conv + BN path), at batch 1
// (latency) and batch 64 (throughput), for 1x28x28 (Fashion-MNIST) and 3x32x32 (CIFAR) inputs.
// Packed cases: W2A2 min-max (uniform: bit-serial kernels) and APoT (activation codes {0,1,2,4}: int8
// kernels), and W4A4 LSQ (int8), each at every ISA tier this CPU runs (BITGRAD_KERNEL_TIER caps it).
// The QAT models have random weights, calibrated quantizers and BN statistics from a few train-mode
// passes: speed does not depend on the values. Counter "images/s". Threads: BITGRAD_THREADS, else 2.
// Targets (issue 6): packed W2A2 ResNet-20 batch 1 >= 5x our FP32 and >= 10x PyTorch FP32 eval
// (bench/pytorch_resnet_eval.py), batch 64 >= 4x our FP32. Run with
// --benchmark_enable_random_interleaving=true so the machine's drift hits every case alike.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bench_threads.hpp"
#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "kernels/cpu.hpp"
#include "kernels/runtime/packed_runtime.hpp"
#include "nn/resnet_cifar.hpp"
#include "quant/export.hpp"
#include "quant/policy.hpp"

namespace {

using bitgrad::autograd::Variable;
using bitgrad::core::Rng;
using bitgrad::core::Shape;
using bitgrad::core::Tensor;
namespace kernels = bitgrad::kernels;
namespace nn = bitgrad::nn;
namespace quant = bitgrad::quant;

Tensor images(Rng& rng, int64_t n, int64_t c, int64_t hw) {
  Tensor x = Tensor::empty(Shape{n, c, hw, hw});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.normal();
  return x;
}

// A calibrated ResNet-20 QAT model exported to the packed form.
kernels::PackedResNet packed_resnet20(quant::QuantMethod method, int bits, int64_t c, int64_t hw) {
  Rng rng(1);
  nn::ResNetCifar model(nn::ResNetCifarConfig{20, 10, c, nn::Shortcut::kA}, rng);
  quant::QuantPolicy policy;
  policy.method = method;
  policy.weight_bits = bits;
  policy.act_bits = bits;
  policy.edge = quant::default_edge(method);
  quant::quantize_model(model, policy);
  const Tensor x = images(rng, 32, c, hw);
  quant::calibrate(model, [&] { model.forward(Variable(x)); });
  {
    bitgrad::autograd::NoGradGuard no_grad;
    for (int i = 0; i < 3; ++i) model.forward(Variable(images(rng, 32, c, hw)));
  }
  return quant::export_resnet(model, policy, hw, hw);
}

void report(benchmark::State& state, int64_t batch) {
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void bm_packed(benchmark::State& state, quant::QuantMethod method, int bits, int64_t c, int64_t hw,
               kernels::Tier tier) {
  const int64_t batch = state.range(0);
  kernels::RuntimeOptions options;
  options.tier = tier;
  kernels::PackedRuntime runtime(packed_resnet20(method, bits, c, hw), options);
  Rng rng(2);
  const Tensor x = images(rng, batch, c, hw);
  runtime.forward(x);  // prepares the plan
  for (auto _ : state) benchmark::DoNotOptimize(runtime.forward(x).data());
  std::string label;
  for (const std::string& k : runtime.kernel_names(batch)) {
    if (label.find(k) == std::string::npos) label += (label.empty() ? "" : " ") + k;
  }
  state.SetLabel(label);
  report(state, batch);
}

void bm_fp32(benchmark::State& state, int64_t c, int64_t hw) {
  const int64_t batch = state.range(0);
  Rng rng(1);
  nn::ResNetCifar model(nn::ResNetCifarConfig{20, 10, c, nn::Shortcut::kA}, rng);
  model.eval();
  const Tensor x = images(rng, batch, c, hw);
  bitgrad::autograd::NoGradGuard no_grad;
  model.forward(Variable(x));
  for (auto _ : state) benchmark::DoNotOptimize(model.forward(Variable(x)).value().data());
  report(state, batch);
}

struct Register {
  Register() {
    struct Input {
      const char* name;
      int64_t c, hw;
    };
    struct Method {
      const char* name;
      quant::QuantMethod method;
      int bits;
    };
    const Input inputs[] = {{"1x28x28", 1, 28}, {"3x32x32", 3, 32}};
    const Method methods[] = {{"minmax_w2a2", quant::QuantMethod::kMinMax, 2},
                              {"apot_w2a2", quant::QuantMethod::kApot, 2},
                              {"lsq_w4a4", quant::QuantMethod::kLsq, 4}};
    for (const Input& in : inputs) {
      benchmark::RegisterBenchmark((std::string("fp32/resnet20/") + in.name).c_str(), bm_fp32, in.c, in.hw)
          ->Arg(1)
          ->Arg(64)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      for (const Method& m : methods)
        for (int t = 0; t <= static_cast<int>(kernels::cpu_tier()); ++t) {
          const auto tier = static_cast<kernels::Tier>(t);
          if (tier == kernels::Tier::kScalar) continue;  // the reference rows: correctness, not speed
          benchmark::RegisterBenchmark((std::string("packed/resnet20/") + m.name + "/" +
                                        std::string(kernels::tier_name(tier)) + "/" + in.name)
                                           .c_str(),
                                       bm_packed, m.method, m.bits, in.c, in.hw, tier)
              ->Arg(1)
              ->Arg(64)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
    }
  }
} register_all;

}  // namespace

int main(int argc, char** argv) {
  bitgrad::bench::init_bench_threads();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
