// idx_test.cpp: IDX files written by the test (raw and gzipped with zlib) read back exactly; every
// corrupt case (bad magic/type/rank, truncated or trailing payload, corrupt or truncated gzip,
// count mismatch, bad label) raises Error; and the real Fashion-MNIST test set loads when
// installed.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "datasets/idx.hpp"
#include "test_util.hpp"

namespace bitgrad::test {
namespace {

namespace fs = std::filesystem;
using datasets::IdxArray;


// An IDX image: magic (big-endian, element type u8), big-endian dims, payload.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& payload, uint8_t type = 0x08) {
  std::vector<uint8_t> out = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (const uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(d >> shift));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::vector<uint8_t> iota_bytes(size_t n, uint8_t start = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(start + i * 7);
  return v;
}

void write_raw(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz != nullptr);
  if (!bytes.empty()) {
    REQUIRE(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())) ==
            static_cast<int>(bytes.size()));
  }
  REQUIRE(gzclose(gz) == Z_OK);
}

std::vector<uint8_t> gz_bytes(const TempDir& dir, const std::vector<uint8_t>& bytes) {
  const std::string tmp = dir.file("scratch.gz");
  write_gz(tmp, bytes);
  std::vector<uint8_t> out = core::read_file(tmp);
  fs::remove(tmp);
  return out;
}

void require_idx_error(const std::string& path, const std::string& fragment) {
  REQUIRE_THROWS_WITH(datasets::read_idx(path),
                      Catch::Contains("'" + path + "'") && Catch::Contains(fragment));
}

TEST_CASE("idx: raw and gzipped files read back exactly", "[idx]") {
  TempDir dir;
  const std::vector<uint8_t> images = iota_bytes(2 * 3 * 4);
  const std::vector<uint8_t> labels = {3, 1, 4, 1, 5};
  write_raw(dir.file("images.raw"), idx_bytes({2, 3, 4}, images));
  write_gz(dir.file("images.gz"), idx_bytes({2, 3, 4}, images));
  write_raw(dir.file("labels.raw"), idx_bytes({5}, labels));
  write_gz(dir.file("labels.gz"), idx_bytes({5}, labels));

  for (const char* name : {"images.raw", "images.gz"}) {
    const IdxArray a = datasets::read_idx(dir.file(name));
    CHECK(a.shape == std::vector<int64_t>{2, 3, 4});
    CHECK(a.data == images);
  }
  for (const char* name : {"labels.raw", "labels.gz"}) {
    const IdxArray a = datasets::read_idx(dir.file(name));
    CHECK(a.shape == std::vector<int64_t>{5});
    CHECK(a.data == labels);
  }
  // Empty arrays are valid.
  write_gz(dir.file("empty.gz"), idx_bytes({0, 28, 28}, {}));
  CHECK(datasets::read_idx(dir.file("empty.gz")).shape == std::vector<int64_t>{0, 28, 28});

  // A payload larger than zlib's first output chunk, and two concatenated gzip members.
  const std::vector<uint8_t> big = iota_bytes(3 * 700 * 1000, 1);
  const std::vector<uint8_t> whole = idx_bytes({3, 700, 1000}, big);
  std::vector<uint8_t> two_members = gz_bytes(dir, {whole.begin(), whole.begin() + 1000});
  const std::vector<uint8_t> second = gz_bytes(dir, {whole.begin() + 1000, whole.end()});
  two_members.insert(two_members.end(), second.begin(), second.end());
  write_raw(dir.file("two.gz"), two_members);
  const IdxArray b = datasets::read_idx(dir.file("two.gz"));
  CHECK(b.shape == std::vector<int64_t>{3, 700, 1000});
  CHECK(b.data == big);
}

