// png_test.cpp: Image, draw_line and the PNG encoder. The PNG checks decode our own output here,
// independently of the encoder: signature, chunk order and CRC-32 (zlib crc32), IHDR fields, the
// inflated IDAT stream (zlib uncompress), the filter byte of every row, and every pixel.
#include <zlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/file_io.hpp"
#include "core/rng.hpp"
#include "test_util.hpp"
#include "viz/image.hpp"

namespace {

using bitgrad::viz::Image;
using bitgrad::viz::PngFilter;
using bitgrad::viz::PngOptions;
using bitgrad::viz::Rgb;

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

struct DecodedPng {
  uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0, compression = 0, filter_method = 0, interlace = 0;
  std::vector<std::string> chunk_types;
  std::vector<int> row_filters;
  std::vector<uint8_t> rgb;
};

// A minimal PNG reader for 8-bit RGB, non-interlaced files, written from the PNG specification.
DecodedPng decode_png(const std::vector<uint8_t>& png) {
  DecodedPng d;
  const std::vector<uint8_t> signature = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  REQUIRE(png.size() >= 8);
  REQUIRE(std::vector<uint8_t>(png.begin(), png.begin() + 8) == signature);
  std::vector<uint8_t> idat;
  size_t at = 8;
  while (at < png.size()) {
    REQUIRE(at + 12 <= png.size());
    const uint32_t length = be32(&png[at]);
    REQUIRE(length < (1u << 31));
    REQUIRE(at + 12 + length <= png.size());
    const std::string type(png.begin() + static_cast<ptrdiff_t>(at + 4),
                           png.begin() + static_cast<ptrdiff_t>(at + 8));
    const uint8_t* data = &png[at + 8];
    const uint32_t stored_crc = be32(&png[at + 8 + length]);
    CHECK(stored_crc == crc32(0L, &png[at + 4], 4 + length));
    d.chunk_types.push_back(type);
    if (type == "IHDR") {
      REQUIRE(length == 13);
      d.width = be32(data);
      d.height = be32(data + 4);
      d.bit_depth = data[8];
      d.color_type = data[9];
      d.compression = data[10];
      d.filter_method = data[11];
      d.interlace = data[12];
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + length);
    } else if (type == "IEND") {
      CHECK(length == 0);
    }
    at += 12 + length;
  }
  CHECK(at == png.size());
  REQUIRE(d.chunk_types.size() >= 3);
  CHECK(d.chunk_types.front() == "IHDR");
  CHECK(d.chunk_types.back() == "IEND");
  for (size_t i = 1; i + 1 < d.chunk_types.size(); ++i) CHECK(d.chunk_types[i] == "IDAT");
  REQUIRE(d.bit_depth == 8);
  REQUIRE(d.color_type == 2);
  CHECK(d.compression == 0);
  CHECK(d.filter_method == 0);
  CHECK(d.interlace == 0);

  const size_t row_bytes = size_t{d.width} * 3;
  const size_t expected = (row_bytes + 1) * d.height;
  std::vector<uint8_t> raw(expected + 16);  // room to notice a stream longer than expected
  uLongf raw_size = static_cast<uLongf>(raw.size());
  REQUIRE(uncompress(raw.data(), &raw_size, idat.data(), static_cast<uLong>(idat.size())) == Z_OK);
  REQUIRE(raw_size == expected);

  d.rgb.assign(row_bytes * d.height, 0);
  for (size_t y = 0; y < d.height; ++y) {
    const uint8_t* in = &raw[y * (row_bytes + 1)];
    const int filter = in[0];
    REQUIRE(filter <= 4);
    d.row_filters.push_back(filter);
    uint8_t* out = &d.rgb[y * row_bytes];
    const uint8_t* up = y > 0 ? &d.rgb[(y - 1) * row_bytes] : nullptr;
    for (size_t i = 0; i < row_bytes; ++i) {
      const int a = i >= 3 ? out[i - 3] : 0;
      const int b = up ? up[i] : 0;
      const int c = up && i >= 3 ? up[i - 3] : 0;
      int predictor = 0;
      if (filter == 1) predictor = a;
      if (filter == 2) predictor = b;
      if (filter == 3) predictor = (a + b) / 2;
      if (filter == 4) {
        const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        predictor = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
      }
      out[i] = static_cast<uint8_t>(in[1 + i] + predictor);
    }
  }
  return d;
}

Image noise_image(int w, int h, uint64_t seed) {
  bitgrad::core::Rng rng(seed);
  Image image(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const uint64_t v = rng.next_u64();
      image.set(x, y, Rgb{static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8),
                          static_cast<uint8_t>(v >> 16)});
    }
  return image;
}

