// policy.cpp: the QAT policy: option parsing, validation, JSON, and attaching quantizers to a model.
#include "quant/policy.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <utility>

#include "autograd/variable.hpp"
#include "core/error.hpp"
#include "nn/conv2d.hpp"
#include "nn/linear.hpp"
#include "quant/apot.hpp"
#include "quant/int8_max.hpp"
#include "quant/lint.hpp"
#include "quant/lsq.hpp"
#include "quant/minmax.hpp"
#include "quant/pact.hpp"

namespace bitgrad::quant {

namespace {

template <typename E, size_t N>
E parse_enum(std::string_view what, std::string_view name, const std::array<std::pair<const char*, E>, N>& table) {
  std::string accepted;
  for (const auto& [spelling, value] : table) {
    if (name == spelling) return value;
    accepted += (accepted.empty() ? "" : "|") + std::string(spelling);
  }
  throw Error(std::string(what) + ": expected " + accepted + ", got '" + std::string(name) + "'");
}

template <typename E, size_t N>
std::string enum_name(E value, const std::array<std::pair<const char*, E>, N>& table) {
  for (const auto& [spelling, v] : table)
    if (v == value) return spelling;
  return "?";
}

constexpr std::array<std::pair<const char*, QuantMethod>, 6> kMethods{{{"minmax", QuantMethod::kMinMax},
                                                                       {"lsq", QuantMethod::kLsq},
                                                                       {"pact", QuantMethod::kPact},
                                                                       {"lint", QuantMethod::kLint},
                                                                       {"pot", QuantMethod::kPot},
                                                                       {"apot", QuantMethod::kApot}}};
constexpr std::array<std::pair<const char*, EstimatorKind>, 4> kEstimators{{{"ste", EstimatorKind::kSte},
                                                                           {"ewgs", EstimatorKind::kEwgs},
                                                                           {"dsq", EstimatorKind::kDsq},
                                                                           {"daq", EstimatorKind::kDaq}}};
constexpr std::array<std::pair<const char*, EdgeLayers>, 3> kEdges{
    {{"fp", EdgeLayers::kFloat}, {"int8", EdgeLayers::kInt8}, {"same", EdgeLayers::kSame}}};

// The first Conv2d (its input is the image) and the last Linear (the classifier), by dotted name.
std::pair<std::string, std::string> edge_layer_names(const std::vector<nn::NamedModule>& modules) {
  std::string first, last;
  for (const nn::NamedModule& m : modules) {
    if (first.empty() && dynamic_cast<nn::Conv2d*>(m.module) != nullptr) first = m.name;
    if (dynamic_cast<nn::Linear*>(m.module) != nullptr) last = m.name;
  }
  return {first, last};
}

bool is_power_of_two_method(QuantMethod m) { return m == QuantMethod::kPot || m == QuantMethod::kApot; }

// The estimator a quantizer of `role` uses: DAQ's activation kernel is twice as wide (ALGORITHMS.md §7.2).
Estimator estimator_for(const QuantPolicy& policy, Role role) {
  Estimator e = policy.estimator;
  if (e.kind == EstimatorKind::kDaq && role == Role::kActivation) e.daq_sigma *= 2.0f;
  return e;
}

std::unique_ptr<TensorQuantizer> make_weight_quantizer(const QuantPolicy& p, int bits) {
  std::unique_ptr<TensorQuantizer> q;
  switch (p.method) {
    case QuantMethod::kMinMax:
    case QuantMethod::kPact:
      q = std::make_unique<MinMaxQuantizer>(Role::kWeight, bits, Granularity::kPerChannel);
      break;
    case QuantMethod::kLsq:
      q = std::make_unique<LsqQuantizer>(Role::kWeight, bits);
      break;
    case QuantMethod::kLint:
      q = std::make_unique<LearnedIntervalQuantizer>(Role::kWeight, bits);
      break;
    case QuantMethod::kPot:
    case QuantMethod::kApot:
      q = std::make_unique<ApotQuantizer>(Role::kWeight, bits, p.method == QuantMethod::kApot, 3.0f);
      break;
  }
  q->set_estimator(estimator_for(p, Role::kWeight));
  q->set_ewgs_delta(p.estimator.ewgs_delta);
  return q;
}

std::unique_ptr<TensorQuantizer> make_input_quantizer(const QuantPolicy& p) {
  std::unique_ptr<TensorQuantizer> q;
  switch (p.method) {
    case QuantMethod::kMinMax:
      q = std::make_unique<MinMaxQuantizer>(Role::kActivation, p.act_bits, Granularity::kPerTensor);
      break;
    case QuantMethod::kLsq:
      q = std::make_unique<LsqQuantizer>(Role::kActivation, p.act_bits);
      break;
    case QuantMethod::kPact:
      q = std::make_unique<PactQuantizer>(p.act_bits);
      break;
    case QuantMethod::kLint:
      q = std::make_unique<LearnedIntervalQuantizer>(Role::kActivation, p.act_bits);
      break;
    case QuantMethod::kPot:
    case QuantMethod::kApot:
      q = std::make_unique<ApotQuantizer>(Role::kActivation, p.act_bits, p.method == QuantMethod::kApot, 8.0f);
      break;
  }
  q->set_estimator(estimator_for(p, Role::kActivation));
  q->set_ewgs_delta(p.estimator.ewgs_delta);
  return q;
}

// The quantizer of a layer, or null for an edge layer that stays float.
std::unique_ptr<QuantizedLayer> make_layer(const QuantPolicy& p, bool edge) {
  if (edge) {
    switch (p.edge) {
      case EdgeLayers::kFloat:
        return nullptr;
      case EdgeLayers::kInt8:
        return std::make_unique<QuantizedLayer>(std::make_unique<Int8MaxQuantizer>(), nullptr, false);
      case EdgeLayers::kSame:
        return std::make_unique<QuantizedLayer>(make_weight_quantizer(p, p.weight_bits), nullptr, false);
    }
  }
  return std::make_unique<QuantizedLayer>(make_weight_quantizer(p, p.weight_bits), make_input_quantizer(p),
                                          p.method == QuantMethod::kLint);
}

}  // namespace

QuantMethod parse_method(std::string_view name) { return parse_enum("--quant", name, kMethods); }
std::string to_string(QuantMethod method) { return enum_name(method, kMethods); }
EstimatorKind parse_estimator(std::string_view name) { return parse_enum("--grad", name, kEstimators); }
std::string to_string(EstimatorKind kind) { return enum_name(kind, kEstimators); }
EdgeLayers parse_edge(std::string_view name) { return parse_enum("--edge", name, kEdges); }
std::string to_string(EdgeLayers edge) { return enum_name(edge, kEdges); }

EdgeLayers default_edge(QuantMethod method) {
  switch (method) {
    case QuantMethod::kMinMax:
      return EdgeLayers::kSame;
    case QuantMethod::kLint:
    case QuantMethod::kPact:
      return EdgeLayers::kFloat;
    case QuantMethod::kLsq:
    case QuantMethod::kPot:
    case QuantMethod::kApot:
      return EdgeLayers::kInt8;
  }
  return EdgeLayers::kInt8;
}

void validate(const QuantPolicy& p) {
  const bool pot = is_power_of_two_method(p.method);
  const int lo = 2, hi = pot ? 4 : 8;
  for (const auto& [flag, bits] : {std::pair<const char*, int>{"--wbits", p.weight_bits},
                                   std::pair<const char*, int>{"--abits", p.act_bits}}) {
    check_lazy(bits >= lo && bits <= hi, [&] {
      return std::string(flag) + ": " + to_string(p.method) + " supports " + std::to_string(lo) + ".." +
             std::to_string(hi) + " bits, got " + std::to_string(bits);
    });
  }
  const std::string problem = estimator_problem(p.estimator);
  check_lazy(problem.empty(), [&] { return "--grad " + to_string(p.estimator.kind) + ": expected " + problem; });
  // Building one trunk layer runs every quantizer's own checks (bits, estimator support).
  make_layer(p, false);
  make_layer(p, true);
}

core::Json to_json(const QuantPolicy& p) {
  core::Json j = core::Json::object();
  j.set("method", to_string(p.method)).set("weight_bits", p.weight_bits).set("act_bits", p.act_bits);
  j.set("edge", to_string(p.edge)).set("estimator", to_string(p.estimator.kind));
  j.set("ewgs_delta", static_cast<double>(p.estimator.ewgs_delta));
  j.set("dsq_alpha", static_cast<double>(p.estimator.dsq_alpha));
  j.set("daq_sigma", static_cast<double>(p.estimator.daq_sigma));
  j.set("daq_temperature", static_cast<double>(p.estimator.daq_temperature));
  return j;
}

QuantPolicy policy_from_json(const core::Json& j) {
  QuantPolicy p;
  p.method = parse_method(j["method"].as_string());
  p.weight_bits = static_cast<int>(j["weight_bits"].as_int64());
  p.act_bits = static_cast<int>(j["act_bits"].as_int64());
  p.edge = parse_edge(j["edge"].as_string());
  p.estimator.kind = parse_estimator(j["estimator"].as_string());
  p.estimator.ewgs_delta = static_cast<float>(j["ewgs_delta"].as_number());
  p.estimator.dsq_alpha = static_cast<float>(j["dsq_alpha"].as_number());
  p.estimator.daq_sigma = static_cast<float>(j["daq_sigma"].as_number());
  p.estimator.daq_temperature = static_cast<float>(j["daq_temperature"].as_number());
  return p;
}

std::vector<QuantizedLayerInfo> quantize_model(nn::Module& model, const QuantPolicy& policy) {
  validate(policy);
  const std::vector<nn::NamedModule> modules = model.named_modules();
  const auto [first, last] = edge_layer_names(modules);
  const bool any = std::any_of(modules.begin(), modules.end(), [](const nn::NamedModule& m) {
    return dynamic_cast<nn::Conv2d*>(m.module) != nullptr || dynamic_cast<nn::Linear*>(m.module) != nullptr;
  });
  check_lazy(any, [&] {
    return "quantize_model: expected a model with Conv2d or Linear layers, " + model.type_name() + " has none";
  });
  for (const nn::NamedModule& m : modules) {
    const bool edge = m.name == first || m.name == last;
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m.module)) {
      if (auto layer = make_layer(policy, edge)) conv->set_quantizer(std::move(layer));
    } else if (auto* linear = dynamic_cast<nn::Linear*>(m.module)) {
      if (auto layer = make_layer(policy, edge)) linear->set_quantizer(std::move(layer));
    }
  }
  return quantized_layers(model);
}

