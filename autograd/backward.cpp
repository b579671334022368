// backward.cpp: the reverse-mode engine. Topological order by an iterative DFS over nodes (micrograd's
// build_topo without recursion, so deep graphs cannot overflow the stack), then one backward call per
// node with gradients summed (+=) per input, so a value used twice gets both contributions.
#include <cassert>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "autograd/variable.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"

namespace bitgrad::autograd {

namespace {
thread_local bool t_grad_enabled = true;

// A gradient on its way through the graph. The first contribution is kept without copying (an op
// may hand the same tensor to several inputs, or return a view of its own grad_output); before the
// first in-place += it is copied, unless by then this slot is the only holder of its storage.
struct GradSlot {
  Tensor value;
  bool owned = false;
};

void accumulate(GradSlot& slot, const Tensor& g) {
  if (!slot.value.defined()) {
    slot.value = g;
    return;
  }
  if (!slot.owned) {
    if (!slot.value.is_contiguous() || !slot.value.storage_unshared())
      slot.value = slot.value.clone();
    slot.owned = true;
  }
  core::axpy_(slot.value, 1.0f, g);
}

// Leaf gradients outlive the pass, so they always own their buffer: the first contribution is taken
// as is when nothing else holds its storage (the op's result, about to be dropped), else copied.
void accumulate_leaf(Tensor& grad, Tensor&& g) {
  if (!grad.defined()) {
    grad = g.is_contiguous() && g.storage_unshared() ? std::move(g) : g.clone();
  } else {
    core::axpy_(grad, 1.0f, g);
  }
}

// Freeing a graph through plain shared_ptr destructors recurses once per level (node -> input ->
// its node -> ...) and overflows the stack on deep chains. This deleter unlinks inputs that only
// this node keeps alive and frees their nodes from a work list, so each delete is shallow.
struct NodeDeleter {
  void operator()(Node* node) const {
    std::vector<std::shared_ptr<Node>> pending;
    auto unlink = [&pending](Node& n) {
      for (auto& in : n.inputs)
        if (in && in.use_count() == 1 && in->node) pending.push_back(std::move(in->node));
      n.inputs.clear();
    };
    unlink(*node);
    delete node;
    while (!pending.empty()) {
      std::shared_ptr<Node> next = std::move(pending.back());
      pending.pop_back();
      if (next.use_count() == 1) unlink(*next);
    }  // `next` is released here with its inputs already unlinked
  }
};
}  // namespace

Variable::Variable(Tensor value, bool requires_grad)
    : impl_(std::make_shared<VariableImpl>()) {
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
}

void Variable::set_value(const Tensor& v) {
  check_lazy(v.shape() == impl_->value.shape(), [&] {
    return "Variable::set_value: expected shape " + impl_->value.shape().to_string() + ", got " +
           v.shape().to_string();
  });
  impl_->value = v;
}

Variable make_node(Tensor value, const std::vector<Variable>& inputs, std::string_view name,
                   BackwardFn backward) {
  bool any = false;
  if (t_grad_enabled)
    for (const Variable& v : inputs) any = any || v.requires_grad();
  Variable out(std::move(value), any);
  if (!any) return out;
  std::shared_ptr<Node> node(new Node, NodeDeleter{});
  node->name = std::string(name);
  node->inputs.reserve(inputs.size());
  for (const Variable& v : inputs) node->inputs.push_back(v.impl());
  node->backward = std::move(backward);
  out.impl()->node = std::move(node);
  return out;
}

void Variable::backward() const {
  check_lazy(defined() && numel() == 1, [&] {
    return "backward: expected a one-element value to seed with 1, got shape " +
           (defined() ? shape().to_string() : std::string("<undefined>")) +
           "; pass grad_output for other shapes";
  });
  backward(Tensor::ones(shape()));
}

void Variable::backward(const Tensor& grad_output) const {
  check(defined(), "backward: the variable is undefined");
  check_lazy(grad_output.shape() == shape(), [&] {
    return "backward: grad_output shape " + grad_output.shape().to_string() +
           " differs from value shape " + shape().to_string();
  });
  if (!requires_grad()) return;

  // Post-order DFS over VariableImpls that have nodes; leaves are reached through node inputs.
  std::vector<VariableImpl*> order;
  std::unordered_set<VariableImpl*> visited;
  std::vector<std::pair<VariableImpl*, size_t>> stack{{impl_.get(), 0}};
  visited.insert(impl_.get());
  while (!stack.empty()) {
    auto& [v, next] = stack.back();
    if (v->node && next < v->node->inputs.size()) {
      VariableImpl* child = v->node->inputs[next++].get();
      if (child->requires_grad && child->node && visited.insert(child).second)
        stack.emplace_back(child, 0);
      continue;
    }
    order.push_back(v);
    stack.pop_back();
  }

  if (!impl_->node) {  // backward on a leaf
    accumulate_leaf(impl_->grad, Tensor(grad_output));
    return;
  }
  std::unordered_map<VariableImpl*, GradSlot> grads;
  grads[impl_.get()].value = grad_output;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    VariableImpl* v = *it;
    auto found = grads.find(v);
    if (found == grads.end()) continue;  // no gradient flowed here
    Tensor g = std::move(found->second.value);
    grads.erase(found);
    Node& node = *v->node;
    check_lazy(static_cast<bool>(node.backward), [&] {
      return "backward: node '" + node.name + "' was already used by an earlier backward pass";
    });
    std::vector<bool> needs(node.inputs.size());
    for (size_t i = 0; i < needs.size(); ++i) needs[i] = node.inputs[i]->requires_grad;
    std::vector<Tensor> input_grads = node.backward(g, needs);
    assert(input_grads.size() == node.inputs.size());
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (!needs[i] || !input_grads[i].defined()) continue;
      VariableImpl* in = node.inputs[i].get();
      check_lazy(input_grads[i].shape() == in->value.shape(), [&] {
        return "backward: op '" + node.name + "' returned a gradient of shape " +
               input_grads[i].shape().to_string() + " for input " + std::to_string(i) +
               " of shape " + in->value.shape().to_string();
      });
      if (in->node) {
        accumulate(grads[in], input_grads[i]);
      } else {
        accumulate_leaf(in->grad, std::move(input_grads[i]));
      }
    }
    node.backward = nullptr;  // frees what the closure saved
  }
}

bool grad_enabled() { return t_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

}  // namespace bitgrad::autograd
