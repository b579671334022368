// eigen_view.hpp: Eigen::Map views over contiguous Tensor data (internal; never include from a
// public header, never return an Eigen expression). Row-major, like Tensor.
#pragma once

#include <Eigen/Core>

#include "core/tensor.hpp"

namespace bitgrad::core {

using MatrixRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatMap = Eigen::Map<MatrixRM, Eigen::Aligned64>;
using ConstMatMap = Eigen::Map<const MatrixRM>;
using MutMatMap = Eigen::Map<MatrixRM>;

// A [rows, cols] view of contiguous data; rows * cols must equal t.numel().
inline ConstMatMap as_matrix(const Tensor& t, int64_t rows, int64_t cols) {
  return ConstMatMap(t.data(), rows, cols);
}
inline MutMatMap as_matrix(Tensor& t, int64_t rows, int64_t cols) {
  return MutMatMap(t.data(), rows, cols);
}

}  // namespace bitgrad::core
