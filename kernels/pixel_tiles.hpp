// pixel_tiles.hpp: walking the output pixels of a convolution tile by tile over a spatially padded
// NHWC input, for the kernel families whose tiles take one pointer per output pixel (int8, shift).
// For the kernels' baseline translation units only (ISA units include nothing but their tile headers).
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/conv.hpp"

namespace bitgrad::kernels {

// An output pixel (n, y, x), walked in NHWC order without divisions.
struct OutputCursor {
  int64_t n = 0, y = 0, x = 0;
};

inline OutputCursor output_cursor(const ConvSpec& spec, int64_t pixel) {
  const int64_t oh = spec.out_height(), ow = spec.out_width();
  return OutputCursor{pixel / (oh * ow), pixel / ow % oh, pixel % ow};
}

// fields[p] for p < nr = the first element of the receptive field of output pixel `first` + p in a
// padded image [batch, hp, wp, pixel_elements] (the field's top-left tap; taps follow at the caller's
// offsets). Pixels past out_pixels() (the last tile's tail) repeat the last valid one. `c` must be
// the cursor of `first`; it is left on the first pixel after the valid ones.
template <typename T>
void gather_fields(const ConvSpec& spec, const T* image, int64_t hp, int64_t wp,
                   int64_t pixel_elements, int64_t first, int64_t nr, OutputCursor& c,
                   const T** fields) {
  const int64_t oh = spec.out_height(), ow = spec.out_width(), s = spec.stride;
  const int64_t valid = std::min<int64_t>(nr, spec.out_pixels() - first);
  const T* field = nullptr;
  for (int64_t p = 0; p < nr; ++p) {
    if (p < valid) {
      field = image + ((c.n * hp + c.y * s) * wp + c.x * s) * pixel_elements;
      if (++c.x == ow) {
        c.x = 0;
        if (++c.y == oh) {
          c.y = 0;
          ++c.n;
        }
      }
    }
    fields[p] = field;
  }
}

}  // namespace bitgrad::kernels
