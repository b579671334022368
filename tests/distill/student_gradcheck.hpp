// student_gradcheck.hpp: the finite-difference check of a distillation loss's gradient with respect
// to the student side, shared by the distill tests.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>

#include "autograd/ops.hpp"

namespace bitgrad::distill::test {

using autograd::Variable;
using core::Tensor;

// Central differences of a scalar loss f(student) against backward(), element by element:
// |analytic - numeric| <= atol + rtol |numeric|. Inputs perturbed in float32, the two loss values
// differenced in double.
inline void gradcheck(const std::string& name, const Tensor& student,
               const std::function<Variable(const Variable&)>& f, float eps = 1e-3f,
               double rtol = 1e-2, double atol = 1e-3) {
  INFO(name);
  Variable s(student.clone(), true);
  const Variable loss = f(s);
  REQUIRE(loss.numel() == 1);
  loss.backward();
  REQUIRE(s.grad().defined());
  const Tensor analytic = s.grad().contiguous();
  for (int64_t i = 0; i < student.numel(); ++i) {
    auto eval = [&](float delta) {
      Tensor x = student.clone();
      x.data()[i] += delta;
      bitgrad::autograd::NoGradGuard no_grad;
      return static_cast<double>(f(Variable(x, false)).item());
    };
    const double numeric = (eval(eps) - eval(-eps)) / (2.0 * eps);
    const double a = analytic.data()[i];
    INFO("element " << i << ": analytic " << a << ", numeric " << numeric);
    REQUIRE(std::fabs(a - numeric) <= atol + rtol * std::fabs(numeric));
  }
}


}  // namespace bitgrad::distill::test