TEST_CASE("idx: corrupt headers and payloads raise Error with the values found", "[idx]") {
  TempDir dir;
  const std::string path = dir.file("bad");
  const std::vector<uint8_t> good = idx_bytes({2, 2, 2}, iota_bytes(8));

  SECTION("missing file") { require_idx_error(dir.file("absent"), "cannot open"); }
  SECTION("bad magic") {
    std::vector<uint8_t> b = good;
    b[0] = 0x12;
    b[1] = 0x34;
    write_raw(path, b);
    require_idx_error(path, "bad magic 0x12340803");
    write_raw(path, {'P', 'K', 3, 4, 0, 0, 0, 0});
    require_idx_error(path, "bad magic 0x504B0304");
  }
  SECTION("element type other than unsigned byte") {
    write_raw(path, idx_bytes({2}, {0, 0, 0, 0, 0, 0, 0, 0}, 0x0D));
    require_idx_error(path, "element-type byte 0x0D");
    write_gz(path, idx_bytes({2}, {1, 2}, 0x09));
    require_idx_error(path, "element-type byte 0x09");
  }
  SECTION("rank other than 1 or 3") {
    write_raw(path, idx_bytes({2, 2}, iota_bytes(4)));
    require_idx_error(path, "has rank 2");
    write_raw(path, idx_bytes({}, {}));
    require_idx_error(path, "has rank 0");
  }
  SECTION("truncated header") {
    write_raw(path, {0, 0, 8});
    require_idx_error(path, "header truncated: file has 3 bytes");
    write_raw(path, {0, 0, 8, 3, 0, 0, 0, 2, 0, 0});
    require_idx_error(path, "header truncated: file has 10 bytes, the header needs 16");
    write_raw(path, {});
    require_idx_error(path, "header truncated: file has 0 bytes");
  }
  SECTION("payload shorter or longer than the dims") {
    std::vector<uint8_t> b = good;
    b.pop_back();
    write_raw(path, b);
    require_idx_error(path, "dims [2, 2, 2] need 8 payload bytes, found 7 (truncated)");
    write_gz(path, b);
    require_idx_error(path, "found 7 (truncated)");
    b = good;
    b.push_back(0);
    b.push_back(0);
    write_raw(path, b);
    require_idx_error(path, "need 8 payload bytes, found 10 (trailing bytes)");
    write_gz(path, b);
    require_idx_error(path, "(trailing bytes)");
  }
  SECTION("absurd dims are refused before reading the payload") {
    write_gz(path, idx_bytes({60000, 65535, 65535}, {1, 2, 3}));
    require_idx_error(path, "beyond this reader's limit");
  }
  SECTION("corrupt gzip streams") {
    const std::vector<uint8_t> image = idx_bytes({4, 28, 28}, iota_bytes(4 * 28 * 28, 3));
    const std::vector<uint8_t> gz = gz_bytes(dir, image);
    REQUIRE(gz.size() > 30);

    std::vector<uint8_t> flipped = gz;
    for (size_t i = gz.size() / 2; i < gz.size() / 2 + 8; ++i) flipped[i] ^= 0x5A;
    write_raw(path, flipped);
    require_idx_error(path, "corrupt gzip stream");

    std::vector<uint8_t> bad_crc = gz;
    bad_crc[gz.size() - 6] ^= 0xFF;  // inside the CRC-32 trailer
    write_raw(path, bad_crc);
    require_idx_error(path, "corrupt gzip stream");

    write_raw(path, {gz.begin(), gz.end() - 12});
    require_idx_error(path, "corrupt gzip stream: truncated");
    write_raw(path, {0x1f, 0x8b});
    require_idx_error(path, "corrupt gzip stream");

    std::vector<uint8_t> garbage = gz;
    garbage.push_back('x');
    garbage.push_back('y');
    write_raw(path, garbage);
    require_idx_error(path, "2 bytes of garbage after the end");

    // Every truncation of the compressed file is rejected (never read as a shorter payload).
    for (size_t n = 0; n < gz.size(); ++n) {
      write_raw(path, {gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(n)});
      INFO("gzip truncated to " << n << " of " << gz.size() << " bytes");
      REQUIRE_THROWS_AS(datasets::read_idx(path), Error);
    }
  }
}

// Writes an MNIST-like split: n images of rows x cols and the given labels.
void write_split(const TempDir& dir, const std::string& prefix, uint32_t n,
                 const std::vector<uint8_t>& labels, bool gz) {
  const std::vector<uint8_t> images = idx_bytes({n, 28, 28}, iota_bytes(size_t{n} * 28 * 28));
  const std::vector<uint8_t> label_file = idx_bytes({static_cast<uint32_t>(labels.size())}, labels);
  if (gz) {
    write_gz(dir.file(prefix + "-images-idx3-ubyte.gz"), images);
    write_gz(dir.file(prefix + "-labels-idx1-ubyte.gz"), label_file);
  } else {
    write_raw(dir.file(prefix + "-images-idx3-ubyte"), images);
    write_raw(dir.file(prefix + "-labels-idx1-ubyte"), label_file);
  }
}

