// sequential.cpp: Sequential::forward.
#include "nn/sequential.hpp"

namespace bitgrad::nn {

Variable Sequential::forward(const Variable& x) const {
  Variable y = x;
  for (const auto& step : steps_) y = step(y);
  return y;
}

}  // namespace bitgrad::nn
