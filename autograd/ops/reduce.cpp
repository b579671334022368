// reduce.cpp: sum, mean and max over axes, with their backward (broadcast the gradient back; for
// max, route it to the first maximal element). Not here: softmax-style reductions (loss.cpp).
#include <array>
#include <string>
#include <utility>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"

namespace bitgrad::autograd {

namespace {

// Which axes of `shape` are reduced (empty = all), with a message naming `op` for a bad axis.
std::array<bool, core::kMaxRank> reduced_axes(const Shape& shape, const std::vector<int>& axes,
                                              const char* op) {
  std::array<bool, core::kMaxRank> reduce{};
  if (axes.empty()) {
    reduce.fill(true);
    return reduce;
  }
  for (int a : axes) {
    check_lazy(a >= -shape.rank() && a < shape.rank(), [&] {
      return std::string(op) + ": axis " + std::to_string(a) + " out of range for shape " +
             shape.to_string();
    });
    reduce[static_cast<size_t>(shape.axis(a))] = true;
  }
  return reduce;
}

// The input shape with reduced axes set to 1 (the keepdim result shape).
Shape kept_shape(const Shape& shape, const std::array<bool, core::kMaxRank>& reduce) {
  std::vector<int64_t> dims = shape.to_vector();
  for (size_t i = 0; i < dims.size(); ++i)
    if (reduce[i]) dims[i] = 1;
  return Shape(dims);
}

// Shared by sum and mean: sum over the reduced axes, times `factor`.
Variable reduce_sum(const Variable& x, const std::vector<int>& axes, bool keepdim, bool average,
                    const char* op) {
  const Shape& in_shape = x.shape();
  const auto reduce = reduced_axes(in_shape, axes, op);
  std::vector<int> ax;
  int64_t count = 1;
  for (int i = 0; i < in_shape.rank(); ++i) {
    if (reduce[static_cast<size_t>(i)]) {
      ax.push_back(i);
      count *= in_shape[i];
    }
  }
  if (average)
    check_lazy(count > 0, [&] {
      return std::string(op) + ": cannot average over zero elements of shape " +
             in_shape.to_string();
    });
  const float factor = average ? 1.0f / static_cast<float>(count) : 1.0f;
  const Shape keep = kept_shape(in_shape, reduce);
  Tensor y = in_shape.rank() == 0 ? x.value().clone() : core::sum(x.value(), ax, true);
  if (average) core::scale_(y, factor);
  if (!keepdim) {
    std::vector<int64_t> dims;
    for (int i = 0; i < in_shape.rank(); ++i)
      if (!reduce[static_cast<size_t>(i)]) dims.push_back(in_shape[i]);
    y = y.reshape(std::span<const int64_t>(dims));
  }
  return make_node(
      std::move(y), {x}, op,
      [in_shape, keep, factor](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        Tensor dx = core::broadcast_to(g.reshape(keep), in_shape);
        if (factor != 1.0f) core::scale_(dx, factor);
        return {dx};
      });
}

}  // namespace

Variable sum(const Variable& x, std::vector<int> axes, bool keepdim) {
  return reduce_sum(x, axes, keepdim, false, "sum");
}

Variable mean(const Variable& x, std::vector<int> axes, bool keepdim) {
  return reduce_sum(x, axes, keepdim, true, "mean");
}

Variable max(const Variable& x, int axis, bool keepdim) {
  const Shape& in_shape = x.shape();
  check_lazy(axis >= -in_shape.rank() && axis < in_shape.rank(), [&] {
    return "max: axis " + std::to_string(axis) + " out of range for shape " + in_shape.to_string();
  });
  const int ax = in_shape.axis(axis);
  const int64_t n = in_shape[ax];
  check_lazy(n > 0, [&] {
    return "max: cannot reduce empty axis " + std::to_string(axis) + " of shape " +
           in_shape.to_string();
  });
  // View x as [outer, n, inner].
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < ax; ++i) outer *= in_shape[i];
  for (int i = ax + 1; i < in_shape.rank(); ++i) inner *= in_shape[i];

  std::vector<int64_t> kdims = in_shape.to_vector();
  kdims[static_cast<size_t>(ax)] = 1;
  Tensor y{Shape(kdims)};
  std::vector<int64_t> argmax(static_cast<size_t>(outer * inner));  // lane -> index of its max
  const Tensor c = x.value().contiguous();
  const float* p = c.data();
  float* o = y.data();
  for (int64_t a = 0; a < outer; ++a) {
    for (int64_t b = 0; b < inner; ++b) {
      const float* col = p + a * n * inner + b;
      int64_t best = 0;
      for (int64_t k = 1; k < n; ++k)
        if (col[k * inner] > col[best * inner]) best = k;
      o[a * inner + b] = col[best * inner];
      argmax[static_cast<size_t>(a * inner + b)] = best;
    }
  }
  if (!keepdim) {
    kdims.erase(kdims.begin() + ax);
    y = y.reshape(std::span<const int64_t>(kdims));
  }
  return make_node(std::move(y), {x}, "max",
                   [in_shape, argmax = std::move(argmax), n, inner](
                       const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     Tensor dx(in_shape);
                     const Tensor cg = g.contiguous();
                     const float* pg = cg.data();
                     float* d = dx.data();
                     const auto m = static_cast<int64_t>(argmax.size());
                     for (int64_t j = 0; j < m; ++j) {
                       const int64_t a = j / inner, b = j % inner;
                       d[(a * n + argmax[static_cast<size_t>(j)]) * inner + b] = pg[j];
                     }
                     return {dx};
                   });
}

}  // namespace bitgrad::autograd