std::vector<QuantizedLayerInfo> quantized_layers(nn::Module& model) {
  const std::vector<nn::NamedModule> modules = model.named_modules();
  const auto [first, last] = edge_layer_names(modules);
  std::vector<QuantizedLayerInfo> out;
  for (const nn::NamedModule& m : modules) {
    nn::LayerQuantizer* q = nullptr;
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m.module)) q = conv->quantizer();
    if (auto* linear = dynamic_cast<nn::Linear*>(m.module)) q = linear->quantizer();
    if (auto* layer = dynamic_cast<QuantizedLayer*>(q))
      out.push_back(QuantizedLayerInfo{m.name, layer, m.name == first || m.name == last});
  }
  return out;
}

void calibrate(nn::Module& model, const std::function<void()>& forward) {
  const std::vector<QuantizedLayerInfo> layers = quantized_layers(model);
  autograd::NoGradGuard no_grad;
  for (const QuantizedLayerInfo& l : layers) l.layer->set_calibrating(true);
  try {
    forward();
  } catch (...) {
    for (const QuantizedLayerInfo& l : layers) l.layer->set_calibrating(false);
    throw;
  }
  for (const QuantizedLayerInfo& l : layers) l.layer->set_calibrating(false);
}

void set_ewgs_delta(nn::Module& model, float delta) {
  for (const QuantizedLayerInfo& l : quantized_layers(model)) {
    for (TensorQuantizer* q : {&l.layer->weight(), l.layer->input()}) {
      if (q != nullptr) q->set_ewgs_delta(delta);
    }
  }
}

void load_estimator_state(nn::Module& model) {
  for (const QuantizedLayerInfo& l : quantized_layers(model)) {
    l.layer->weight().load_estimator_state();
    if (l.layer->input() != nullptr) l.layer->input()->load_estimator_state();
  }
}

}  // namespace bitgrad::quant
