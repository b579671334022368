// derive_seed.hpp: derive_seed(), which turns a user seed plus integer keys (a stream tag, an
// epoch, an item index) into an independent-looking seed for core::Rng. The data sets use it so
// that every random choice is a pure function of its keys, not of the order or thread in which it
// is drawn. Not here: a generator (see core/rng.hpp).
#pragma once

#include <cstdint>
#include <initializer_list>

namespace bitgrad::datasets {

// splitmix64's finaliser (Steele, Lea and Flood 2014): a bijection on 64 bits with full avalanche.
inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A seed that depends on `seed` and on every key, in order.
inline uint64_t derive_seed(uint64_t seed, std::initializer_list<uint64_t> keys) {
  uint64_t h = mix64(seed);
  for (const uint64_t k : keys) h = mix64(h ^ mix64(k));
  return h;
}

}  // namespace bitgrad::datasets
