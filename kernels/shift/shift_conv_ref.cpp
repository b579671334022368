// shift_conv_ref.cpp: the scalar reference tile of the shift-add APoT convolution: the definition
// in shift_tile.hpp as plain loops over the same packed layouts (so the registry's __ref row also
// checks the power-of-two decomposition and the packing against conv_codes__ref). Shifts and adds,
// int64.
#include <cassert>
#include <cstdint>

#include "kernels/shift/shift_tile.hpp"

namespace bitgrad::kernels {

void conv_apot__ref(const ShiftTile& t) {
  assert(t.pixels_valid >= 1 && t.channels_valid >= 1 && t.channels_valid <= 32);
  assert(t.terms >= 0 && t.terms <= 2 && t.run_steps >= 1 && (t.terms == 0 || t.shifts != nullptr));
  const int64_t term_count = t.terms == 0 ? 1 : t.terms;
  for (int64_t p = 0; p < t.pixels_valid; ++p) {
    for (int64_t c = 0; c < t.channels_valid; ++c) {
      int64_t sum = 0;
      int64_t step = 0;
      for (int64_t r = 0; r < t.runs; ++r) {
        const uint32_t* x = t.pixels[p] + t.run_offsets[r];
        for (int64_t s = 0; s < t.run_steps; ++s, ++step) {
          const int64_t a = x[s] & 0xffffu;
          for (int64_t k = 0; k < term_count; ++k) {
            const int64_t e = t.terms == 0 ? 0 : t.shifts[(step * term_count + k) * 32 + c];
            const uint32_t plus = t.masks[(step * term_count + k) * 2];
            const uint32_t minus = t.masks[(step * term_count + k) * 2 + 1];
            if ((plus >> c) & 1u) sum += a << e;
            if ((minus >> c) & 1u) sum -= a << e;
          }
        }
      }
      t.out[p * t.out_stride + c] = static_cast<int32_t>(sum);
    }
  }
}

}  // namespace bitgrad::kernels
