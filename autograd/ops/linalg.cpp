// linalg.cpp: matmul and linear (a fully connected layer) on 2-D operands, through core::matmul's
// Eigen GEMM with transpose flags so that no transposed copy is ever made. Not here: batched
// matmul.
#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"

namespace bitgrad::autograd {

Variable matmul(const Variable& a, const Variable& b) {
  check_lazy(a.rank() == 2 && b.rank() == 2 && a.dim(1) == b.dim(0), [&] {
    return "matmul: expected a [M, K] and b [K, N], got " + a.shape().to_string() + " and " +
           b.shape().to_string();
  });
  Tensor y = core::matmul(a.value(), b.value());
  return make_node(std::move(y), {a, b}, "matmul",
                   [va = a.value(), vb = b.value()](
                       const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
                     return {needs[0] ? core::matmul(g, vb, false, true) : Tensor(),
                             needs[1] ? core::matmul(va, g, true, false) : Tensor()};
                   });
}

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  check_lazy(x.rank() == 2 && weight.rank() == 2 && x.dim(1) == weight.dim(1), [&] {
    return "linear: expected x [N, in] and weight [out, in], got " + x.shape().to_string() +
           " and " + weight.shape().to_string();
  });
  const bool has_bias = bias.defined();
  const int64_t n = x.dim(0), out = weight.dim(0);
  if (has_bias)
    check_lazy(bias.rank() == 1 && bias.dim(0) == out, [&] {
      return "linear: expected bias [" + std::to_string(out) + "] for weight " +
             weight.shape().to_string() + ", got " + bias.shape().to_string();
    });
  Tensor y = core::matmul(x.value(), weight.value(), false, true);  // [N, out]
  if (has_bias) {
    const Tensor b = bias.value().contiguous();
    const float* pb = b.data();
    float* py = y.data();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < out; ++j) py[i * out + j] += pb[j];
  }
  BackwardFn backward = [vx = x.value(), vw = weight.value(), has_bias, n, out](
                            const Tensor& g, const std::vector<bool>& needs) {
    std::vector<Tensor> grads(has_bias ? 3 : 2);
    if (needs[0]) grads[0] = core::matmul(g, vw);               // [N, out] x [out, in]
    if (needs[1]) grads[1] = core::matmul(g, vx, true, false);  // [out, N] x [N, in]
    if (has_bias && needs[2]) {
      const Tensor cg = g.contiguous();
      const float* pg = cg.data();
      Tensor db(Shape{out});
      float* d = db.data();
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < out; ++j) d[j] += pg[i * out + j];
      grads[2] = db;
    }
    return grads;
  };
  // An undefined bias is not an input: the engine follows every input edge.
  if (has_bias) return make_node(std::move(y), {x, weight, bias}, "linear", std::move(backward));
  return make_node(std::move(y), {x, weight}, "linear", std::move(backward));
}

}  // namespace bitgrad::autograd
