// image.cpp: Image storage, the drawing primitives and the PNG encoder (PNG spec, 2nd edition, W3C
// 2003: chunk layout section 5, filters section 9; the deflate stream and CRC-32 come from zlib).
#include "viz/image.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdlib>
#include <limits>
#include <span>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace bitgrad::viz {

Image::Image(int width, int height, Rgb background) {
  check_lazy(width >= 1 && height >= 1 && width <= kMaxSide && height <= kMaxSide, [&] {
    return "Image: expected width and height in [1, " + std::to_string(kMaxSide) + "], got " +
           std::to_string(width) + " x " + std::to_string(height);
  });
  width_ = width;
  height_ = height;
  pixels_.resize(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
  for (size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = background.r;
    pixels_[i + 1] = background.g;
    pixels_[i + 2] = background.b;
  }
}

Rgb Image::at(int x, int y) const {
  assert(contains(x, y));
  const size_t i = offset(x, y);
  return Rgb{pixels_[i], pixels_[i + 1], pixels_[i + 2]};
}

void Image::set(int x, int y, Rgb color) {
  if (!contains(x, y)) return;
  const size_t i = offset(x, y);
  pixels_[i] = color.r;
  pixels_[i + 1] = color.g;
  pixels_[i + 2] = color.b;
}

void fill_rect(Image& image, int x, int y, int w, int h, Rgb color) {
  const int x0 = std::max(x, 0);
  const int y0 = std::max(y, 0);
  const int x1 = std::min(x + w, image.width());
  const int y1 = std::min(y + h, image.height());
  for (int yy = y0; yy < y1; ++yy)
    for (int xx = x0; xx < x1; ++xx) image.set(xx, yy, color);
}

void draw_line(Image& image, int x0, int y0, int x1, int y1, Rgb color, int thickness) {
  assert(thickness >= 1);
  const int lo = -(thickness - 1) / 2;
  const int hi = thickness / 2;
  const auto stamp = [&](int x, int y) {
    for (int dy = lo; dy <= hi; ++dy)
      for (int dx = lo; dx <= hi; ++dx) image.set(x + dx, y + dy, color);
  };
  // Integer Bresenham for all octants (the error term form of Zingl, "A Rasterizing Algorithm for
  // Drawing Curves", 2012). Far-outside endpoints would take long: callers pass points on or near
  // the image.
  const int dx = std::abs(x1 - x0);
  const int dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1;
  const int sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  while (true) {
    stamp(x0, y0);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

void blit(Image& dst, const Image& src, int x, int y) {
  for (int sy = 0; sy < src.height(); ++sy) {
    if (y + sy < 0 || y + sy >= dst.height()) continue;
    for (int sx = 0; sx < src.width(); ++sx) dst.set(x + sx, y + sy, src.at(sx, sy));
  }
}

namespace {

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  out.push_back(static_cast<uint8_t>(v >> 24));
  out.push_back(static_cast<uint8_t>(v >> 16));
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

// length, type, data, CRC-32 of type + data (PNG spec 5.3).
void put_chunk(std::vector<uint8_t>& out, const char (&type)[5], std::span<const uint8_t> data) {
  assert(data.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()));
  put_u32(out, static_cast<uint32_t>(data.size()));
  const size_t type_at = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), data.begin(), data.end());
  const uLong crc = crc32(0L, out.data() + type_at, static_cast<uInt>(4 + data.size()));
  put_u32(out, static_cast<uint32_t>(crc));
}

uint8_t paeth(int a, int b, int c) {
  const int p = a + b - c;
  const int pa = std::abs(p - a);
  const int pb = std::abs(p - b);
  const int pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return static_cast<uint8_t>(a);
  if (pb <= pc) return static_cast<uint8_t>(b);
  return static_cast<uint8_t>(c);
}

// Filters one scanline `row` (with `prev` the row above, all zeros for the first) into `out`
// (filter type byte first). bpp = 3 bytes per pixel; bytes left of the row count as 0.
void filter_row(int type, std::span<const uint8_t> row, std::span<const uint8_t> prev,
                uint8_t* out) {
  constexpr size_t bpp = 3;
  out[0] = static_cast<uint8_t>(type);
  for (size_t i = 0; i < row.size(); ++i) {
    const int a = i >= bpp ? row[i - bpp] : 0;
    const int b = prev[i];
    const int c = i >= bpp ? prev[i - bpp] : 0;
    int predicted = 0;
    switch (type) {
      case 0: predicted = 0; break;
      case 1: predicted = a; break;
      case 2: predicted = b; break;
      case 3: predicted = (a + b) / 2; break;
      default: predicted = paeth(a, b, c); break;
    }
    out[1 + i] = static_cast<uint8_t>(row[i] - predicted);
  }
}

// Sum of the filtered bytes read as signed values, the heuristic of PNG spec 12.8.
uint64_t filtered_cost(const uint8_t* filtered, size_t n) {
  uint64_t sum = 0;
  for (size_t i = 0; i < n; ++i)
    sum += static_cast<uint64_t>(std::abs(static_cast<int8_t>(filtered[i])));
  return sum;
}

}  // namespace

