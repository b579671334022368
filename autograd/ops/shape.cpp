// shape.cpp: reshape, flatten, concat, slice and pad_channels. Each forward copies (or views) data
// and each backward moves the gradient back to where the elements came from. All the strided
// copying goes through one helper that walks a view with a tight innermost loop, in parallel over
// the first axis for large views. Not here:
// transpose/permute.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <array>
#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/tensor_ops.hpp"

namespace bitgrad::autograd {

namespace {

// Calls f(row, v, step, inner) for each innermost row of the view, in row-major order: the row's
// elements are v[j * step] for j < inner, and `row` numbers the rows of the flattened view.
template <typename F>
void for_each_row(Tensor view, F f) {
  const Shape& shape = view.shape();
  const int64_t n = shape.numel();
  if (n == 0) return;
  float* base = view.data();
  const int rank = shape.rank();
  if (rank == 0) {
    f(int64_t{0}, base, int64_t{1}, int64_t{1});
    return;
  }
  const auto& strides = view.strides();
  const int64_t inner = shape[rank - 1];
  const int64_t step = strides[static_cast<size_t>(rank - 1)];
  std::array<int64_t, core::kMaxRank> idx{};
  for (int64_t row = 0; row < n / inner; ++row) {
    int64_t off = 0;
    for (int d = 0; d < rank - 1; ++d)
      off += idx[static_cast<size_t>(d)] * strides[static_cast<size_t>(d)];
    f(row, base + off, step, inner);
    for (int d = rank - 2; d >= 0; --d) {
      if (++idx[static_cast<size_t>(d)] < shape[d]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
}

// Large views are cut along their first axis into slices copied in parallel (oneTBB); each element
// is copied once, so the split cannot change results.
constexpr int64_t kParallelMin = 1 << 16;

template <typename F>
void for_each_slice(const Tensor& view, F f) {
  if (view.rank() == 0 || view.numel() < kParallelMin || view.dim(0) < 2) {
    f(view, int64_t{0});
    return;
  }
  const int64_t per = view.numel() / view.dim(0);
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, view.dim(0)),
                    [&](const tbb::blocked_range<int64_t>& r) {
                      f(view.slice(0, r.begin(), r.end()), r.begin() * per);
                    });
}

// A contiguous copy of a strided view.
Tensor gather(const Tensor& view) {
  Tensor out = Tensor::empty(view.shape());
  float* o = out.data();
  for_each_slice(view, [o](const Tensor& part, int64_t first) {
    float* base = o + first;
    for_each_row(part, [base](int64_t row, const float* v, int64_t step, int64_t inner) {
      float* dst = base + row * inner;
      for (int64_t j = 0; j < inner; ++j) dst[j] = v[j * step];
    });
  });
  return out;
}

// Writes src (same shape as the view) into the view.
void scatter(const Tensor& view, const Tensor& src) {
  const Tensor c = src.contiguous();
  const float* s = c.data();
  for_each_slice(view, [s](const Tensor& part, int64_t first) {
    const float* base = s + first;
    for_each_row(part, [base](int64_t row, float* v, int64_t step, int64_t inner) {
      const float* from = base + row * inner;
      for (int64_t j = 0; j < inner; ++j) v[j * step] = from[j];
    });
  });
}

}  // namespace

Variable reshape(const Variable& x, std::vector<int64_t> dims) {
  Tensor y = x.value().reshape(std::span<const int64_t>(dims));
  return make_node(
      std::move(y), {x}, "reshape",
      [sx = x.shape()](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
        return {g.reshape(sx)};
      });
}

Variable flatten(const Variable& x, int start_axis) {
  check_lazy(start_axis >= -x.rank() && start_axis < x.rank(), [&] {
    return "flatten: start_axis " + std::to_string(start_axis) + " out of range for shape " +
           x.shape().to_string();
  });
  const int start = x.shape().axis(start_axis);
  std::vector<int64_t> dims;
  int64_t tail = 1;
  for (int i = 0; i < x.rank(); ++i) {
    if (i < start)
      dims.push_back(x.dim(i));
    else
      tail *= x.dim(i);
  }
  dims.push_back(tail);
  return reshape(x, dims);
}

Variable concat(const std::vector<Variable>& xs, int axis) {
  check(!xs.empty(), "concat: expected at least one input, got none");
  const Shape& first = xs[0].shape();
  check_lazy(axis >= -first.rank() && axis < first.rank(), [&] {
    return "concat: axis " + std::to_string(axis) + " out of range for shape " + first.to_string();
  });
  const int ax = first.axis(axis);
  std::vector<int64_t> out_dims = first.to_vector();
  out_dims[static_cast<size_t>(ax)] = 0;
  for (const Variable& v : xs) {
    bool ok = v.rank() == first.rank();
    for (int i = 0; ok && i < first.rank(); ++i) ok = i == ax || v.dim(i) == first[i];
    check_lazy(ok, [&] {
      return "concat: shapes " + first.to_string() + " and " + v.shape().to_string() +
             " differ outside axis " + std::to_string(axis);
    });
    out_dims[static_cast<size_t>(ax)] += v.dim(ax);
  }
  Tensor y{Shape(out_dims)};
  std::vector<int64_t> starts;
  int64_t off = 0;
  for (const Variable& v : xs) {
    starts.push_back(off);
    scatter(y.slice(ax, off, off + v.dim(ax)), v.value());
    off += v.dim(ax);
  }
  std::vector<int64_t> lens;
  for (const Variable& v : xs) lens.push_back(v.dim(ax));
  return make_node(
      std::move(y), xs, "concat",
      [ax, starts, lens](const Tensor& g, const std::vector<bool>& needs) -> std::vector<Tensor> {
        std::vector<Tensor> grads(needs.size());
        for (size_t i = 0; i < needs.size(); ++i)
          if (needs[i]) grads[i] = gather(g.slice(ax, starts[i], starts[i] + lens[i]));
        return grads;
      });
}

Variable slice(const Variable& x, int axis, int64_t start, int64_t end, int64_t step) {
  check_lazy(axis >= -x.rank() && axis < x.rank(), [&] {
    return "slice: axis " + std::to_string(axis) + " out of range for shape " +
           x.shape().to_string();
  });
  Tensor y = gather(x.value().slice(axis, start, end, step));
  return make_node(std::move(y), {x}, "slice",
                   [sx = x.shape(), axis, start, end, step](
                       const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     Tensor dx(sx);
                     scatter(dx.slice(axis, start, end, step), g);
                     return {dx};
                   });
}

Variable pad_channels(const Variable& x, int64_t before, int64_t after) {
  check_lazy(x.rank() == 4 && before >= 0 && after >= 0, [&] {
    return "pad_channels: expected x [N, C, H, W] and before, after >= 0, got " +
           x.shape().to_string() + " with before=" + std::to_string(before) +
           " after=" + std::to_string(after);
  });
  const int64_t c = x.dim(1);
  Tensor y(Shape{x.dim(0), before + c + after, x.dim(2), x.dim(3)});
  scatter(y.slice(1, before, before + c), x.value());
  return make_node(std::move(y), {x}, "pad_channels",
                   [before, c](const Tensor& g, const std::vector<bool>&) -> std::vector<Tensor> {
                     return {gather(g.slice(1, before, before + c))};
                   });
}

}  // namespace bitgrad::autograd
