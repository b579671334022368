// module.hpp: Module, the non-template base of every layer and model: parameters, buffers, counters
// and child modules registered by name (libtorch style), recursive dotted PyTorch names
// ("layer1.0.conv1.weight"), train/eval mode, and the decay / no-decay parameter split.
// Not here: forward (each layer has its own typed, non-virtual forward), layers (nn/layers.hpp),
// saving and loading (nn/state_dict.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/variable.hpp"
#include "core/tensor.hpp"

namespace bitgrad::nn {

using autograd::Variable;
using core::Tensor;

class Module;

// What a parameter is, for optimizers: weight decay applies to kWeight (conv / linear weights) only;
// biases and the normalisation scale (BN gamma) and shift (BN beta) are "no_decay".
enum class ParamKind { kWeight, kBias, kNormScale, kNormShift };

// True for the kinds that weight decay applies to (kWeight).
bool decays(ParamKind kind);

struct NamedParameter {
  std::string name;   // dotted, e.g. "layer1.0.conv1.weight"
  Variable variable;  // a handle sharing value and gradient with the module's member
  ParamKind kind = ParamKind::kWeight;
};

// A float buffer (BN running_mean / running_var). `tensor` points at the owning module's member, so
// writes through it (loading) are seen by the module.
struct NamedBuffer {
  std::string name;
  Tensor* tensor = nullptr;
};

// An integer counter (BN num_batches_tracked), saved as a 0-d I64 tensor like PyTorch does.
struct NamedCounter {
  std::string name;
  int64_t* value = nullptr;
};

struct NamedModule {
  std::string name;  // "" for the module itself, else dotted ("layer1.0.conv1")
  Module* module = nullptr;
};

// A prefix rename accepted when loading (e.g. "fc." read as "linear."). Full dotted prefixes.
struct LoadAlias {
  std::string alias;      // the other spelling, as found in files
  std::string canonical;  // this module's spelling
};

// The parameters split for an optimizer: "decay" holds kWeight, "no_decay" everything else.
struct ParameterGroups {
  std::vector<NamedParameter> decay;
  std::vector<NamedParameter> no_decay;
};

// Base class of layers and models. Derived classes hold their parameters, buffers and children as
// plain members and register them by name in their constructor. Because the module keeps the
// addresses of those members, modules can be neither copied nor moved (build models in place, or on
// the heap with std::make_unique). Layers and models are `final`; the one intermediate base is
// LayerQuantizer (nn/layer_quantizer.hpp), which quant/ derives its quantizers from.
//
// Recursive listings visit the module's own entries first (in registration order), then each child
// in registration order, prefixing names with "child." as PyTorch does. Const methods return handles
// (Variables, pointers) through which values may still change: const protects the structure.
// Not thread-safe; modules are used from one thread at a time (ops themselves use oneTBB inside).
class Module {
 public:
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;
  virtual ~Module() = default;

  // The layer's type, e.g. "Conv2d", "ResNetCifar" (for printing and error messages).
  const std::string& type_name() const { return type_name_; }

  std::vector<NamedParameter> named_parameters() const;
  std::vector<Variable> parameters() const;
  std::vector<NamedBuffer> named_buffers() const;
  std::vector<NamedCounter> named_counters() const;
  // Direct children only, in registration order.
  std::vector<NamedModule> named_children() const;
  // This module (name "") and every descendant, depth first, parents before children.
  std::vector<NamedModule> named_modules();
  // Load aliases of this module and its descendants, with the descendants' prefixes applied.
  std::vector<LoadAlias> load_aliases() const;
  ParameterGroups parameter_groups() const;

  // Sets training mode on this module and every descendant (BN uses batch statistics when training).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Drops every parameter's accumulated gradient.
  void zero_grad();
  // Total element count of all parameters (buffers and counters excluded).
  int64_t num_parameters() const;

 protected:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}

  // Registration: `name` must be non-empty, contain no '.', and be unique among this module's
  // parameters, buffers, counters and children (throws Error otherwise). The referenced member must
  // outlive the module's use of it (it is a member of the derived class).
  void register_parameter(std::string name, Variable& parameter, ParamKind kind);
  void register_buffer(std::string name, Tensor& buffer);
  void register_counter(std::string name, int64_t& counter);
  void register_module(std::string name, Module& child);
  // When loading, names starting with `alias` (relative to this module) are read as `canonical`.
  void add_load_alias(std::string alias, std::string canonical);

 private:
  struct ParamEntry {
    std::string name;
    Variable* variable;
    ParamKind kind;
  };
  struct BufferEntry {
    std::string name;
    Tensor* tensor;
  };
  struct CounterEntry {
    std::string name;
    int64_t* value;
  };
  struct ChildEntry {
    std::string name;
    Module* module;
  };

  void check_new_name(const std::string& name) const;
  void collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) const;
  void collect_buffers(const std::string& prefix, std::vector<NamedBuffer>& out) const;
  void collect_counters(const std::string& prefix, std::vector<NamedCounter>& out) const;
  void collect_modules(const std::string& prefix, std::vector<NamedModule>& out) const;
  void collect_aliases(const std::string& prefix, std::vector<LoadAlias>& out) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<ParamEntry> params_;
  std::vector<BufferEntry> buffers_;
  std::vector<CounterEntry> counters_;
  std::vector<ChildEntry> children_;
  std::vector<LoadAlias> aliases_;
};

}  // namespace bitgrad::nn
