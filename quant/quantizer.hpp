// quantizer.hpp: the interface every tensor quantizer implements, and QuantizedLayer, the
// LayerQuantizer (nn/layer_quantizer.hpp) that makes a Conv2d or Linear its QAT twin from a weight
// quantizer, an optional input quantizer and an optional learnable output scale.
//
// The integer-code contract (DESIGN.md §3.1): every quantizer maps a real value to an integer code c
// and back by value = scale * (c - zero_point), per tensor or per output channel. Non-uniform level
// sets are codes on a finer integer lattice (APoT 3-bit activations: codes {0,1,2,3,4,6,8,10}, scale
// alpha/10). fake_quant() (training) and encode() (export) both compute c with the quantizer's one
// scalar code function in its quant/<name>_math.hpp, and fake_quant's value is exactly
// scale * (c - zero_point) in float32, so a deployed model sees the codes training saw.
//
// Quantizers are Modules (their learnable clipping values, steps and running ranges are parameters and
// buffers, saved in checkpoints) deriving from TensorQuantizer: a virtual interface rather than
// STYLE.md's concept, because the policy (quant/policy.hpp) chooses them at run time from CLI options.
// Not here: the quantizers (quant/<name>.hpp), which layers get one (quant/policy.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "autograd/variable.hpp"
#include "core/json.hpp"
#include "nn/layer_quantizer.hpp"
#include "nn/module.hpp"
#include "quant/estimator_math.hpp"

namespace bitgrad::quant {

using autograd::Variable;
using core::Tensor;

// What a quantizer is built for: weights (signed, dimension 0 = output channel) or activations.
enum class Role { kWeight, kActivation };
// Per tensor, or per output channel (dimension 0; weights only).
enum class Granularity { kPerTensor, kPerChannel };

// What a quantizer's codes mean, for export. With per-channel granularity, scale and zero_point have
// one entry per output channel (dimension 0 of the tensor); otherwise one entry.
struct CodeMap {
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  std::vector<int32_t> levels;  // every code the quantizer can produce, ascending
};

// Codes of one tensor, row-major like the tensor, with their map.
struct Encoded {
  std::vector<int32_t> codes;
  CodeMap map;
};

class TensorQuantizer : public nn::Module {
 public:
  // The training path: value = scale * (code - zero_point) for every element, with the quantizer's
  // pseudo-gradient (stated in its header) to x and to its own parameters. In training mode it may
  // update running state (activation ranges).
  virtual Variable fake_quant(const Variable& x) = 0;
  // The deploy path: the codes fake_quant(x) used, computed by the same scalar function, with the
  // current parameters (no state update). x has the shape the quantizer was built for.
  virtual Encoded encode(const Tensor& x) const = 0;
  virtual int bits() const = 0;
  // Sets data-dependent initial values from a sample of what the quantizer will see (EWGS's
  // init_quant_model, LSQ's step init), called once by quant::calibrate() before training; the
  // default does nothing. Must not build a graph.
  virtual void calibrate(const Tensor& x) { (void)x; }
  // Everything export needs besides the parameters: {"kind", "bits", "granularity", "estimator", ...}.
  virtual core::Json describe() const = 0;
  // The estimator of the rounding step (quant/estimator_math.hpp); quantizers that support only some
  // estimators throw Error from set_estimator for the others, naming both.
  const Estimator& estimator() const { return estimator_; }
  virtual void set_estimator(const Estimator& estimator) { estimator_ = estimator; }
  // EWGS's delta, stored in the buffer "ewgs_delta" ([1], saved in checkpoints like the official
  // code's bkwd_scaling_factor buffers) and in estimator(). set_ewgs_delta() updates both;
  // load_estimator_state() copies the buffer into estimator() after a state dict was loaded.
  void set_ewgs_delta(float delta);
  void load_estimator_state();
  // d(fake_quant output) / d(the normalised value EWGS measures x - x_q in): 2 for learned-interval
  // weights (output 2 D - 1), alpha for APoT (output alpha * q), ... Used to express the Hessian
  // trace of quant/hessian.hpp in those units. Default 1.
  virtual double ewgs_unit() const { return 1.0; }

 protected:
  explicit TensorQuantizer(std::string type_name);
  Estimator estimator_;

 private:
  Tensor ewgs_delta_;
};

// The LayerQuantizer of quantized Conv2d and Linear layers: y = |s| * op(Qa(x), Qw(w)), with Qa absent
// (inputs stay float: the first layer, whose input is the image) and the output scale s absent
// (every method except EWGS/DAQ's learned-interval layers) as configured. Children: "weight" and, when
// present, "input"; parameter "output_scale" when present (no weight decay).
class QuantizedLayer final : public nn::LayerQuantizer {
 public:
  // weight: required (throws Error when null); input: may be null; with_output_scale: adds s,
  // initialised to 1 (quant/policy.hpp sets it from data, EWGS's init).
  QuantizedLayer(std::unique_ptr<TensorQuantizer> weight, std::unique_ptr<TensorQuantizer> input,
                 bool with_output_scale);

  Variable quantize_input(const Variable& x) override;
  Variable quantize_weight(const Variable& weight) override;
  Variable scale_output(const Variable& y, const FloatOutput& float_output) override;
  // The codes of encode() minus their zero points, and scale[o] = (s_in * s_w[o]) * |s| (output scale
  // or 1). nullopt without an input quantizer, while calibrating or probed, or when the integer sums
  // could reach 2^24 (max|input| * max|weight| * fan-in), where float32 stops being exact.
  std::optional<IntegerOperands> integer_operands(const Tensor& x, const Tensor& weight) const override;

  // While on, each forward first calls calibrate() of the weight and input quantizers with the raw
  // weight and input, and sets the output scale to mean|float output| / mean|quantized output|
  // (EWGS's initialisation). quant::calibrate() (quant/policy.hpp) switches it on for one batch.
  void set_calibrating(bool on) { calibrating_ = on; }

  // Hessian probes (quant/hessian.hpp): while a slot is set, the quantizer's output gets the slot's
  // `perturbation` added (when defined, same shape) and the gradient reaching that output in the next
  // backward is stored in `grad`. Null slots: normal operation. The slots are the caller's.
  struct ProbeSlot {
    Tensor perturbation;
    Tensor grad;
  };
  void set_probes(ProbeSlot* input, ProbeSlot* weight) {
    input_probe_ = input;
    weight_probe_ = weight;
  }

  TensorQuantizer& weight() { return *weight_; }
  TensorQuantizer* input() { return input_.get(); }  // null when inputs stay float
  Variable* output_scale() { return output_scale_.defined() ? &output_scale_ : nullptr; }
  // {"weight": weight().describe(), "input": ... or null, "output_scale": bool}.
  core::Json describe() const;

 private:
  std::unique_ptr<TensorQuantizer> weight_;
  std::unique_ptr<TensorQuantizer> input_;
  Variable output_scale_;
  bool calibrating_ = false;
  ProbeSlot* input_probe_ = nullptr;
  ProbeSlot* weight_probe_ = nullptr;
};

}  // namespace bitgrad::quant
