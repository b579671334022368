// gradcheck_test.cpp: runs every row of the gradient-check table (gradcheck.hpp) as its own section.
#include <catch2/catch.hpp>

#include <cmath>
#include <sstream>

#include "autograd/gradcheck.hpp"
#include "core/tensor_ops.hpp"

namespace bitgrad::test {
namespace {

using autograd::Variable;
using core::Tensor;

// L = sum(r * f(x)) in double, for the numeric side.
double reduce_with(const Tensor& y, const Tensor& r) {
  const Tensor cy = y.contiguous();
  double s = 0.0;
  for (int64_t i = 0; i < cy.numel(); ++i) s += static_cast<double>(cy.data()[i]) * r.data()[i];
  return s;
}

void run_row(const GradcheckRow& row) {
  core::Rng rng(1234);
  std::vector<Tensor> xs;
  for (const auto& s : row.input_shapes) xs.push_back(rng.uniform_tensor(s, row.lo, row.hi));
  if (row.prepare) row.prepare(xs, rng);

  std::vector<Variable> vars;
  for (const auto& x : xs) vars.emplace_back(x.clone(), true);
  const Variable y = row.f(vars);
  const Tensor r = rng.uniform_tensor(y.shape(), -1.0f, 1.0f);
  y.backward(r);

  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor analytic = vars[k].grad().defined() ? vars[k].grad() : Tensor(xs[k].shape());
    REQUIRE(analytic.shape() == xs[k].shape());
    for (int64_t i = 0; i < xs[k].numel(); ++i) {
      auto eval = [&](float delta) {
        std::vector<Variable> in;
        for (size_t j = 0; j < xs.size(); ++j) {
          Tensor t = xs[j].clone();
          if (j == k) t.data()[i] += delta;
          in.emplace_back(t, false);
        }
        autograd::NoGradGuard no_grad;
        return reduce_with(row.f(in).value(), r);
      };
      const double numeric = (eval(row.eps) - eval(-row.eps)) / (2.0 * row.eps);
      const double a = analytic.data()[i];
      const double tol = row.atol + row.rtol * std::fabs(numeric);
      if (std::fabs(a - numeric) > tol) {
        std::ostringstream msg;
        msg << row.name << ": input " << k << " element " << i << " analytic " << a
            << " numeric " << numeric;
        FAIL(msg.str());
      }
    }
  }
}

void run_table(const std::vector<GradcheckRow>& rows) {
  for (const auto& row : rows) {
    SECTION(row.name) { run_row(row); }
  }
}

}  // namespace

TEST_CASE("gradcheck: element-wise, reductions, linear algebra, shape ops, losses", "[grad]") {
  run_table(gradcheck_rows_math());
}

TEST_CASE("gradcheck: convolution, normalisation, pooling", "[grad]") {
  run_table(gradcheck_rows_nn());
}

}  // namespace bitgrad::test
