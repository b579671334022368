// rng.hpp: Rng, an explicitly seeded random number generator (xoshiro256** seeded by splitmix64).
// There is no global generator: every function that draws random numbers takes an Rng&.
// The sequences are defined here (not by the standard library), so they are the same on every platform.
// Not thread-safe: give each thread its own Rng (see split()).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.hpp"

namespace bitgrad::core {

// Everything that determines an Rng's future output: the xoshiro256** words and the cached second
// Box-Muller normal. Saved in training checkpoints so that a resumed run draws the same stream.
struct RngState {
  std::array<uint64_t, 4> words{};
  bool has_spare = false;  // normal() returns `spare` next without drawing
  float spare = 0.0f;
};

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

  // The complete state; Rng r2(0); r2.set_state(r.state()) makes r2 continue exactly as r would.
  RngState state() const;
  // Throws Error when all four words are zero (xoshiro256**'s one invalid state, which would only
  // ever produce zeros; seeding never yields it, so such a state is corrupt).
  void set_state(const RngState& state);

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
