// deploy_report.hpp: what `bitgrad export`, `verify` and `bench` print about a packed model: its size
// against the FP32 model and its bit operations (BOPs = MACs x weight bits x activation bits, the
// "BOPs reduction" of the VA-QKD paper), and the layer-by-layer comparison of a QAT model with its
// packed export (exact match counts, the first divergence, top-1 agreement, the largest logit
// difference).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "core/tensor.hpp"
#include "kernels/runtime/packed_model.hpp"
#include "kernels/runtime/packed_runtime.hpp"
#include "nn/layer_quantizer.hpp"

namespace bitgrad::apps {

// The quantization policy's field `key` as the exporter recorded it in the model's source
// ("weight_bits", "act_bits", "method", "edge"), or the fallback when absent.
int policy_bits(const kernels::PackedResNet& model, const char* key, int fallback);
std::string policy_text(const kernels::PackedResNet& model, const char* key);  // "?" when absent

// Sizes (bytes of the file at `path` when it exists, of the packed weights, of the float parts, of the
// FP32 model's parameters and BN statistics) and BOPs per image (quantized layers at their bits; float
// layers at 32 x 32, fake-quantized int8 edge weights at 8 x 32; the FP32 model at 32 x 32).
core::Json size_report(const kernels::PackedResNet& model, const std::string& path);
void print_size_report(const core::Json& report);

// Accumulates the comparison of the QAT model's integer trace and logits with the packed runtime's,
// batch by batch.
class VerifyReport {
 public:
  explicit VerifyReport(const kernels::PackedResNet& model);
  // One batch: the traces in network order (the QAT trace holds only the trunk's quantized layers,
  // in the same order), the logits, and the data set index of each row.
  void add_batch(const std::vector<nn::IntegerTraceEntry>& qat, const core::Tensor& qat_logits,
                 const std::vector<kernels::LayerTrace>& packed, const core::Tensor& packed_logits,
                 const std::vector<int64_t>& indices);
  void set_kernels(std::vector<std::string> names) { kernels_ = std::move(names); }
  // Prints the table and the summary lines; returns them as JSON.
  core::Json print() const;
  // True when every code and accumulator of every layer matched.
  bool exact() const;

 private:
  struct Layer {
    std::string name;
    int64_t codes = 0, code_mismatches = 0, accs = 0, acc_mismatches = 0;
  };
  std::vector<Layer> layers_;
  std::vector<std::string> kernels_;
  bool diverged_ = false;
  std::string first_divergence_;
  int64_t images_ = 0, agree_ = 0;
  double max_logit_diff_ = 0.0;
  std::vector<int64_t> disagreements_;  // data set indices, first 20
};

}  // namespace bitgrad::apps
