// speed.hpp: the latency / throughput comparison of `bitgrad bench` and `bitgrad demo`: a packed model
// at batch 1 (milliseconds per image) and at a throughput batch (images per second) for each kernel ISA
// tier this CPU runs, next to the same network in FP32 on bitgrad's engine (nn::ResNetCifar in eval
// mode, fused conv + BN) and, when /usr/bin/python3 has torch, in PyTorch (eval, no_grad, same thread
// count). Each case runs for `min_time` seconds `repetitions` times and keeps its best run (the least
// disturbed on a shared machine); cases alternate tier by tier within each repetition so drift hits all.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "kernels/runtime/packed_model.hpp"

namespace bitgrad::apps {

struct SpeedOptions {
  int64_t batch = 64;          // the throughput batch
  double min_time = 1.0;       // seconds per case and repetition
  int repetitions = 3;
  bool pytorch = true;         // try PyTorch under /usr/bin/python3
  bool scalar = false;         // also time the scalar reference tier (slow)
};

struct SpeedRow {
  std::string engine;  // "packed W2A2 (minmax)", "FP32 bitgrad", "FP32 PyTorch 1.13.1"
  std::string tier;    // "avx512", "avx2", "scalar" or "-"
  std::string kernels; // the kernel rows used (packed only)
  double latency_ms = 0.0;       // batch 1, per image
  double images_per_second = 0.0;  // at the throughput batch
};

struct SpeedTable {
  int64_t batch = 64;
  int threads = 1;
  std::vector<SpeedRow> rows;  // packed tiers (fastest first), FP32 bitgrad, FP32 PyTorch (if any)
  std::string pytorch_note;    // why PyTorch is missing, when it is
};

SpeedTable measure_speed(const kernels::PackedResNet& model, const SpeedOptions& options);
// The table with speed-ups against FP32 bitgrad and PyTorch; returns it as JSON.
core::Json print_speed_table(const SpeedTable& table);

}  // namespace bitgrad::apps
