// threshold_ref.cpp: the definition of the threshold epilogue on the public Thresholds, and the
// scalar tile (the kernel table's reference row) on the prepared layout. Plain loops, no
// intrinsics.
#include <cassert>
#include <string>

#include "core/error.hpp"
#include "kernels/epilogue/threshold.hpp"
#include "kernels/epilogue/threshold_tile.hpp"

namespace bitgrad::kernels {

void threshold_codes__ref(const Thresholds& t, std::span<const int32_t> acc,
                          std::span<uint8_t> codes) {
  t.validate();
  const auto c = static_cast<std::size_t>(t.channels);
  check_lazy(acc.size() % c == 0, [&] {
    return "threshold epilogue: expected a multiple of " + std::to_string(c) +
           " accumulators, got " + std::to_string(acc.size());
  });
  check_lazy(codes.size() == acc.size(), [&] {
    return "threshold epilogue: expected room for " + std::to_string(acc.size()) + " codes, got " +
           std::to_string(codes.size());
  });
  const auto count = static_cast<std::size_t>(t.count());
  for (std::size_t i = 0; i < acc.size(); ++i) {
    const std::size_t ch = i % c;
    const int32_t* thr = &t.values[ch * count];
    int code = 0;
    for (std::size_t k = 0; k < count; ++k)
      code += t.descending[ch] != 0 ? acc[i] <= thr[k] : acc[i] >= thr[k];
    codes[i] = static_cast<uint8_t>(code);
  }
}

void threshold_s32u8__ref(const ThresholdTile& tile, const int32_t* acc, uint8_t* codes,
                          int64_t pixels) {
  assert(tile.count >= 1 && tile.count <= 255 && tile.channels >= 1 &&
         tile.stride >= tile.channels);
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < tile.channels; ++c) {
      const int32_t a = acc[p * tile.channels + c];
      const bool descending = tile.flip[c] != 0;
      int code = 0;
      for (int k = 0; k < tile.count; ++k) {
        const int32_t t = tile.thresholds[k * tile.stride + c] ^ tile.flip[c];  // undo the folding
        code += descending ? a <= t : a >= t;
      }
      codes[p * tile.channels + c] = static_cast<uint8_t>(code);
    }
}

}  // namespace bitgrad::kernels
