// layer_quantizer.cpp: the bias of a layer on its integer eval path and the integer trace (nn/layer_quantizer.hpp).
#include "nn/layer_quantizer.hpp"

namespace bitgrad::nn {

std::vector<float> scaled_bias(const Variable& bias, float factor) {
  std::vector<float> out;
  if (!bias.defined()) return out;
  const Tensor b = bias.value().contiguous();
  out.reserve(static_cast<size_t>(b.numel()));
  for (int64_t i = 0; i < b.numel(); ++i) out.push_back(b.data()[i] * factor);
  return out;
}

namespace {
thread_local std::vector<IntegerTraceEntry>* trace_sink = nullptr;
}  // namespace

IntegerTraceScope::IntegerTraceScope(std::vector<IntegerTraceEntry>& sink) : previous_(trace_sink) {
  trace_sink = &sink;
}
IntegerTraceScope::~IntegerTraceScope() { trace_sink = previous_; }

void record_integer_trace(const Module* layer, const Tensor& input, const Tensor& acc) {
  if (trace_sink != nullptr) trace_sink->push_back({layer, input, acc});
}

}  // namespace bitgrad::nn
