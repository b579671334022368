// packed_model.cpp: the .bgpk format (kernels/runtime/packed_model.hpp): PackedResNet::validate,
// its size and MAC counts, and its safetensors image. Loading checks the metadata, rebuilds the
// model's skeleton (the block structure implied by depth, image size and channels, plus the
// per-conv bit widths and flags of the "model" JSON) and checks its structure, then the tensor
// list (missing, unexpected, dtype, shape: all sums over the skeleton's layers, by the same
// functions the writer's layout follows), and only then slices the concatenated tensors in network
// order and validates the whole model: a file either loads into a valid model or throws one line
// naming the file. Not here: running the model (packed_runtime) or building it (quant/export).
#include "kernels/runtime/packed_model.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>
#include <type_traits>
#include <utility>

#include "core/error.hpp"

namespace bitgrad::kernels {

namespace {

constexpr int kStages = 3;
constexpr int64_t kStemPlanes = 16;
constexpr int64_t kHeadInputs = 64;  // planes of the last stage
const std::string kPrefix = "packed model: ";

int64_t stage_planes(int stage) { return kStemPlanes << stage; }

int64_t blocks_per_stage(int depth) { return (depth - 2) / 6; }

std::string block_name(const PackedResNet& m, size_t i) {
  const int64_t n = std::max<int64_t>(1, blocks_per_stage(m.depth));
  return "layer" + std::to_string(static_cast<int64_t>(i) / n + 1) + "." +
         std::to_string(static_cast<int64_t>(i) % n);
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string shape_text(const core::Tensor& t) {
  return t.defined() ? t.shape().to_string() : std::string("an undefined tensor");
}

std::string float_text(float v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 32 characters always suffice for the shortest round-trip form of a float
  return std::string(buf, end);
}

std::string list_text(const std::vector<std::string>& names) {
  constexpr size_t kShown = 8;
  std::string s = "[";
  for (size_t i = 0; i < names.size() && i < kShown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kShown) s += ", ... (" + std::to_string(names.size() - kShown) + " more)";
  return s + "]";
}

int64_t packed_bytes(const PackedConv& c) {
  return (c.spec.weight_elements() * c.weight_bits + 7) / 8;
}

// The sorted distinct weight values of output channels [o, o + n).
std::vector<int8_t> distinct_weights(const PackedConv& c, int64_t o, int64_t n = 1) {
  const int64_t depth = c.spec.depth();
  std::vector<int8_t> v(c.weights.begin() + o * depth, c.weights.begin() + (o + n) * depth);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

// ---- validation ----

void check_size(size_t got, int64_t want, const std::string& what) {
  check_lazy(static_cast<int64_t>(got) == want, [&] {
    return kPrefix + what + ": expected " + std::to_string(want) + " values, got " +
           std::to_string(got);
  });
}

// depth, image and class counts: what the block structure is derived from.
void check_dims(const PackedResNet& m) {
  check_lazy(m.in_channels >= 1 && m.num_classes >= 1 && m.height >= 1 && m.width >= 1, [&] {
    return kPrefix + "expected in_channels, num_classes, height and width >= 1, got " +
           std::to_string(m.in_channels) + ", " + std::to_string(m.num_classes) + ", " +
           std::to_string(m.height) + ", " + std::to_string(m.width);
  });
  check_lazy(m.depth >= 8 && (m.depth - 2) % 6 == 0, [&] {
    return kPrefix + "expected depth 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, ...), got " +
           std::to_string(m.depth);
  });
}

// The blocks of a ResNet-`m.depth` on m's images (check_dims passed) as far as depth, image size
// and channels imply them: downsample flags, conv names and geometry (spec.act_bits and pad_code
// left at their defaults), conv1's threshold channel count. The file does not store any of it.
std::vector<PackedBlock> implied_blocks(const PackedResNet& m) {
  const int64_t n = blocks_per_stage(m.depth);
  std::vector<PackedBlock> blocks(static_cast<size_t>(kStages * n));
  int64_t h = m.height, w = m.width, in = kStemPlanes;
  for (size_t i = 0; i < blocks.size(); ++i) {
    PackedBlock& b = blocks[i];
    const int stage = static_cast<int>(static_cast<int64_t>(i) / n);
    const int64_t planes = stage_planes(stage);
    b.downsample = stage > 0 && static_cast<int64_t>(i) % n == 0;
    ConvSpec s1;
    s1.height = h;
    s1.width = w;
    s1.in_channels = in;
    s1.out_channels = planes;
    s1.kernel = 3;
    s1.stride = b.downsample ? 2 : 1;
    s1.pad = 1;
    ConvSpec s2 = s1;
    s2.height = h = s1.out_height();
    s2.width = w = s1.out_width();
    s2.in_channels = planes;
    s2.stride = 1;
    b.conv1.name = block_name(m, i) + ".conv1";
    b.conv1.spec = s1;
    b.conv1.thresholds.channels = planes;
    b.conv2.name = block_name(m, i) + ".conv2";
    b.conv2.spec = s2;
    in = planes;
  }
  return blocks;
}

// Name, geometry (against the place in the network), spec and bit widths; nothing that reads data.
void check_conv_structure(const PackedConv& c, const PackedConv& implied) {
  const std::string& name = implied.name;
  check_lazy(c.name == name, [&] {
    return kPrefix + "expected a conv named '" + name + "', got '" + c.name + "'";
  });
  const ConvSpec& s = c.spec;
  ConvSpec want = implied.spec;
  want.act_bits = s.act_bits;
  want.pad_code = s.pad_code;
  check_lazy(
      s.batch == want.batch && s.height == want.height && s.width == want.width &&
          s.in_channels == want.in_channels && s.out_channels == want.out_channels &&
          s.kernel == want.kernel && s.stride == want.stride && s.pad == want.pad,
      [&] { return kPrefix + name + ": expected " + want.describe() + ", got " + s.describe(); });
  try {
    s.validate();
  } catch (const Error& e) {
    throw Error(kPrefix + name + ": " + e.what());
  }
  check_lazy(c.weight_bits >= 1 && c.weight_bits <= 8, [&] {
    return kPrefix + name + ": expected weight_bits in 1..8, got " + std::to_string(c.weight_bits);
  });
}

// The block structure of a ResNet-(6n+2): depth, block count, downsampling, conv names and
// geometry, which convs have thresholds. Everything the tensor layout depends on.
void check_structure(const PackedResNet& m) {
  check_dims(m);
  const int64_t n = blocks_per_stage(m.depth);
  check_lazy(static_cast<int64_t>(m.blocks.size()) == kStages * n, [&] {
    return kPrefix + "expected 3 stages of " + std::to_string(n) + " blocks (" +
           std::to_string(kStages * n) + " blocks for depth " + std::to_string(m.depth) +
           "), got " + std::to_string(m.blocks.size()) + " blocks";
  });
  const std::vector<PackedBlock> implied = implied_blocks(m);
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const PackedBlock& b = m.blocks[i];
    const bool down = implied[i].downsample;
    const std::string name = block_name(m, i);
    check_lazy(b.downsample == down, [&] {
      return kPrefix + name + ": expected downsample " + (down ? "true" : "false") +
             (down ? " (first block of a stage that halves the size)" : "") + ", got " +
             (b.downsample ? "true" : "false");
    });
    check_conv_structure(b.conv1, implied[i].conv1);
    check_conv_structure(b.conv2, implied[i].conv2);
    const int64_t planes = implied[i].conv1.spec.out_channels;
    const Thresholds& t = b.conv1.thresholds;
    check_lazy(t.channels == planes && t.out_bits >= 1 && t.out_bits <= 8, [&] {
      return kPrefix + name + ".conv1: expected thresholds for " + std::to_string(planes) +
             " channels with out_bits in 1..8, got " + std::to_string(t.channels) +
             " channels, out_bits " + std::to_string(t.out_bits);
    });
    check_lazy(!b.conv2.has_thresholds(), [&] {
      return kPrefix + name +
             ".conv2: expected no thresholds (conv2 ends in the float tail), got " +
             std::to_string(b.conv2.thresholds.channels) + " channels";
    });
  }
}

// consumer: the conv reading the codes, for the message.
void check_quantizer(const FloatQuantizer& q, const std::string& name, const PackedConv& consumer) {
  check_lazy(!q.levels.empty(),
             [&] { return kPrefix + name + ": expected at least one level, got none"; });
  check_lazy(q.thresholds.size() + 1 == q.levels.size(), [&] {
    return kPrefix + name + ": expected " + std::to_string(q.levels.size() - 1) +
           " thresholds (levels - 1), got " + std::to_string(q.thresholds.size());
  });
  for (size_t k = 0; k < q.thresholds.size(); ++k) {
    check_lazy(!std::isnan(q.thresholds[k]), [&] {
      return kPrefix + name + ": expected thresholds that are not NaN, got NaN at index " +
             std::to_string(k);
    });
    check_lazy(k == 0 || q.thresholds[k - 1] <= q.thresholds[k], [&] {
      return kPrefix + name + ": expected ascending thresholds, got " +
             float_text(q.thresholds[k]) + " after " + float_text(q.thresholds[k - 1]) +
             " at index " + std::to_string(k);
    });
  }
  const int bits = consumer.spec.act_bits;
  for (size_t k = 0; k < q.levels.size(); ++k) {
    check_lazy(k == 0 || q.levels[k - 1] <= q.levels[k], [&] {
      return kPrefix + name + ": expected ascending levels, got " + std::to_string(q.levels[k]) +
             " after " + std::to_string(q.levels[k - 1]) + " at index " + std::to_string(k);
    });
    check_lazy(q.levels[k] < (1 << bits), [&] {
      return kPrefix + name + ": expected levels < 2^" + std::to_string(bits) + " (" +
             consumer.name + " reads " + std::to_string(bits) + "-bit codes), got " +
             std::to_string(q.levels[k]);
    });
  }
}

// next: conv2 of the block (reads conv1's codes); null for conv2.
void check_conv_contents(const PackedConv& c, const PackedConv* next) {
  const std::string& name = c.name;
  const int64_t out = c.spec.out_channels;
  check_lazy(static_cast<int64_t>(c.weights.size()) == c.spec.weight_elements(), [&] {
    return kPrefix + name + ": expected " + std::to_string(c.spec.weight_elements()) +
           " weights (OHWI " + std::to_string(out) + "x" + std::to_string(c.spec.kernel) + "x" +
           std::to_string(c.spec.kernel) + "x" + std::to_string(c.spec.in_channels) + "), got " +
           std::to_string(c.weights.size());
  });
  for (int64_t o = 0; o < out; ++o) {
    const std::vector<int8_t> levels = distinct_weights(c, o);
    check_lazy(static_cast<int64_t>(levels.size()) <= int64_t{1} << c.weight_bits, [&] {
      return kPrefix + name + ": expected at most 2^" + std::to_string(c.weight_bits) +
             " distinct weight values in each output channel (weight_bits indices), channel " +
             std::to_string(o) + " has " + std::to_string(levels.size());
    });
  }
  check_lazy(c.acc_offset.empty() || static_cast<int64_t>(c.acc_offset.size()) == out, [&] {
    return kPrefix + name + ": expected acc_offset empty or of " + std::to_string(out) +
           " values, got " + std::to_string(c.acc_offset.size());
  });
  if (next != nullptr) {
    try {
      c.thresholds.validate();
    } catch (const Error& e) {
      throw Error(kPrefix + name + ": " + e.what());
    }
    const Thresholds& t = c.thresholds;
    for (int64_t ch = 0; ch < t.channels; ++ch) {
      const bool desc = t.descending[static_cast<size_t>(ch)] != 0;
      const int32_t* v = t.values.data() + ch * t.count();
      for (int k = 1; k < t.count(); ++k)
        check_lazy(desc ? v[k] <= v[k - 1] : v[k - 1] <= v[k], [&] {
          return kPrefix + name + ": expected the thresholds of channel " + std::to_string(ch) +
                 " in " + (desc ? "descending" : "ascending") + " order, got " +
                 std::to_string(v[k]) + " after " + std::to_string(v[k - 1]) + " at index " +
                 std::to_string(k);
        });
    }
    check_size(c.out_levels.size(), int64_t{1} << t.out_bits, name + ".out_levels");
    const int bits = next->spec.act_bits;
    for (uint8_t level : c.out_levels)
      check_lazy(level < (1 << bits), [&] {
        return kPrefix + name + ": expected out_levels < 2^" + std::to_string(bits) + " (" +
               next->name + " reads " + std::to_string(bits) + "-bit codes), got " +
               std::to_string(level);
      });
    for (const auto* v : {&c.scale, &c.bias, &c.bn_mean, &c.bn_scale, &c.bn_offset})
      check_lazy(v->empty(), [&] {
        return kPrefix + name + ": expected no float tail (conv1 ends in thresholds), got " +
               std::to_string(v->size()) + " tail values";
      });
  } else {
    check_lazy(c.out_levels.empty(), [&] {
      return kPrefix + name + ": expected no out_levels (conv2 ends in the float tail), got " +
             std::to_string(c.out_levels.size());
    });
    check_size(c.scale.size(), out, name + ".scale");
    check_lazy(c.bias.empty() || static_cast<int64_t>(c.bias.size()) == out, [&] {
      return kPrefix + name + ".bias: expected empty or " + std::to_string(out) + " values, got " +
             std::to_string(c.bias.size());
    });
    check_size(c.bn_mean.size(), out, name + ".bn_mean");
    check_size(c.bn_scale.size(), out, name + ".bn_scale");
    check_size(c.bn_offset.size(), out, name + ".bn_offset");
  }
}

// ---- the file layout ----

// What the file stores beside the implied structure, per conv in network order (layer1.0.conv1,
// layer1.0.conv2, layer1.1.conv1, ...) or per block. The writer derives it from the model
// (layout_of), the reader from the "model" metadata.
struct Layout {
  int threshold_bytes = 4;          // 2 when every threshold of the model fits int16
  std::vector<int64_t> level_rows;  // per conv: 1 (one row for the layer) or O (one per channel)
  std::vector<uint8_t> acc_offset;  // per conv: 1 when its acc_offset is stored
  std::vector<uint8_t> bias;        // per block: 1 when conv2 has a bias
};

template <class Model>  // PackedResNet, const or not
auto convs_of(Model& m) {
  std::vector<decltype(&m.blocks.front().conv1)> convs;
  for (auto& b : m.blocks) {
    convs.push_back(&b.conv1);
    convs.push_back(&b.conv2);
  }
  return convs;
}

// A level-table row: sorted distinct weights padded to 2^weight_bits entries by repeating the
// last. rows = 1: the layer's distinct weights (when there are at most 2^weight_bits of them), so
// channels using fewer values still share the row; rows = O: channel o's own. A weight is stored as
// the index of its first occurrence.
std::vector<int8_t> level_row(const PackedConv& c, int64_t rows, int64_t o) {
  std::vector<int8_t> row =
      rows == 1 ? distinct_weights(c, 0, c.spec.out_channels) : distinct_weights(c, o);
  row.resize(size_t{1} << c.weight_bits, row.back());
  return row;
}

Layout layout_of(const PackedResNet& m) {
  Layout l;
  l.threshold_bytes = 2;
  for (const PackedBlock& b : m.blocks) {
    for (int32_t t : b.conv1.thresholds.values)
      if (t < std::numeric_limits<int16_t>::min() || t > std::numeric_limits<int16_t>::max())
        l.threshold_bytes = 4;
    l.bias.push_back(b.conv2.bias.empty() ? 0 : 1);
  }
  for (const PackedConv* c : convs_of(m)) {
    const int64_t out = c->spec.out_channels;
    const bool shared =
        static_cast<int64_t>(distinct_weights(*c, 0, out).size()) <= int64_t{1} << c->weight_bits;
    l.level_rows.push_back(shared ? 1 : out);
    const bool offset =
        std::any_of(c->acc_offset.begin(), c->acc_offset.end(), [](int32_t v) { return v != 0; });
    l.acc_offset.push_back(offset ? 1 : 0);
  }
  return l;
}

int64_t level_entries(const PackedConv& c, int64_t rows) { return rows << c.weight_bits; }

// The element counts of the concatenated tensors (the sums over the layers in network order).
struct Totals {
  int64_t code_thresholds = 0, code_levels = 0;
  int64_t weight_bytes = 0, level_entries = 0, acc_offset = 0;
  int64_t thresholds = 0, conv1_channels = 0, out_levels = 0;  // conv1s
  int64_t conv2_channels = 0, bias = 0;                        // conv2s
};

Totals totals_of(const PackedResNet& m, const Layout& l) {
  Totals t;
  auto codes = [&](const FloatQuantizer& q) {
    t.code_thresholds += static_cast<int64_t>(q.levels.size()) - 1;
    t.code_levels += static_cast<int64_t>(q.levels.size());
  };
  codes(m.stem_codes);
  for (size_t i = 0; i + 1 < m.blocks.size(); ++i) codes(m.blocks[i].out_codes);
  const auto convs = convs_of(m);
  for (size_t k = 0; k < convs.size(); ++k) {
    const PackedConv& c = *convs[k];
    const int64_t out = c.spec.out_channels;
    t.weight_bytes += packed_bytes(c);
    t.level_entries += level_entries(c, l.level_rows[k]);
    if (l.acc_offset[k]) t.acc_offset += out;
    if (k % 2 == 0) {
      t.thresholds += out * c.thresholds.count();
      t.conv1_channels += out;
      t.out_levels += int64_t{1} << c.thresholds.out_bits;
    } else {
      t.conv2_channels += out;
      if (l.bias[k / 2]) t.bias += out;
    }
  }
  return t;
}

struct Expected {
  std::string name;
  core::DType dtype;
  std::vector<int64_t> shape;
};

// Every tensor of the file of a model with m's structure (check_structure passed) and layout l,
// in file order. Needs only the skeleton: specs, bit widths, level counts.
std::vector<Expected> expected_tensors(const PackedResNet& m, const Layout& l) {
  using core::DType;
  const Totals t = totals_of(m, l);
  std::vector<Expected> e = {
      {"stem.weight", DType::kF32, {kStemPlanes, m.in_channels, 3, 3}},
      {"stem.bn", DType::kF32, {3, kStemPlanes}},
      {"codes.thresholds", DType::kF32, {t.code_thresholds}},
      {"codes.levels", DType::kU8, {t.code_levels}},
      {"trunk.weights", DType::kU8, {t.weight_bytes}},
      {"trunk.weight_levels", DType::kU8, {t.level_entries}},
      l.threshold_bytes == 2 ? Expected{"trunk.thresholds", DType::kU8, {t.thresholds, 2}}
                             : Expected{"trunk.thresholds", DType::kI32, {t.thresholds}},
      {"trunk.descending", DType::kU8, {(t.conv1_channels + 7) / 8}},
      {"trunk.out_levels", DType::kU8, {t.out_levels}},
      {"trunk.tail", DType::kF32, {t.conv2_channels, 4}},
  };
  if (t.bias > 0) e.push_back({"trunk.bias", DType::kF32, {t.bias}});
  if (t.acc_offset > 0) e.push_back({"trunk.acc_offset", DType::kI32, {t.acc_offset}});
  e.push_back({"fc.weight", DType::kF32, {m.num_classes, kHeadInputs}});
  e.push_back({"fc.bias", DType::kF32, {m.num_classes}});
  return e;
}

// Little-endian stores, independent of the host's byte order.
core::StoredTensor f32_tensor(std::vector<int64_t> shape, const std::vector<float>& values) {
  core::StoredTensor t;
  t.dtype = core::DType::kF32;
  t.shape = std::move(shape);
  t.bytes.resize(values.size() * 4);
  for (size_t i = 0; i < values.size(); ++i) {
    const auto bits = std::bit_cast<uint32_t>(values[i]);
    for (size_t b = 0; b < 4; ++b) t.bytes[4 * i + b] = static_cast<uint8_t>(bits >> (8 * b));
  }
  return t;
}

uint32_t u32_at(const core::StoredTensor& t, size_t i) {
  uint32_t v = 0;
  for (size_t b = 4; b-- > 0;) v = (v << 8) | t.bytes[4 * i + b];
  return v;
}

std::vector<float> f32_values(const core::StoredTensor& t) {
  std::vector<float> v(t.bytes.size() / 4);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::bit_cast<float>(u32_at(t, i));
  return v;
}

std::vector<int32_t> i32_values(const core::StoredTensor& t) {
  std::vector<int32_t> v(t.bytes.size() / 4);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int32_t>(u32_at(t, i));
  return v;
}

// trunk.thresholds: I32, or (threshold_bytes 2) little-endian int16 pairs of bytes.
core::StoredTensor thresholds_tensor(const std::vector<int32_t>& values, int bytes) {
  const auto n = static_cast<int64_t>(values.size());
  if (bytes == 4) return core::StoredTensor::from_i32({n}, values);
  std::vector<uint8_t> pairs;
  for (int32_t v : values) {
    const auto u = static_cast<uint16_t>(static_cast<int16_t>(v));
    pairs.push_back(static_cast<uint8_t>(u));
    pairs.push_back(static_cast<uint8_t>(u >> 8));
  }
  return core::StoredTensor::from_u8({n, 2}, pairs);
}

std::vector<int32_t> threshold_values(const core::StoredTensor& t, int bytes) {
  if (bytes == 4) return i32_values(t);
  std::vector<int32_t> v(t.bytes.size() / 2);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<int16_t>(static_cast<uint16_t>(t.bytes[2 * i] | t.bytes[2 * i + 1] << 8));
  return v;
}

// Appends c's level-index bit stream (weight_bits per index, least significant bit first, OHWI
// order, starting on a byte boundary) and its level table (rows 1 or O; int8 bit patterns).
void put_weights(const PackedConv& c, int64_t rows, std::vector<uint8_t>& stream,
                 std::vector<uint8_t>& levels) {
  const int64_t out = c.spec.out_channels, depth = c.spec.depth();
  const size_t start = stream.size();
  stream.resize(start + static_cast<size_t>(packed_bytes(c)), 0);
  int64_t bit = 0;
  std::vector<int8_t> row;
  for (int64_t o = 0; o < out; ++o) {
    if (o < rows) {
      row = level_row(c, rows, o);
      for (int8_t v : row) levels.push_back(static_cast<uint8_t>(v));
    }
    const auto first = c.weights.begin() + o * depth;
    for (int64_t k = 0; k < depth; ++k) {
      const auto u =
          static_cast<uint32_t>(std::lower_bound(row.begin(), row.end(), first[k]) - row.begin());
      for (int j = 0; j < c.weight_bits; ++j, ++bit)
        if ((u >> j) & 1u)
          stream[start + static_cast<size_t>(bit / 8)] |= static_cast<uint8_t>(1u << (bit % 8));
    }
  }
}

// The inverse of put_weights, from c's slices of trunk.weights and trunk.weight_levels. Each
// table row must be canonical (distinct ascending values, unused entries repeating the last), so
// that one model has one file.
std::vector<int8_t> get_weights(const PackedConv& c, int64_t rows, const uint8_t* stream,
                                const uint8_t* levels, const std::string& what) {
  const int64_t out = c.spec.out_channels, depth = c.spec.depth();
  const int64_t entries = int64_t{1} << c.weight_bits;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = levels + r * entries;
    bool repeating = false;
    for (int64_t k = 1; k < entries; ++k) {
      const auto prev = static_cast<int8_t>(row[k - 1]), v = static_cast<int8_t>(row[k]);
      repeating = repeating || v == prev;
      check_lazy(v == prev || (!repeating && v > prev), [&] {
        std::string got = "[";
        for (int64_t i = 0; i < entries; ++i)
          got += (i ? ", " : "") + std::to_string(static_cast<int8_t>(row[i]));
        return what + ": trunk.weight_levels: " + c.name +
               (rows == 1 ? std::string(" (one row for every channel)")
                          : " channel " + std::to_string(r)) +
               ": expected distinct ascending values, unused entries repeating the last, got " +
               got + "]";
      });
    }
  }
  std::vector<int8_t> weights(static_cast<size_t>(c.spec.weight_elements()));
  int64_t bit = 0;
  for (int64_t o = 0; o < out; ++o) {
    const uint8_t* row = levels + (rows == 1 ? 0 : o) * entries;
    for (int64_t k = 0; k < depth; ++k) {
      uint32_t u = 0;
      for (int j = 0; j < c.weight_bits; ++j, ++bit)
        u |= static_cast<uint32_t>((stream[bit / 8] >> (bit % 8)) & 1u) << j;
      weights[static_cast<size_t>(o * depth + k)] = static_cast<int8_t>(row[u]);
    }
  }
  return weights;
}

// ---- the "model" metadata ----

core::Json model_json(const PackedResNet& m, const Layout& l) {
  auto array = [](const auto& values) {
    core::Json a = core::Json::array();
    for (const auto& v : values) a.push_back(v);
    return a;
  };
  core::Json act_bits = core::Json::array(), pad_code = core::Json::array(),
             weight_bits = core::Json::array(), out_bits = core::Json::array(),
             code_levels = core::Json::array();
  for (const PackedConv* c : convs_of(m)) {
    act_bits.push_back(c->spec.act_bits);
    pad_code.push_back(c->spec.pad_code);
    weight_bits.push_back(c->weight_bits);
  }
  code_levels.push_back(m.stem_codes.levels.size());
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    out_bits.push_back(m.blocks[i].conv1.thresholds.out_bits);
    if (i + 1 < m.blocks.size()) code_levels.push_back(m.blocks[i].out_codes.levels.size());
  }
  core::Json j = core::Json::object();
  j.set("depth", m.depth)
      .set("in_channels", m.in_channels)
      .set("num_classes", m.num_classes)
      .set("height", m.height)
      .set("width", m.width)
      .set("act_bits", std::move(act_bits))
      .set("pad_code", std::move(pad_code))
      .set("weight_bits", std::move(weight_bits))
      .set("level_rows", array(l.level_rows))
      .set("acc_offset", array(l.acc_offset))
      .set("out_bits", std::move(out_bits))
      .set("bias", array(l.bias))
      .set("code_levels", std::move(code_levels))
      .set("threshold_bytes", l.threshold_bytes)
      .set("source", m.source);
  return j;
}

const core::Json& member(const core::Json& obj, const std::string& key, const std::string& where) {
  check_lazy(obj.is_object(), [&] {
    return where + ": expected an object, got " + std::string(core::Json::type_name(obj.type()));
  });
  const core::Json* v = obj.find(key);
  check_lazy(v != nullptr, [&] { return where + ": missing '" + key + "'"; });
  return *v;
}

std::string range_text(int64_t lo, int64_t hi) {
  return "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
}

int64_t int_member(const core::Json& obj, const std::string& key, const std::string& where,
                   int64_t lo, int64_t hi) {
  const core::Json& v = member(obj, key, where);
  check_lazy(v.is_integer() && v.as_int64() >= lo && v.as_int64() <= hi, [&] {
    return where + "." + key + ": expected " + range_text(lo, hi) + ", got " + v.dump();
  });
  return v.as_int64();
}

std::vector<int64_t> int_array(const core::Json& obj, const std::string& key,
                               const std::string& where, size_t size, const std::string& per,
                               int64_t lo, int64_t hi) {
  const core::Json& v = member(obj, key, where);
  check_lazy(v.is_array() && v.size() == size, [&] {
    return where + "." + key + ": expected an array of " + std::to_string(size) + " integers (" +
           per + "), got " + (v.is_array() ? std::to_string(v.size()) + " values" : v.dump());
  });
  std::vector<int64_t> out;
  for (size_t i = 0; i < size; ++i) {
    const core::Json& x = v.at(i);
    check_lazy(x.is_integer() && x.as_int64() >= lo && x.as_int64() <= hi, [&] {
      return where + "." + key + "[" + std::to_string(i) + "]: expected " + range_text(lo, hi) +
             ", got " + x.dump();
    });
    out.push_back(x.as_int64());
  }
  return out;
}

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();

// The model without its tensor data (level vectors sized, zero-filled) and its file layout.
std::pair<PackedResNet, Layout> skeleton_from_json(const core::Json& j) {
  const std::string where = "metadata 'model'";
  PackedResNet m;
  Layout l;
  m.depth = static_cast<int>(int_member(j, "depth", where, 8, 1 << 20));
  check_lazy((m.depth - 2) % 6 == 0, [&] {
    return where + ".depth: expected 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, ...), got " +
           std::to_string(m.depth);
  });
  m.in_channels = int_member(j, "in_channels", where, 1, kIntMax);
  m.num_classes = int_member(j, "num_classes", where, 1, kIntMax);
  m.height = int_member(j, "height", where, 1, kIntMax);
  m.width = int_member(j, "width", where, 1, kIntMax);
  m.source = member(j, "source", where);
  const auto blocks = static_cast<size_t>(kStages * blocks_per_stage(m.depth));
  const size_t convs = 2 * blocks;
  const std::string per_conv = "one per conv", per_block = "one per block";
  const auto act_bits = int_array(j, "act_bits", where, convs, per_conv, 1, 8);
  const auto pad_code = int_array(j, "pad_code", where, convs, per_conv, 0, 255);
  const auto weight_bits = int_array(j, "weight_bits", where, convs, per_conv, 1, 8);
  l.level_rows = int_array(j, "level_rows", where, convs, per_conv, 1, kIntMax);
  for (int64_t v : int_array(j, "acc_offset", where, convs, per_conv, 0, 1))
    l.acc_offset.push_back(static_cast<uint8_t>(v));
  const auto out_bits = int_array(j, "out_bits", where, blocks, per_block, 1, 8);
  for (int64_t v : int_array(j, "bias", where, blocks, per_block, 0, 1))
    l.bias.push_back(static_cast<uint8_t>(v));
  const auto code_levels =
      int_array(j, "code_levels", where, blocks, "stem, then every block but the last", 1, 256);
  l.threshold_bytes = static_cast<int>(int_member(j, "threshold_bytes", where, 2, 4));
  check_lazy(l.threshold_bytes != 3,
             [&] { return where + ".threshold_bytes: expected 2 or 4, got 3"; });

  m.blocks = implied_blocks(m);
  m.stem_codes.levels.resize(static_cast<size_t>(code_levels[0]));
  for (size_t i = 0; i + 1 < blocks; ++i)
    m.blocks[i].out_codes.levels.resize(static_cast<size_t>(code_levels[i + 1]));
  const auto all = convs_of(m);
  for (size_t k = 0; k < convs; ++k) {
    PackedConv& c = *all[k];
    c.spec.act_bits = static_cast<int>(act_bits[k]);
    c.spec.pad_code = static_cast<uint8_t>(pad_code[k]);
    c.weight_bits = static_cast<int>(weight_bits[k]);
    if (k % 2 == 0) c.thresholds.out_bits = static_cast<int>(out_bits[k / 2]);
    const int64_t out = c.spec.out_channels;
    check_lazy(l.level_rows[k] == 1 || l.level_rows[k] == out, [&] {
      return where + ".level_rows[" + std::to_string(k) + "]: expected 1 or " +
             std::to_string(out) + " (the output channels of " + c.name + "), got " +
             std::to_string(l.level_rows[k]);
    });
  }
  return {std::move(m), std::move(l)};
}

// Rethrows a validation error (which starts with "packed model: ") as one about the file.
[[noreturn]] void rethrow_for(const std::string& what, const Error& e) {
  std::string message = e.what();
  if (message.starts_with(kPrefix)) message.erase(0, kPrefix.size());
  throw Error(what + ": " + message);
}

}  // namespace