// Smooth gradients, flat blocks and noise, so that every filter type has rows where it wins.
Image mixed_image(int w, int h) {
  Image image = noise_image(w, h, 7);
  for (int y = 0; y < h / 2; ++y)
    for (int x = 0; x < w; ++x)
      image.set(x, y, Rgb{static_cast<uint8_t>(x * 3), static_cast<uint8_t>(y * 5),
                          static_cast<uint8_t>((x + y) * 2)});
  bitgrad::viz::fill_rect(image, w / 4, h / 4, w / 2, h / 4, Rgb{10, 200, 30});
  return image;
}

void check_same_pixels(const DecodedPng& d, const Image& image) {
  REQUIRE(d.width == static_cast<uint32_t>(image.width()));
  REQUIRE(d.height == static_cast<uint32_t>(image.height()));
  REQUIRE(d.rgb.size() == image.pixels().size());
  size_t mismatches = 0;
  for (size_t i = 0; i < d.rgb.size(); ++i) mismatches += d.rgb[i] != image.pixels()[i];
  CHECK(mismatches == 0);
}

}  // namespace

TEST_CASE("Image stores pixels row-major and clips writes", "[viz]") {
  Image image(4, 3, Rgb{1, 2, 3});
  CHECK(image.width() == 4);
  CHECK(image.height() == 3);
  CHECK(image.pixels().size() == 4 * 3 * 3);
  CHECK(image.at(3, 2) == Rgb{1, 2, 3});
  image.set(2, 1, Rgb{9, 8, 7});
  CHECK(image.at(2, 1) == Rgb{9, 8, 7});
  const size_t i = (1 * 4 + 2) * 3;
  CHECK(image.pixels()[i] == 9);
  CHECK(image.pixels()[i + 1] == 8);
  CHECK(image.pixels()[i + 2] == 7);
  const std::vector<uint8_t> before = image.pixels();
  image.set(-1, 0, Rgb{});
  image.set(4, 0, Rgb{});
  image.set(0, 3, Rgb{});
  CHECK(image.pixels() == before);

  CHECK(bitgrad::test::error_message([] { Image(0, 5); }).find("got 0 x 5") != std::string::npos);
  CHECK_THROWS_AS(Image(5, Image::kMaxSide + 1), bitgrad::Error);
  CHECK(Image().empty());
}

TEST_CASE("draw_line is continuous in every octant and thickness 2 covers two rows", "[viz]") {
  const int c = 20;
  const std::vector<std::pair<int, int>> ends = {{39, 20}, {39, 27}, {33, 39}, {20, 39}, {7, 39},
                                                 {0, 26},  {0, 20},  {1, 5},   {14, 0},  {20, 0},
                                                 {30, 0},  {39, 1},  {38, 38}, {0, 0}};
  for (const auto& [ex, ey] : ends) {
    for (const bool reversed : {false, true}) {
      Image image(40, 40);
      const Rgb ink{0, 0, 255};
      if (reversed)
        bitgrad::viz::draw_line(image, ex, ey, c, c, ink);
      else
        bitgrad::viz::draw_line(image, c, c, ex, ey, ink);
      INFO("line (20, 20) - (" << ex << ", " << ey << ") reversed " << reversed);
      CHECK(image.at(c, c) == ink);
      CHECK(image.at(ex, ey) == ink);
      // Along the major axis exactly one pixel per step, neighbours at most one apart.
      const bool x_major = std::abs(ex - c) >= std::abs(ey - c);
      const int n = std::max(std::abs(ex - c), std::abs(ey - c));
      int painted = 0;
      for (int y = 0; y < 40; ++y)
        for (int x = 0; x < 40; ++x) painted += image.at(x, y) == ink;
      CHECK(painted == n + 1);
      int previous = -1;
      for (int step = 0; step <= n; ++step) {
        const int end = x_major ? ex : ey;
        const int major = end >= c ? c + step : c - step;
        int found = -1, count = 0;
        for (int minor = 0; minor < 40; ++minor) {
          const bool hit = x_major ? image.at(major, minor) == ink : image.at(minor, major) == ink;
          if (hit) {
            found = minor;
            ++count;
          }
        }
        CHECK(count == 1);
        if (previous >= 0) CHECK(std::abs(found - previous) <= 1);
        previous = found;
      }
    }
  }

  Image thick(30, 10);
  bitgrad::viz::draw_line(thick, 2, 4, 27, 4, Rgb{255, 0, 0}, 2);
  for (int x = 2; x <= 27; ++x) {
    CHECK(thick.at(x, 4) == Rgb{255, 0, 0});
    CHECK(thick.at(x, 5) == Rgb{255, 0, 0});
    CHECK(thick.at(x, 3) == bitgrad::viz::kWhite);
    CHECK(thick.at(x, 6) == bitgrad::viz::kWhite);
  }
  // Far outside the image: clipped, nothing thrown.
  bitgrad::viz::draw_line(thick, -50, -3, 80, 12, Rgb{0, 255, 0}, 3);
}

