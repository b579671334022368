// rng.hpp: Rng, an explicitly seeded random number generator (xoshiro256** seeded by splitmix64).
// There is no global generator: every function that draws random numbers takes an Rng&.
// The sequences are defined here (not by the standard library), so they are the same on every platform.
// Not thread-safe: give each thread its own Rng (see split()).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.hpp"

namespace bitgrad::core {

class Rng {
 public:
  explicit Rng(uint64_t seed);

  uint64_t next_u64();
  // Uniform in [0, 1) with 24 random bits.
  float uniform();
  // Uniform in [lo, hi).
  float uniform(float lo, float hi);
  // Standard normal N(0, 1) by the Box-Muller transform.
  float normal();
  // +1 or -1 with probability 1/2 each (Hutchinson probes).
  float rademacher();
  // Uniform integer in [0, n); n > 0.
  uint64_t below(uint64_t n);
  // A uniformly random permutation of 0..n-1 (Fisher-Yates).
  std::vector<int64_t> permutation(int64_t n);
  // A new generator whose stream is independent of this one (for per-thread or per-epoch use).
  Rng split();

  // Tensors filled from this generator, in row-major order.
  Tensor uniform_tensor(const Shape& shape, float lo, float hi);
  Tensor normal_tensor(const Shape& shape, float mean = 0.0f, float stddev = 1.0f);
  Tensor rademacher_tensor(const Shape& shape);

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  float spare_ = 0.0f;
};

}  // namespace bitgrad::core