TEST_CASE("idx: load_mnist_like reads gzipped and raw splits", "[idx]") {
  TempDir dir;
  write_split(dir, "train", 3, {0, 9, 4}, true);
  write_split(dir, "t10k", 2, {7, 7}, false);

  const datasets::ImageSet train = datasets::load_mnist_like(dir.path().string(), true);
  CHECK(train.images.shape() == core::Shape{3, 1, 28, 28});
  CHECK(train.labels == std::vector<int64_t>{0, 9, 4});
  CHECK(train.classes == 10);
  const std::vector<uint8_t> pixels = iota_bytes(3 * 28 * 28);
  const std::vector<float> values = train.images.to_vector();
  int wrong = 0;
  for (size_t i = 0; i < pixels.size(); ++i) {
    if (values[i] != static_cast<float>(pixels[i]) / 255.0f) ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(train.images.at({0, 0, 0, 1}) == 7.0f / 255.0f);

  const datasets::ImageSet test = datasets::load_mnist_like(dir.path().string(), false);
  CHECK(test.images.shape() == core::Shape{2, 1, 28, 28});
  CHECK(test.labels == std::vector<int64_t>{7, 7});

  // The ".gz" name wins when both exist.
  write_split(dir, "t10k", 1, {5}, true);
  CHECK(datasets::load_mnist_like(dir.path().string(), false).labels == std::vector<int64_t>{5});
}

TEST_CASE("idx: load_mnist_like rejects inconsistent splits", "[idx]") {
  TempDir dir;
  const std::string d = dir.path().string();
  SECTION("missing files") {
    REQUIRE_THROWS_WITH(
        datasets::load_mnist_like(d, false),
        Catch::Contains("no t10k images file") && Catch::Contains("t10k-images-idx3-ubyte.gz"));
    write_split(dir, "train", 1, {1}, true);
    fs::remove(dir.path() / "train-labels-idx1-ubyte.gz");
    REQUIRE_THROWS_WITH(datasets::load_mnist_like(d, true),
                        Catch::Contains("no train labels file"));
  }
  SECTION("count mismatch between images and labels") {
    write_split(dir, "train", 3, {1, 2}, true);
    REQUIRE_THROWS_WITH(datasets::load_mnist_like(d, true),
                        Catch::Contains("3 images in") && Catch::Contains("but 2 labels in"));
  }
  SECTION("label out of range") {
    write_split(dir, "train", 3, {1, 10, 2}, false);
    REQUIRE_THROWS_WITH(
        datasets::load_mnist_like(d, true),
        Catch::Contains("label 10 at index 1") && Catch::Contains("not in [0, 10)"));
  }
  SECTION("files swapped: labels where images belong") {
    write_raw(dir.file("train-images-idx3-ubyte"), idx_bytes({2}, {1, 2}));
    write_raw(dir.file("train-labels-idx1-ubyte"), idx_bytes({2}, {1, 2}));
    REQUIRE_THROWS_WITH(datasets::load_mnist_like(d, true),
                        Catch::Contains("should hold images [N, rows, cols], found dims [2]"));
  }
}

TEST_CASE("idx: the real Fashion-MNIST test set", "[idx]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::is_directory(dir)) {
    WARN("skipped: " << dir << " is absent (install the Debian package dataset-fashion-mnist)");
    return;
  }
  const datasets::ImageSet test = datasets::load_mnist_like(dir, false);
  REQUIRE(test.images.shape() == core::Shape{10000, 1, 28, 28});
  REQUIRE(test.labels.size() == 10000);
  CHECK(test.classes == 10);
  std::vector<int> per_class(10, 0);
  for (const int64_t l : test.labels) {
    REQUIRE(l >= 0);
    REQUIRE(l < 10);
    ++per_class[static_cast<size_t>(l)];
  }
  CHECK(per_class == std::vector<int>(10, 1000));
  const std::span<const float> px = test.images.span();
  const auto [lo, hi] = std::minmax_element(px.begin(), px.end());
  CHECK(*lo == 0.0f);
  CHECK(*hi == 1.0f);
  // The first test items of Fashion-MNIST: ankle boot, pullover, trouser, trouser.
  CHECK(std::vector<int64_t>(test.labels.begin(), test.labels.begin() + 4) ==
        std::vector<int64_t>{9, 2, 1, 1});
}

}  // namespace
}  // namespace bitgrad::test
