// bitserial_conv_ref.cpp: the scalar bit-serial tile (the __ref twin), the meaning of
// BitserialTileArgs written as obvious loops. No intrinsics; built for the baseline ISA.
#include <bit>
#include <cassert>

#include "kernels/bitserial/bitserial_tile.hpp"

namespace bitgrad::kernels {

void bitserial_tile__ref(const BitserialTileArgs& a) {
  assert(a.pixels >= 1 && a.pixels <= kBitserialTilePixels);
  assert(a.act_planes >= 1 && a.act_planes <= 2 && a.weight_planes >= 1 && a.weight_planes <= 3);
  const int pairs = a.act_planes * a.weight_planes;
  for (int64_t g = a.group_begin; g < a.group_end; ++g) {
    const uint32_t* w = a.weights + g * a.ksteps * a.weight_planes * 16;
    const int32_t* coef = a.pair_coef + g * pairs * 16;
    for (int p = 0; p < a.pixels; ++p) {
      const uint32_t* act = a.act + a.pixel_base[p];
      for (int lane = 0; lane < 16; ++lane) {
        const int64_t o = g * 16 + lane;
        if (o >= a.out_channels) break;
        // uint32 so that the (harmless) wrap-around of large partial sums is defined behaviour.
        uint32_t acc = a.alpha != nullptr ? static_cast<uint32_t>(a.alpha[g * 16 + lane]) *
                                                static_cast<uint32_t>(a.act_sum[p])
                                          : 0u;
        for (int64_t s = 0; s < a.ksteps; ++s)
          for (int i = 0; i < a.act_planes; ++i) {
            const uint32_t x = act[a.kstep_offset[s] + i];
            for (int j = 0; j < a.weight_planes; ++j) {
              const uint32_t count = static_cast<uint32_t>(
                  std::popcount(x & w[(s * a.weight_planes + j) * 16 + lane]));
              const int16_t c =
                  static_cast<int16_t>(coef[(i * a.weight_planes + j) * 16 + lane] & 0xFFFF);
              acc += count * static_cast<uint32_t>(int32_t{c});
            }
          }
        a.out[p * a.out_channels + o] = static_cast<int32_t>(acc);
      }
    }
  }
}

}  // namespace bitgrad::kernels