std::vector<uint8_t> encode_png(const Image& image, const PngOptions& options) {
  check(!image.empty(), "encode_png: expected a non-empty image, got 0 x 0");
  check_lazy(options.level >= 0 && options.level <= 9, [&] {
    return "encode_png: expected a zlib level in [0, 9], got " + std::to_string(options.level);
  });
  check_lazy(options.idat_chunk_bytes >= 1, [&] {
    return "encode_png: expected idat_chunk_bytes >= 1, got " +
           std::to_string(options.idat_chunk_bytes);
  });
  check_lazy(options.filter >= PngFilter::kNone && options.filter <= PngFilter::kAdaptive, [&] {
    return "encode_png: expected a filter 0..5, got " +
           std::to_string(static_cast<int>(options.filter));
  });

  const size_t row_bytes = static_cast<size_t>(image.width()) * 3;
  const size_t height = static_cast<size_t>(image.height());
  std::vector<uint8_t> filtered((row_bytes + 1) * height);
  const std::vector<uint8_t> zeros(row_bytes, 0);
  std::vector<uint8_t> candidate(row_bytes + 1);
  for (size_t y = 0; y < height; ++y) {
    const std::span<const uint8_t> row(image.pixels().data() + y * row_bytes, row_bytes);
    const std::span<const uint8_t> prev =
        y == 0 ? std::span<const uint8_t>(zeros)
               : std::span<const uint8_t>(image.pixels().data() + (y - 1) * row_bytes, row_bytes);
    uint8_t* out = filtered.data() + y * (row_bytes + 1);
    if (options.filter != PngFilter::kAdaptive) {
      filter_row(static_cast<int>(options.filter), row, prev, out);
      continue;
    }
    uint64_t best_cost = std::numeric_limits<uint64_t>::max();
    for (int type = 0; type <= 4; ++type) {
      filter_row(type, row, prev, candidate.data());
      const uint64_t cost = filtered_cost(candidate.data() + 1, row_bytes);
      if (cost < best_cost) {
        best_cost = cost;
        std::copy(candidate.begin(), candidate.end(), out);
      }
    }
  }

  uLongf compressed_size = compressBound(static_cast<uLong>(filtered.size()));
  std::vector<uint8_t> compressed(compressed_size);
  const int rc = compress2(compressed.data(), &compressed_size, filtered.data(),
                           static_cast<uLong>(filtered.size()), options.level);
  check_lazy(rc == Z_OK,
             [&] { return "encode_png: zlib compress2 failed with code " + std::to_string(rc); });
  compressed.resize(compressed_size);

  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  png.reserve(compressed.size() + 128);
  std::vector<uint8_t> ihdr;
  put_u32(ihdr, static_cast<uint32_t>(image.width()));
  put_u32(ihdr, static_cast<uint32_t>(image.height()));
  // Bit depth 8, colour type 2 (RGB), compression 0 (deflate), filter method 0, no interlace.
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  put_chunk(png, "IHDR", ihdr);
  const size_t chunk = static_cast<size_t>(options.idat_chunk_bytes);
  const std::span<const uint8_t> stream(compressed);
  for (size_t at = 0; at < stream.size(); at += chunk)
    put_chunk(png, "IDAT", stream.subspan(at, std::min(chunk, stream.size() - at)));
  put_chunk(png, "IEND", {});
  return png;
}

void write_png(const std::string& path, const Image& image, const PngOptions& options) {
  core::write_file_atomic(path, encode_png(image, options));
}

}  // namespace bitgrad::viz
