// idx.cpp: IDX header parsing, bounded gzip decompression with zlib's inflate, and the MNIST-like
// split loader.
#include "datasets/idx.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <span>
#include <utility>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace bitgrad::datasets {

namespace {

// Largest payload we accept (MNIST's training images are 47 MB). Checked before decompressing, so a
// gzip bomb with a huge declared size is refused instead of filling memory.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 32;

struct IdxLayout {
  std::vector<int64_t> shape;
  size_t header_bytes = 0;
  uint64_t payload_bytes = 0;
};

std::string hex(uint64_t v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llX", digits, static_cast<unsigned long long>(v));
  return buf;
}

std::string dims_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error("idx '" + path + "': " + what);
}

// Parses the header at the start of `bytes`. When `complete` is false, `bytes` may be a prefix of
// the file and nullopt means "not enough bytes yet"; when true, a short header is an error.
std::optional<IdxLayout> parse_header(std::span<const uint8_t> bytes, const std::string& path,
                                      bool complete) {
  auto need = [&](size_t n) {
    if (bytes.size() >= n) return true;
    if (complete) {
      fail(path, "header truncated: file has " + std::to_string(bytes.size()) +
                     " bytes, the header needs " + std::to_string(n));
    }
    return false;
  };
  if (!need(4)) return std::nullopt;
  const uint32_t magic = (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) |
                         (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
  if (bytes[0] != 0 || bytes[1] != 0) {
    fail(path, "bad magic " + hex(magic, 8) +
                   ", expected 0x00000803 (images) or 0x00000801 (labels); not an IDX file");
  }
  if (bytes[2] != 0x08) {
    fail(path, "magic " + hex(magic, 8) + " has element-type byte " + hex(bytes[2], 2) +
                   ", only 0x08 (unsigned byte) is supported");
  }
  const int rank = bytes[3];
  if (rank != 1 && rank != 3) {
    fail(path, "magic " + hex(magic, 8) + " has rank " + std::to_string(rank) +
                   ", expected 3 (images, 0x00000803) or 1 (labels, 0x00000801)");
  }
  IdxLayout layout;
  layout.header_bytes = 4 + 4 * static_cast<size_t>(rank);
  if (!need(layout.header_bytes)) return std::nullopt;
  uint64_t total = 1;
  for (int i = 0; i < rank; ++i) {
    const uint8_t* p = bytes.data() + 4 + 4 * i;
    const uint32_t d =
        (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    layout.shape.push_back(d);
    total *= d;  // at most 3 factors below 2^32 each: checked against the limit as we go
    if (total > kMaxPayloadBytes) total = kMaxPayloadBytes + 1;
  }
  if (total > kMaxPayloadBytes) {
    fail(path, "dims " + dims_string(layout.shape) + " declare more than " +
                   std::to_string(kMaxPayloadBytes) + " bytes, beyond this reader's limit");
  }
  layout.payload_bytes = total;
  return layout;
}

[[noreturn]] void fail_size(const std::string& path, const IdxLayout& layout, uint64_t payload) {
  fail(path, "dims " + dims_string(layout.shape) + " need " + std::to_string(layout.payload_bytes) +
                 " payload bytes, found " + std::to_string(payload) +
                 (payload < layout.payload_bytes ? " (truncated)" : " (trailing bytes)"));
}

// Ends the inflate stream on scope exit.
class InflateGuard {
 public:
  explicit InflateGuard(z_stream* zs) : zs_(zs) {}
  ~InflateGuard() { inflateEnd(zs_); }
  InflateGuard(const InflateGuard&) = delete;
  InflateGuard& operator=(const InflateGuard&) = delete;

 private:
  z_stream* zs_;
};

// Decompresses a gzip file image (possibly several concatenated members, as gzip allows). Stops
// with an error as soon as the output is longer than the IDX header in it declares.
std::vector<uint8_t> gunzip_idx(std::span<const uint8_t> in, const std::string& path) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) fail(path, "cannot initialise zlib");
  InflateGuard guard(&zs);

  std::vector<uint8_t> out;
  size_t produced = 0;
  size_t consumed = 0;
  std::optional<IdxLayout> layout;
  auto corrupt = [&](const char* what) {
    fail(path, std::string("corrupt gzip stream: ") + (zs.msg != nullptr ? zs.msg : what));
  };
  while (true) {
    if (out.size() - produced < 65536) {
      out.resize(produced + std::max<size_t>(1 << 20, produced / 2));
    }
    const size_t in_chunk = std::min<size_t>(in.size() - consumed, UINT_MAX);
    const size_t out_chunk = std::min<size_t>(out.size() - produced, UINT_MAX);
    zs.next_in = const_cast<Bytef*>(in.data() + consumed);
    zs.avail_in = static_cast<uInt>(in_chunk);
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(out_chunk);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    consumed += in_chunk - zs.avail_in;
    produced += out_chunk - zs.avail_out;

    if (!layout) {
      layout = parse_header({out.data(), produced}, path, false);
    }
    if (layout && produced > layout->header_bytes + layout->payload_bytes) {
      fail_size(path, *layout, produced - layout->header_bytes);
    }

    if (rc == Z_STREAM_END) {
      if (consumed == in.size()) break;
      // Another gzip member may follow; anything else after the stream is corruption.
      if (in.size() - consumed >= 2 && in[consumed] == 0x1f && in[consumed + 1] == 0x8b) {
        if (inflateReset(&zs) != Z_OK) corrupt("cannot restart inflate");
        continue;
      }
      fail(path, "corrupt gzip stream: " + std::to_string(in.size() - consumed) +
                     " bytes of garbage after the end of the compressed data");
    }
    if (rc == Z_BUF_ERROR || (rc == Z_OK && consumed == in.size() && zs.avail_out != 0)) {
      // No progress possible: all input used and the stream did not end.
      if (consumed == in.size()) {
        fail(path,
             "corrupt gzip stream: truncated (input ends before the end of the compressed data)");
      }
      continue;
    }
    if (rc != Z_OK) corrupt("inflate failed");
  }
  out.resize(produced);
  return out;
}

