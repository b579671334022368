// feature_taps.hpp: FeatureTaps, an ordered list of named intermediate features (Variables) that a
// model's forward fills when the caller passes one in. Distillation losses read features by name
// ("layer2.0.out", "pool") without changing the model code per method.
// A FeatureTaps built with a list of wanted names keeps only those (add() drops the rest), and a model
// may skip work only a dropped feature needs (ResNetCifar keeps its fused block tail unless a
// ".pre_add" is wanted).
// Not here: which names a model emits (each model documents its own, e.g. nn/resnet_cifar.hpp).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/variable.hpp"

namespace bitgrad::nn {

class FeatureTaps {
 public:
  using Entry = std::pair<std::string, autograd::Variable>;

  FeatureTaps() = default;
  // Keeps only the features named in `wanted` (an empty list keeps nothing).
  explicit FeatureTaps(std::vector<std::string> wanted) : wanted_(std::move(wanted)), filtered_(true) {}

  // True when add(name, ...) would keep the feature.
  bool wants(std::string_view name) const;

  // Appends a feature (unless the filter drops it); throws Error when the name is already present.
  void add(std::string name, autograd::Variable feature);
  bool contains(std::string_view name) const;
  // The named feature; throws Error naming it and listing the available names when absent.
  const autograd::Variable& at(std::string_view name) const;
  // In the order the forward produced them.
  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<std::string> names() const;
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  void clear() { entries_.clear(); }

 private:
  std::vector<Entry> entries_;
  std::vector<std::string> wanted_;
  bool filtered_ = false;
};

}  // namespace bitgrad::nn
