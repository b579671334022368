// variable.hpp: Variable (a Tensor value + gradient + the graph node that produced it), Node, the
// grad-mode guard and make_node(), the one mechanism every differentiable op uses, built-in or custom.
// Reverse mode only; backward formulas use core ops, so there are no gradients of gradients.
// Not here: the ops themselves (autograd/ops.hpp) or the engine's internals (backward.cpp).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.hpp"

namespace bitgrad::autograd {

using core::Shape;
using core::Tensor;

struct Node;

// Shared state behind a Variable handle. Copies of a Variable share it (and so share the gradient).
struct VariableImpl {
  Tensor value;
  Tensor grad;                  // accumulated by backward() for leaves that require grad
  bool requires_grad = false;
  std::shared_ptr<Node> node;   // producer; null for leaves and for values made without grad
};

// A handle to a value in the graph. Shallow copies share value and gradient (like a shared_ptr).
class Variable {
 public:
  Variable() = default;  // undefined
  // A leaf. With requires_grad, backward() accumulates into grad().
  explicit Variable(Tensor value, bool requires_grad = false);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const { return impl_->value; }
  // The leaf's accumulated gradient; undefined until a backward pass reaches it.
  const Tensor& grad() const { return impl_->grad; }
  Tensor& mutable_grad() { return impl_->grad; }
  // Replaces the value in place (optimizers, loading); the shape must not change.
  void set_value(const Tensor& v);
  void zero_grad() { impl_->grad = Tensor(); }
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  void set_requires_grad(bool r) { impl_->requires_grad = r; }
  bool is_leaf() const { return impl_->node == nullptr; }
  const std::shared_ptr<Node>& node() const { return impl_->node; }
  const Shape& shape() const { return impl_->value.shape(); }
  int64_t dim(int i) const { return impl_->value.dim(i); }
  int rank() const { return impl_->value.rank(); }
  int64_t numel() const { return impl_->value.numel(); }
  float item() const { return impl_->value.item(); }

  // A leaf sharing this value, cut from the graph (stop-gradient).
  Variable detach() const { return Variable(impl_->value, false); }

  // Runs reverse mode from this value. The no-argument form needs a one-element value (seed 1).
  // Gradients are *accumulated* (+=) into every reachable leaf with requires_grad; call zero_grad()
  // between steps. Each node's backward runs once and is then released, so a graph is used once.
  void backward() const;
  void backward(const Tensor& grad_output) const;

  const std::shared_ptr<VariableImpl>& impl() const { return impl_; }

 private:
  std::shared_ptr<VariableImpl> impl_;
};

// backward: (grad of the output, which inputs need a gradient) -> one Tensor per input, each the shape
// of that input, or an undefined Tensor meaning "no gradient" (allowed only where not needed, or zero).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output,
                                                     const std::vector<bool>& needs_input_grad)>;

struct Node {
  std::string name;                                     // op name, for errors and debugging
  std::vector<std::shared_ptr<VariableImpl>> inputs;    // edges to the inputs
  BackwardFn backward;
};

// The result of an op: `value` with a node linking it to `inputs`. When grad mode is off or no input
// requires grad, returns a plain Variable(value) and drops `backward`. This is how built-in ops and
// custom functions (straight-through estimators, EWGS) alike enter the graph.
Variable make_node(Tensor value, const std::vector<Variable>& inputs, std::string_view name,
                   BackwardFn backward);

// True unless a NoGradGuard is alive on this thread.
bool grad_enabled();

// While alive, ops on this thread build no graph (evaluation, teacher forward, optimizer updates).
// The one documented piece of thread-local state in bitgrad.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace bitgrad::autograd
