// gradcheck.hpp: the finite-difference gradient check behind tests/autograd/gradcheck_test.cpp.
// Each row names an op, the shapes of its inputs and a function of them; the harness draws inputs in
// [lo, hi], reduces the output to L = sum(r * f(x)) with a fixed random r, and compares backward()
// with central differences (x + eps, x - eps), element by element:
//   |analytic - numeric| <= atol + rtol * |numeric|.
// Rows are grouped by op family (gradcheck_rows_*.cpp), mirroring autograd/ops/<family>.cpp.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/rng.hpp"

namespace bitgrad::test {

struct GradcheckRow {
  std::string name;
  std::vector<core::Shape> input_shapes;
  std::function<autograd::Variable(const std::vector<autograd::Variable>&)> f;
  float lo = -1.0f;     // inputs drawn uniformly in [lo, hi]
  float hi = 1.0f;
  float eps = 1e-3f;
  float rtol = 1e-2f;
  float atol = 1e-3f;
  // Optional: overwrite the drawn inputs (e.g. keep values away from a kink or ties).
  std::function<void(std::vector<core::Tensor>&, core::Rng&)> prepare = nullptr;
};

std::vector<GradcheckRow> gradcheck_rows_math();  // elementwise, reduce, linalg, shape, loss
std::vector<GradcheckRow> gradcheck_rows_nn();    // conv, norm, pool

}  // namespace bitgrad::test