uint8_t FloatQuantizer::code(float x) const {
  // Thresholds are ascending, so the passed ones (t <= x) form a prefix; NaN passes none.
  const auto passed =
      std::partition_point(thresholds.begin(), thresholds.end(), [x](float t) { return t <= x; });
  return levels[static_cast<size_t>(passed - thresholds.begin())];
}

void PackedResNet::validate() const {
  check_structure(*this);
  check_lazy(
      stem_weight.defined() && stem_weight.shape() == core::Shape{kStemPlanes, in_channels, 3, 3},
      [&] {
        return kPrefix + "stem.weight: expected " + dims_text({kStemPlanes, in_channels, 3, 3}) +
               ", got " + shape_text(stem_weight);
      });
  check_size(stem_bn_mean.size(), kStemPlanes, "stem.bn_mean");
  check_size(stem_bn_scale.size(), kStemPlanes, "stem.bn_scale");
  check_size(stem_bn_offset.size(), kStemPlanes, "stem.bn_offset");
  check_quantizer(stem_codes, "stem.codes", blocks.front().conv1);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const PackedBlock& b = blocks[i];
    check_conv_contents(b.conv1, &b.conv2);
    check_conv_contents(b.conv2, nullptr);
    const std::string name = block_name(*this, i) + ".out";
    if (i + 1 < blocks.size()) {
      check_quantizer(b.out_codes, name, blocks[i + 1].conv1);
    } else {
      check_lazy(b.out_codes.levels.empty() && b.out_codes.thresholds.empty(), [&] {
        return kPrefix + name + ": expected no output codes for the last block (the head reads " +
               "floats), got " + std::to_string(b.out_codes.levels.size()) + " levels";
      });
    }
  }
  check_lazy(fc_weight.defined() && fc_weight.shape() == core::Shape{num_classes, kHeadInputs},
             [&] {
               return kPrefix + "fc.weight: expected " + dims_text({num_classes, kHeadInputs}) +
                      ", got " + shape_text(fc_weight);
             });
  check_size(fc_bias.size(), num_classes, "fc.bias");
}

