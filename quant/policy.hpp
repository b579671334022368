// policy.hpp: QuantPolicy, which turns any nn model into its QAT twin without editing the model's code:
// every Conv2d and Linear gets a QuantizedLayer (quant/quantizer.hpp) chosen by the method, the bit
// widths and the first/last-layer rule; BN, ReLU, residual adds and pooling stay float (ALGORITHMS.md
// §10: "only conv inputs are quantized", as in APoT, EWGS and DAQ).
//
// Which quantizer goes where (weights / the input of each quantized layer):
//   minmax  per-output-channel min-max weights / per-tensor min-max inputs with an EMA range (GDFQ)
//   lsq     LSQ weights / LSQ inputs (learned step)
//   pact    per-output-channel min-max weights / PACT inputs (learned clip)
//   lint    learned-interval weights / learned-interval inputs, plus the output scale |s| (EWGS, DAQ)
//   pot     PoT weights (ternary at 2 bits) / PoT inputs, learnable alphas (APoT, non-additive)
//   apot    APoT weights (ternary at 2 bits) / APoT inputs, learnable alphas
// The first layer (the first Conv2d in module order: its input is the image) and the last (the last
// Linear: the classifier) never quantize their inputs; their weights follow `edge`: kFloat (untouched),
// kInt8 (APoT's max-scaled 8-bit weights, quant/int8_max.hpp) or kSame (the trunk's weight quantizer at
// the trunk's bits, as GDFQ). Defaults follow each method's source: apot/pot/lsq kInt8, lint/pact kFloat,
// minmax kSame. Option-B shortcut convolutions are quantized like the trunk (own input quantizer).
// Not here: the quantizers (quant/<name>.hpp), training loops (apps/), δ updates (quant/hessian.hpp).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"
#include "nn/module.hpp"
#include "quant/estimator_math.hpp"
#include "quant/quantizer.hpp"

namespace bitgrad::quant {

enum class QuantMethod { kMinMax, kLsq, kPact, kLint, kPot, kApot };
enum class EdgeLayers { kFloat, kInt8, kSame };

struct QuantPolicy {
  QuantMethod method = QuantMethod::kApot;
  int weight_bits = 2;
  int act_bits = 2;
  EdgeLayers edge = EdgeLayers::kInt8;  // see default_edge()
  // The rounding estimator of every quantizer (kind and numbers). DAQ's sigma is taken from here for
  // weights and doubled for activations (the DAQ code: 1 and 2).
  Estimator estimator;
};

// "minmax" | "lsq" | "pact" | "lint" | "pot" | "apot" and back; Error naming the accepted spellings.
QuantMethod parse_method(std::string_view name);
std::string to_string(QuantMethod method);
// "ste" | "ewgs" | "dsq" | "daq" and back.
EstimatorKind parse_estimator(std::string_view name);
std::string to_string(EstimatorKind kind);
// "fp" | "int8" | "same" and back.
EdgeLayers parse_edge(std::string_view name);
std::string to_string(EdgeLayers edge);
EdgeLayers default_edge(QuantMethod method);

// Throws Error for bits outside what the method supports (pot/apot: 2, 3, 4; the uniform ones 2..8)
// or an estimator the method's quantizers reject, naming the option and the accepted values.
void validate(const QuantPolicy& policy);

// {"method", "weight_bits", "act_bits", "edge", "estimator", "ewgs_delta", "dsq_alpha", "daq_sigma",
// "daq_temperature"} and back (Error on a missing or malformed key, naming it).
core::Json to_json(const QuantPolicy& policy);
QuantPolicy policy_from_json(const core::Json& json);

struct QuantizedLayerInfo {
  std::string name;        // dotted module name, e.g. "layer1.0.conv1"
  QuantizedLayer* layer;   // owned by the model's Conv2d / Linear
  bool edge = false;       // the first or the last layer
};

// Attaches a QuantizedLayer to every Conv2d and Linear of `model` (except edge layers under kFloat),
// validated first; returns them in module order. Throws Error when the model has no Conv2d / Linear
// or a layer already has a quantizer.
std::vector<QuantizedLayerInfo> quantize_model(nn::Module& model, const QuantPolicy& policy);

// The quantized layers of a model that went through quantize_model (in module order).
std::vector<QuantizedLayerInfo> quantized_layers(nn::Module& model);

// Data-dependent initialisation: switches every QuantizedLayer into calibration mode
// (QuantizedLayer::set_calibrating), calls `forward` once (the caller runs one batch through the model,
// in the mode the method wants: EWGS uses train mode), and switches it off again, under NoGradGuard.
void calibrate(nn::Module& model, const std::function<void()>& forward);

// Sets the EWGS delta of every quantizer (weights and inputs) of the model.
void set_ewgs_delta(nn::Module& model, float delta);
// After loading a state dict into a quantized model: every quantizer takes its estimator state (EWGS
// delta) from its loaded buffers. Throws Error for a negative or non-finite delta.
void load_estimator_state(nn::Module& model);

}  // namespace bitgrad::quant
