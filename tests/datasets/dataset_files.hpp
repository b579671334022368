// dataset_files.hpp: writers for small data set files in the official formats (CIFAR binary
// records, raw IDX), shared by the datasets tests.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace bitgrad::test {

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

// The 3,072 pixel bytes of test image `id`: byte k = (k * 7 + id * 31) mod 256, so every image and
// every position differs.
inline std::vector<uint8_t> cifar_pixels(int id) {
  std::vector<uint8_t> px(3072);
  for (size_t k = 0; k < px.size(); ++k)
    px[k] = static_cast<uint8_t>(k * 7 + static_cast<size_t>(id) * 31);
  return px;
}

// One record per entry: the label bytes (1 for CIFAR-10, coarse + fine for CIFAR-100), then the
// pixels of image ids[i].
inline std::vector<uint8_t> cifar_records(const std::vector<std::vector<uint8_t>>& label_bytes,
                                          const std::vector<int>& ids) {
  REQUIRE(label_bytes.size() == ids.size());
  std::vector<uint8_t> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    out.insert(out.end(), label_bytes[i].begin(), label_bytes[i].end());
    const std::vector<uint8_t> px = cifar_pixels(ids[i]);
    out.insert(out.end(), px.begin(), px.end());
  }
  return out;
}

// A raw (not gzipped) IDX file of unsigned bytes with the given dims.
inline std::vector<uint8_t> idx_file(const std::vector<uint32_t>& dims,
                                     const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out = {0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (const uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(d >> shift));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

}  // namespace bitgrad::test