int64_t PackedResNet::packed_weight_bytes() const {
  int64_t bytes = 0;
  for (const PackedBlock& b : blocks) bytes += packed_bytes(b.conv1) + packed_bytes(b.conv2);
  return bytes;
}

int64_t PackedResNet::macs_per_image() const {
  int64_t macs = height * width * kStemPlanes * in_channels * 9;  // 3x3, stride 1, pad 1
  for (const PackedBlock& b : blocks) macs += b.conv1.spec.macs() + b.conv2.spec.macs();
  return macs + kHeadInputs * num_classes;
}

core::SafetensorsFile to_safetensors(const PackedResNet& model, const std::string& source_note) {
  model.validate();
  const Layout layout = layout_of(model);
  core::SafetensorsFile f;
  f.metadata["format"] = kPackedFormat;
  f.metadata["format_version"] = std::to_string(kPackedFormatVersion);
  f.metadata["model"] = model_json(model, layout).dump();
  f.metadata["source"] = source_note;
  auto append = [](auto& to, const auto& from) { to.insert(to.end(), from.begin(), from.end()); };

  std::vector<float> stem_bn, code_thresholds;
  std::vector<uint8_t> code_levels;
  append(stem_bn, model.stem_bn_mean);
  append(stem_bn, model.stem_bn_scale);
  append(stem_bn, model.stem_bn_offset);
  append(code_thresholds, model.stem_codes.thresholds);
  append(code_levels, model.stem_codes.levels);
  for (size_t i = 0; i + 1 < model.blocks.size(); ++i) {
    append(code_thresholds, model.blocks[i].out_codes.thresholds);
    append(code_levels, model.blocks[i].out_codes.levels);
  }

  std::vector<uint8_t> weights, levels, descending, out_levels;  // descending: a bit per channel
  std::vector<int32_t> thresholds, acc_offset;
  std::vector<float> tail, bias;
  size_t flags = 0;
  const auto convs = convs_of(model);
  for (size_t k = 0; k < convs.size(); ++k) {
    const PackedConv& c = *convs[k];
    put_weights(c, layout.level_rows[k], weights, levels);
    if (layout.acc_offset[k]) append(acc_offset, c.acc_offset);
    if (k % 2 == 0) {
      append(thresholds, c.thresholds.values);
      for (uint8_t flag : c.thresholds.descending) {
        if (flags % 8 == 0) descending.push_back(0);
        descending.back() |= static_cast<uint8_t>(flag << (flags++ % 8));
      }
      append(out_levels, c.out_levels);
    } else {
      for (size_t o = 0; o < c.scale.size(); ++o)
        for (const auto* v : {&c.scale, &c.bn_mean, &c.bn_scale, &c.bn_offset})
          tail.push_back((*v)[o]);
      append(bias, c.bias);
    }
  }

  const Totals t = totals_of(model, layout);
  assert(static_cast<int64_t>(weights.size()) == t.weight_bytes &&
         static_cast<int64_t>(levels.size()) == t.level_entries &&
         static_cast<int64_t>(tail.size()) == 4 * t.conv2_channels);
  f.tensors["stem.weight"] = core::StoredTensor::from_tensor(model.stem_weight);
  f.tensors["stem.bn"] = f32_tensor({3, kStemPlanes}, stem_bn);
  f.tensors["codes.thresholds"] = f32_tensor({t.code_thresholds}, code_thresholds);
  f.tensors["codes.levels"] = core::StoredTensor::from_u8({t.code_levels}, code_levels);
  f.tensors["trunk.weights"] = core::StoredTensor::from_u8({t.weight_bytes}, weights);
  f.tensors["trunk.weight_levels"] = core::StoredTensor::from_u8({t.level_entries}, levels);
  f.tensors["trunk.thresholds"] = thresholds_tensor(thresholds, layout.threshold_bytes);
  f.tensors["trunk.descending"] =
      core::StoredTensor::from_u8({static_cast<int64_t>(descending.size())}, descending);
  f.tensors["trunk.out_levels"] = core::StoredTensor::from_u8({t.out_levels}, out_levels);
  f.tensors["trunk.tail"] = f32_tensor({t.conv2_channels, 4}, tail);
  if (!bias.empty()) f.tensors["trunk.bias"] = f32_tensor({t.bias}, bias);
  if (!acc_offset.empty())
    f.tensors["trunk.acc_offset"] = core::StoredTensor::from_i32({t.acc_offset}, acc_offset);
  f.tensors["fc.weight"] = core::StoredTensor::from_tensor(model.fc_weight);
  f.tensors["fc.bias"] = f32_tensor({model.num_classes}, model.fc_bias);
  return f;
}

