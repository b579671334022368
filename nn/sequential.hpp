// sequential.hpp: Sequential, an ordered list of child modules named "0", "1", ... (PyTorch's
// nn.Sequential names), each applied to the previous one's output. Children are owned by the
// Sequential and called through a type-erased std::function, so any module with a
// `Variable forward(const Variable&)` can be appended.
// Not here: modules whose forward takes more than one input (write a model class for those).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.hpp"

namespace bitgrad::nn {

class Sequential final : public Module {
 public:
  Sequential() : Module("Sequential") {}

  // Constructs a child of type M in place from `args`, registers it as the next index and returns
  // it. The child takes this Sequential's current training mode.
  template <typename M, typename... Args>
  M& emplace_back(Args&&... args) {
    auto child = std::make_unique<M>(std::forward<Args>(args)...);
    M* raw = child.get();
    register_module(std::to_string(children_.size()), *raw);
    steps_.push_back([raw](const Variable& x) { return raw->forward(x); });
    children_.push_back(std::move(child));
    return *raw;
  }

  // Applies the children in order; the identity when empty.
  Variable forward(const Variable& x) const;

  size_t size() const { return children_.size(); }
  Module& operator[](size_t i) { return *children_.at(i); }

 private:
  std::vector<std::unique_ptr<Module>> children_;
  std::vector<std::function<Variable(const Variable&)>> steps_;
};

}  // namespace bitgrad::nn
