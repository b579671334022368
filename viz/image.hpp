// image.hpp: Image, an 8-bit RGB raster, a few drawing primitives (rectangles, thick lines,
// copies) and a PNG encoder/writer built on zlib. Used by the line charts (viz/chart.hpp) and the
// pictures the CLI writes. Not here: reading PNGs, alpha, colour spaces or gamma, anti-aliasing,
// other file formats.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitgrad::viz {

// One 8-bit sRGB colour.
struct Rgb {
  uint8_t r = 0;
  uint8_t g = 0;
  uint8_t b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};

// A width x height RGB8 picture, row-major from the top-left corner, 3 bytes (r, g, b) per pixel:
// pixel (x, y) is pixels()[3 * (y * width + x) + {0, 1, 2}]. Value semantics (copies are deep).
// A default-constructed Image is empty (0 x 0) and cannot be encoded.
class Image {
 public:
  // Largest width or height accepted (a 16384 x 16384 image is 768 MiB).
  static constexpr int kMaxSide = 16384;

  Image() = default;
  // Filled with `background`. Throws Error unless 1 <= width, height <= kMaxSide.
  Image(int width, int height, Rgb background = kWhite);

  int width() const { return width_; }
  int height() const { return height_; }
  bool empty() const { return width_ == 0; }
  bool contains(int x, int y) const { return x >= 0 && y >= 0 && x < width_ && y < height_; }

  // The pixel at (x, y); (x, y) must be inside (assert).
  Rgb at(int x, int y) const;
  // Sets the pixel at (x, y); does nothing when (x, y) is outside, so drawing clips at the border.
  void set(int x, int y, Rgb color);

  // The raw bytes, width * height * 3.
  const std::vector<uint8_t>& pixels() const { return pixels_; }

 private:
  int width_ = 0;
  int height_ = 0;
  std::vector<uint8_t> pixels_;

  size_t offset(int x, int y) const {
    return (static_cast<size_t>(y) * static_cast<size_t>(width_) + static_cast<size_t>(x)) * 3;
  }
};

// Fills the w x h rectangle whose top-left corner is (x, y), clipped to the image.
void fill_rect(Image& image, int x, int y, int w, int h, Rgb color);

// A straight line from (x0, y0) to (x1, y1), both ends included, by Bresenham's algorithm (so it is
// 8-connected: no gaps). Each point stamps a `thickness` x `thickness` square covering offsets
// -(thickness - 1) / 2 .. thickness / 2 from it (thickness 2: the point and the pixels right of and
// below it). Clipped to the image. thickness >= 1 (assert).
void draw_line(Image& image, int x0, int y0, int x1, int y1, Rgb color, int thickness = 1);

// Copies `src` into `dst` with src's top-left corner at (x, y), clipped to dst.
void blit(Image& dst, const Image& src, int x, int y);

// How encode_png filters scanlines (PNG filter method 0). kAdaptive picks, per row, the filter
// whose output has the smallest sum of absolute (signed) bytes, the usual libpng heuristic.
enum class PngFilter { kNone = 0, kSub = 1, kUp = 2, kAverage = 3, kPaeth = 4, kAdaptive = 5 };

struct PngOptions {
  PngFilter filter = PngFilter::kAdaptive;
  int level = 6;                   // zlib compression level, 0 (store) .. 9 (smallest)
  int idat_chunk_bytes = 1 << 20;  // the zlib stream is split into IDAT chunks of at most this size
};

// The complete PNG file for `image`: signature, IHDR (8-bit truecolour, no interlace), the zlib
// (deflate) stream of the filtered scanlines in one or more IDAT chunks, IEND. Every chunk carries
// its CRC-32. Deterministic: the same image and options give the same bytes. Throws Error for an
// empty image or options out of range (level outside 0..9, idat_chunk_bytes < 1).
std::vector<uint8_t> encode_png(const Image& image, const PngOptions& options = PngOptions{});

// Writes encode_png(image) to `path` atomically (core::write_file_atomic: a temporary file in the
// same directory, then rename), so `path` is either untouched or the complete picture. Throws
// Error "cannot write '<path>': ..." when it cannot be written (e.g. the directory does not exist);
// no file is left behind then. Does not create directories.
void write_png(const std::string& path, const Image& image,
               const PngOptions& options = PngOptions{});

}  // namespace bitgrad::viz