void save_packed(const std::string& path, const PackedResNet& model,
                 const std::string& source_note) {
  core::write_safetensors(path, to_safetensors(model, source_note));
}

PackedResNet from_safetensors(const core::SafetensorsFile& file, const std::string& origin) {
  const std::string what = "packed model '" + origin + "'";
  const auto meta = [&](const std::string& key) -> const std::string* {
    const auto it = file.metadata.find(key);
    return it == file.metadata.end() ? nullptr : &it->second;
  };
  const std::string* format = meta("format");
  check_lazy(format != nullptr && *format == kPackedFormat, [&] {
    return what + ": expected format '" + std::string(kPackedFormat) + "', got " +
           (format ? "'" + *format + "'"
                   : std::string("no 'format' metadata (not a packed model?)"));
  });
  const std::string* version = meta("format_version");
  check_lazy(version != nullptr, [&] { return what + ": no 'format_version' metadata"; });
  check_lazy(*version == std::to_string(kPackedFormatVersion), [&] {
    return what + ": format_version " + *version + " is not supported (this build reads version " +
           std::to_string(kPackedFormatVersion) + ")";
  });
  const std::string* model_text = meta("model");
  check_lazy(model_text != nullptr, [&] { return what + ": no 'model' metadata"; });

  PackedResNet m;
  Layout layout;
  try {
    std::tie(m, layout) = skeleton_from_json(core::Json::parse(*model_text));
  } catch (const Error& e) {
    throw Error(what + ": " +
                (std::string(e.what()).starts_with("metadata") ? "" : "metadata 'model': ") +
                e.what());
  }
  try {
    check_structure(m);
  } catch (const Error& e) {
    rethrow_for(what, e);
  }

  const std::vector<Expected> expected = expected_tensors(m, layout);
  std::set<std::string> names;
  std::vector<std::string> missing, unexpected;
  for (const Expected& e : expected) {
    names.insert(e.name);
    if (!file.contains(e.name)) missing.push_back(e.name);
  }
  check_lazy(missing.empty(), [&] {
    return what + ": " + std::to_string(missing.size()) + " missing tensor" +
           (missing.size() == 1 ? "" : "s") + ": " + list_text(missing);
  });
  for (const auto& [name, stored] : file.tensors)
    if (names.count(name) == 0) unexpected.push_back(name);
  check_lazy(unexpected.empty(), [&] {
    return what + ": " + std::to_string(unexpected.size()) + " unexpected tensor" +
           (unexpected.size() == 1 ? "" : "s") + " for a depth-" + std::to_string(m.depth) +
           " packed ResNet with this 'model' metadata: " + list_text(unexpected);
  });
  for (const Expected& e : expected) {
    const core::StoredTensor& t = file.tensors.at(e.name);
    check_lazy(t.dtype == e.dtype && t.shape == e.shape, [&] {
      return what + ": " + e.name + ": expected " + std::string(core::dtype_name(e.dtype)) + " " +
             dims_text(e.shape) + ", file has " + std::string(core::dtype_name(t.dtype)) + " " +
             dims_text(t.shape);
    });
  }
  const auto tensor = [&](const std::string& name) -> const core::StoredTensor& {
    return file.tensors.at(name);
  };
  // Every slice below lies inside its tensor: the shapes were just checked against the same sums.
  const auto take = [](const auto& from, size_t& at, int64_t n) {
    const auto first = from.begin() + static_cast<std::ptrdiff_t>(at);
    at += static_cast<size_t>(n);
    return std::vector<typename std::decay_t<decltype(from)>::value_type>(
        first, first + static_cast<std::ptrdiff_t>(n));
  };

  m.stem_weight = tensor("stem.weight").to_tensor();
  const std::vector<float> stem_bn = f32_values(tensor("stem.bn"));
  size_t at = 0;
  m.stem_bn_mean = take(stem_bn, at, kStemPlanes);
  m.stem_bn_scale = take(stem_bn, at, kStemPlanes);
  m.stem_bn_offset = take(stem_bn, at, kStemPlanes);
  const std::vector<float> code_thresholds = f32_values(tensor("codes.thresholds"));
  const std::vector<uint8_t>& code_levels = tensor("codes.levels").bytes;
  size_t at_t = 0, at_l = 0;
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    FloatQuantizer& q = i == 0 ? m.stem_codes : m.blocks[i - 1].out_codes;
    const auto n = static_cast<int64_t>(q.levels.size());
    q.thresholds = take(code_thresholds, at_t, n - 1);
    q.levels = take(code_levels, at_l, n);
  }

  const std::vector<uint8_t>& weights = tensor("trunk.weights").bytes;
  const std::vector<uint8_t>& levels = tensor("trunk.weight_levels").bytes;
  const std::vector<int32_t> thresholds =
      threshold_values(tensor("trunk.thresholds"), layout.threshold_bytes);
  const std::vector<uint8_t>& descending = tensor("trunk.descending").bytes;
  const std::vector<uint8_t>& out_levels = tensor("trunk.out_levels").bytes;
  const std::vector<float> tail = f32_values(tensor("trunk.tail"));
  const std::vector<float> bias =
      file.contains("trunk.bias") ? f32_values(tensor("trunk.bias")) : std::vector<float>();
  const std::vector<int32_t> acc_offset = file.contains("trunk.acc_offset")
                                              ? i32_values(tensor("trunk.acc_offset"))
                                              : std::vector<int32_t>();
  size_t at_w = 0, at_lv = 0, at_th = 0, at_d = 0, at_o = 0, at_tail = 0, at_b = 0, at_a = 0;
  const auto convs = convs_of(m);
  for (size_t k = 0; k < convs.size(); ++k) {
    PackedConv& c = *convs[k];
    const int64_t out = c.spec.out_channels, rows = layout.level_rows[k];
    c.weights = get_weights(c, rows, weights.data() + at_w, levels.data() + at_lv, what);
    at_w += static_cast<size_t>(packed_bytes(c));
    at_lv += static_cast<size_t>(level_entries(c, rows));
    if (layout.acc_offset[k]) c.acc_offset = take(acc_offset, at_a, out);
    if (k % 2 == 0) {
      c.thresholds.values = take(thresholds, at_th, out * c.thresholds.count());
      for (int64_t o = 0; o < out; ++o, ++at_d)
        c.thresholds.descending.push_back(
            static_cast<uint8_t>((descending[at_d / 8] >> (at_d % 8)) & 1));
      c.out_levels = take(out_levels, at_o, int64_t{1} << c.thresholds.out_bits);
    } else {
      for (auto* v : {&c.scale, &c.bn_mean, &c.bn_scale, &c.bn_offset})
        v->resize(static_cast<size_t>(out));
      for (size_t o = 0; o < static_cast<size_t>(out); ++o)
        for (auto* v : {&c.scale, &c.bn_mean, &c.bn_scale, &c.bn_offset}) (*v)[o] = tail[at_tail++];
      if (layout.bias[k / 2]) c.bias = take(bias, at_b, out);
    }
  }
  assert(at_w == weights.size() && at_lv == levels.size() && at_th == thresholds.size() &&
         at_tail == tail.size() && at_b == bias.size() && at_a == acc_offset.size());
  m.fc_weight = tensor("fc.weight").to_tensor();
  m.fc_bias = f32_values(tensor("fc.bias"));
  try {
    m.validate();
  } catch (const Error& e) {
    rethrow_for(what, e);
  }
  return m;
}

PackedResNet load_packed(const std::string& path) {
  // read_safetensors names the file in its own errors (missing, unreadable, truncated, malformed).
  return from_safetensors(core::read_safetensors(path), path);
}

}  // namespace bitgrad::kernels
