// int8_conv_ref.cpp: the scalar reference tile of the int8 convolution family: the definition in
// int8_tile.hpp written as plain loops over the same packed layouts (so the registry's __ref row
// also checks the packing against conv_codes__ref). No intrinsics.
#include <cassert>
#include <cstdint>

#include "kernels/int8/int8_tile.hpp"

namespace bitgrad::kernels {

void conv_u8s8__ref(const Int8Tile& t) {
  assert(t.groups >= 1 && t.pixels_valid >= 1);
  assert(t.channels_valid >= 1 && t.channels_valid <= 16 * t.groups && t.run_steps >= 1);
  const int64_t group_bytes = 64 * t.groups;
  for (int64_t p = 0; p < t.pixels_valid; ++p) {
    for (int64_t c = 0; c < t.channels_valid; ++c) {
      const int8_t* w = t.weights + c / 16 * 64 + c % 16 * 4;
      int64_t sum = 0;
      for (int64_t r = 0; r < t.runs; ++r) {
        const uint8_t* a = t.pixels[p] + t.run_offsets[r];
        for (int64_t s = 0; s < t.run_steps; ++s, w += group_bytes)
          for (int j = 0; j < 4; ++j) sum += int64_t{a[4 * s + j]} * w[j];
      }
      t.out[p * t.out_stride + c] = static_cast<int32_t>(sum);
    }
  }
}

}  // namespace bitgrad::kernels