std::string find_split_file(const std::string& dir, const std::string& prefix,
                            const std::string& kind, const std::string& idx) {
  const std::vector<std::string> names = {
      prefix + "-" + kind + "-" + idx + "-ubyte.gz", prefix + "-" + kind + "-" + idx + "-ubyte",
      prefix + "-" + kind + "." + idx + "-ubyte.gz", prefix + "-" + kind + "." + idx + "-ubyte"};
  std::string tried;
  for (const auto& name : names) {
    const std::filesystem::path p = std::filesystem::path(dir) / name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
    tried += (tried.empty() ? "" : ", ") + name;
  }
  throw Error("load_mnist_like: no " + prefix + " " + kind + " file in '" + dir + "' (tried " +
              tried + ")");
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  std::vector<uint8_t> bytes = core::read_file(path);
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) bytes = gunzip_idx(bytes, path);
  const IdxLayout layout = *parse_header(bytes, path, true);
  const uint64_t payload = bytes.size() - layout.header_bytes;
  if (payload != layout.payload_bytes) fail_size(path, layout, payload);
  IdxArray out;
  out.shape = layout.shape;
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(layout.header_bytes), bytes.end());
  return out;
}

namespace {

// A validated MNIST-like split with u8 pixels.
struct RawSplit {
  IdxArray images;  // [N, rows, cols]
  std::vector<int64_t> labels;
};

RawSplit read_split(const std::string& dir, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_split_file(dir, prefix, "images", "idx3");
  const std::string labels_path = find_split_file(dir, prefix, "labels", "idx1");
  RawSplit split;
  split.images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);
  const IdxArray& images = split.images;
  check_lazy(images.shape.size() == 3, [&] {
    return "load_mnist_like: '" + images_path +
           "' should hold images [N, rows, cols], found dims " + dims_string(images.shape);
  });
  check_lazy(labels.shape.size() == 1, [&] {
    return "load_mnist_like: '" + labels_path + "' should hold labels [N], found dims " +
           dims_string(labels.shape);
  });
  check_lazy(images.shape[0] == labels.shape[0], [&] {
    return "load_mnist_like: " + std::to_string(images.shape[0]) + " images in '" + images_path +
           "' but " + std::to_string(labels.shape[0]) + " labels in '" + labels_path + "'";
  });
  split.labels.reserve(labels.data.size());
  for (size_t i = 0; i < labels.data.size(); ++i) {
    const int64_t label = labels.data[i];
    check_lazy(label < 10, [&] {
      return "load_mnist_like: label " + std::to_string(label) + " at index " + std::to_string(i) +
             " in '" + labels_path + "' is not in [0, 10)";
    });
    split.labels.push_back(label);
  }
  return split;
}

Dataset to_dataset(RawSplit split, std::string name, std::vector<std::string> class_names,
                   float mean, float stddev) {
  Dataset set;
  set.name = std::move(name);
  set.count = split.images.shape[0];
  set.channels = 1;
  set.height = split.images.shape[1];
  set.width = split.images.shape[2];
  set.classes = 10;
  set.pixels = std::move(split.images.data);
  set.labels = std::move(split.labels);
  set.class_names = std::move(class_names);
  set.mean = {mean};
  set.stddev = {stddev};
  return set;
}

}  // namespace

ImageSet load_mnist_like(const std::string& dir, bool train) {
  const RawSplit split = read_split(dir, train);
  ImageSet set;
  set.classes = 10;
  set.labels = split.labels;
  const std::vector<int64_t>& shape = split.images.shape;
  set.images = core::Tensor(core::Shape{shape[0], 1, shape[1], shape[2]});
  float* dst = set.images.data();
  for (size_t i = 0; i < split.images.data.size(); ++i) {
    dst[i] = static_cast<float>(split.images.data[i]) / 255.0f;
  }
  return set;
}

Dataset load_mnist(const std::string& dir, Split split) {
  return to_dataset(read_split(dir, split == Split::kTrain), "mnist",
                    {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, 0.1307f, 0.3081f);
}

Dataset load_fashion_mnist(const std::string& dir, Split split) {
  return to_dataset(read_split(dir, split == Split::kTrain), "fashion-mnist",
                    {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                     "Sneaker", "Bag", "Ankle boot"},
                    0.2860f, 0.3530f);
}

}  // namespace bitgrad::datasets