TEST_CASE("encode_png round-trips every pixel for every filter and level", "[viz]") {
  const Image image = mixed_image(53, 29);
  for (const PngFilter filter : {PngFilter::kNone, PngFilter::kSub, PngFilter::kUp,
                                 PngFilter::kAverage, PngFilter::kPaeth, PngFilter::kAdaptive}) {
    for (const int level : {0, 1, 6, 9}) {
      PngOptions options;
      options.filter = filter;
      options.level = level;
      INFO("filter " << static_cast<int>(filter) << " level " << level);
      const DecodedPng d = decode_png(bitgrad::viz::encode_png(image, options));
      check_same_pixels(d, image);
      REQUIRE(d.row_filters.size() == 29);
      if (filter != PngFilter::kAdaptive)
        for (const int f : d.row_filters) CHECK(f == static_cast<int>(filter));
    }
  }
  // Adaptive filtering really adapts on this picture.
  const DecodedPng adaptive = decode_png(bitgrad::viz::encode_png(image));
  CHECK(std::set<int>(adaptive.row_filters.begin(), adaptive.row_filters.end()).size() >= 2);
}

TEST_CASE("encode_png adaptive filter picks Sub for a ramp and Up for a repeated row", "[viz]") {
  Image image(40, 6);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 40; ++x) {
      const auto v = static_cast<uint8_t>(5 * x);
      image.set(x, y, Rgb{v, v, v});
    }
  const DecodedPng d = decode_png(bitgrad::viz::encode_png(image));
  check_same_pixels(d, image);
  // Row 0: Sub leaves 5s (Paeth ties with it, the first minimum wins); later rows equal the row
  // above, so Up leaves zeros.
  CHECK(d.row_filters == std::vector<int>{1, 2, 2, 2, 2, 2});
}

TEST_CASE("encode_png: noise, odd sizes and several IDAT chunks", "[viz]") {
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{1, 1}, {1, 17}, {17, 1}, {64, 48}}) {
    const Image image = noise_image(w, h, static_cast<uint64_t>(w * 100 + h));
    INFO(w << " x " << h);
    const std::vector<uint8_t> png = bitgrad::viz::encode_png(image);
    check_same_pixels(decode_png(png), image);
    CHECK(bitgrad::viz::encode_png(image) == png);  // deterministic
  }
  PngOptions small_chunks;
  small_chunks.idat_chunk_bytes = 100;
  const Image image = noise_image(30, 20, 3);
  const DecodedPng d = decode_png(bitgrad::viz::encode_png(image, small_chunks));
  check_same_pixels(d, image);
  // 30 x 20 noise barely compresses: about 1.8 kB of deflate data in 100-byte chunks.
  const auto idat_chunks = std::count(d.chunk_types.begin(), d.chunk_types.end(), "IDAT");
  CHECK(idat_chunks >= 18);
}

TEST_CASE("encode_png rejects empty images and bad options", "[viz]") {
  CHECK(bitgrad::test::error_message([] { bitgrad::viz::encode_png(Image()); })
            .find("non-empty") != std::string::npos);
  PngOptions bad_level;
  bad_level.level = 10;
  CHECK(bitgrad::test::error_message([&] { bitgrad::viz::encode_png(Image(2, 2), bad_level); })
            .find("got 10") != std::string::npos);
  PngOptions bad_chunk;
  bad_chunk.idat_chunk_bytes = 0;
  CHECK_THROWS_AS(bitgrad::viz::encode_png(Image(2, 2), bad_chunk), bitgrad::Error);
}

TEST_CASE("write_png writes the encoded bytes atomically and fails cleanly", "[viz]") {
  bitgrad::test::TempDir dir;
  const Image image = mixed_image(20, 10);
  const std::string path = dir.file("picture.png");
  bitgrad::viz::write_png(path, image);
  CHECK(bitgrad::core::read_file(path) == bitgrad::viz::encode_png(image));
  CHECK(dir.listing() == std::vector<std::string>{"picture.png"});  // no temporary left behind
  // Overwriting replaces the file.
  const Image other = noise_image(5, 5, 1);
  bitgrad::viz::write_png(path, other);
  check_same_pixels(decode_png(bitgrad::core::read_file(path)), other);

  const std::string missing = dir.file("no-such-dir/picture.png");
  const std::string message =
      bitgrad::test::error_message([&] { bitgrad::viz::write_png(missing, image); });
  CHECK(message.find("'" + missing + "'") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(missing));
  CHECK(dir.listing() == std::vector<std::string>{"picture.png"});
}
