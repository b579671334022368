// packed_runtime.hpp: runs a PackedResNet (packed_model.hpp) on batches of images with the integer
// kernels of kernels/registry.hpp. Inside the quantized trunk nothing is float between a block's two
// convolutions: conv1's int32 accumulators become conv2's codes through the threshold epilogue
// (kernels/epilogue/threshold.hpp); conv2's accumulators go through the residual tail
// (core::quantized_tail_nhwc, the same compiled code as the QAT model's eval forward) and the block
// output's codes come from per-tensor float thresholds. Per batch size the runtime prepares a plan
// once (each layer's QConv) and keeps working buffers (activations, accumulators, packed inputs) for
// reuse; the trunk allocates nothing per call. A single image runs on the calling thread alone (its
// layers are too small to split profitably); larger batches are split into micro-batches of up to 8
// images, each run through the whole network by one thread (no synchronisation between layers, its
// activations staying in that core's cache); a traced batch runs layer by layer with oneTBB threads
// inside each kernel and epilogue. forward() is not re-entrant: one call at a time per
// PackedRuntime.
// Not here: building the model (quant/export.hpp), the file format (packed_model.hpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/conv.hpp"
#include "kernels/runtime/packed_model.hpp"

namespace bitgrad::kernels {

struct RuntimeOptions {
  // Kernel family of every trunk convolution; nullopt: per layer, the faster of the bit-serial row
  // (when it can run the layer: 2-bit activation codes, at most 4 weight values per channel) and the
  // int8 row, timed on that layer when its plan is prepared (autotune), or the int8 row without
  // autotune. Every row computes the same integers: the choice changes speed only.
  std::optional<Family> family;
  bool autotune = true;
  // Highest ISA tier to use (kernels/cpu.hpp); nullopt: max_tier(). A tier above cpu_tier() is an
  // Error.
  std::optional<Tier> tier;
};

// What one quantized convolution saw and produced in a forward pass (for `bitgrad verify` and the
// parity tests): its input codes (NHWC uint8, spec.input_elements()) and its accumulators including
// acc_offset (NHWC int32, spec.output_elements()), i.e. the integer sums op(code - zero point,
// weight) of the QAT model.
struct LayerTrace {
  std::string name;
  ConvSpec spec;  // with the batch size of the call
  std::vector<uint8_t> input_codes;
  std::vector<int32_t> acc;
};

class PackedRuntime {
 public:
  // Validates the model (PackedResNet::validate) and the options; kernels are prepared per batch
  // size on first use.
  explicit PackedRuntime(PackedResNet model, RuntimeOptions options = {});
  ~PackedRuntime();
  PackedRuntime(PackedRuntime&&) noexcept;
  PackedRuntime& operator=(PackedRuntime&&) noexcept;

  // images [N, in_channels, height, width] float32 -> logits [N, num_classes]. Throws bitgrad::Error
  // for another shape ("expected images [N, 1, 28, 28], got [4, 3, 32, 32]"). With trace, appends
  // one LayerTrace per quantized convolution in network order.
  core::Tensor forward(const core::Tensor& images, std::vector<LayerTrace>* trace = nullptr);

  const PackedResNet& model() const { return model_; }
  // The registry row chosen for each quantized convolution (in network order) at batch size `batch`
  // (prepares that plan if needed), and the threshold epilogue row.
  std::vector<std::string> kernel_names(int64_t batch);
  std::string threshold_kernel_name() const;

 private:
  struct Plan;
  struct Buffers;
  struct BufferPool;
  Plan& plan_for(int64_t batch);
  // The network on plan.batch images (NCHW floats) up to the pooled features ([batch, planes]).
  void run_batch(const float* images, Plan& plan, Buffers& buffers, float* pooled,
                 std::vector<LayerTrace>* trace);

  PackedResNet model_;
  RuntimeOptions options_;
  Tier tier_;
  std::vector<ThresholdEpilogue> epilogues_;  // per block (conv1 -> conv2 codes)
  std::map<int64_t, std::unique_ptr<Plan>> plans_;
  std::unique_ptr<BufferPool> pool_;
};

}  // namespace bitgrad::kernels
