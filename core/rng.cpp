// rng.cpp: xoshiro256** (Blackman and Vigna) with splitmix64 seeding; Box-Muller normals.
#include "core/rng.hpp"

#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace bitgrad::core {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Rng::uniform() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }

float Rng::uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }

float Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Doubles so that the tails are accurate; u1 in (0, 1] avoids log(0).
  const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * std::numbers::pi * u2;
  spare_ = static_cast<float>(r * std::sin(theta));
  has_spare_ = true;
  return static_cast<float>(r * std::cos(theta));
}

float Rng::rademacher() { return (next_u64() >> 63) ? 1.0f : -1.0f; }

uint64_t Rng::below(uint64_t n) {
  check(n > 0, "Rng::below: expected n > 0, got 0");
  // Rejection sampling removes modulo bias.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

std::vector<int64_t> Rng::permutation(int64_t n) {
  check_lazy(n >= 0, [&] { return "Rng::permutation: expected n >= 0, got " + std::to_string(n); });
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<size_t>(below(static_cast<uint64_t>(i) + 1));
    std::swap(p[static_cast<size_t>(i)], p[j]);
  }
  return p;
}

Rng Rng::split() { return Rng(next_u64()); }

RngState Rng::state() const {
  // A spare that is not pending is stale: report 0 so equal streams have equal states.
  return RngState{{s_[0], s_[1], s_[2], s_[3]}, has_spare_, has_spare_ ? spare_ : 0.0f};
}

void Rng::set_state(const RngState& state) {
  check((state.words[0] | state.words[1] | state.words[2] | state.words[3]) != 0,
        "Rng::set_state: expected a state with a non-zero word, got all four words zero");
  for (size_t i = 0; i < 4; ++i) s_[i] = state.words[i];
  has_spare_ = state.has_spare;
  spare_ = state.has_spare ? state.spare : 0.0f;
}

Tensor Rng::uniform_tensor(const Shape& shape, float lo, float hi) {
  Tensor t(shape);
  for (float& v : t.span()) v = uniform(lo, hi);
  return t;
}

Tensor Rng::normal_tensor(const Shape& shape, float mean, float stddev) {
  Tensor t(shape);
  for (float& v : t.span()) v = mean + stddev * normal();
  return t;
}

Tensor Rng::rademacher_tensor(const Shape& shape) {
  Tensor t(shape);
  for (float& v : t.span()) v = rademacher();
  return t;
}

}  // namespace bitgrad::core
