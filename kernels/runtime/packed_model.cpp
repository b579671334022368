// packed_model.cpp: the .bgpk format (kernels/runtime/packed_model.hpp): PackedResNet::validate,
// its size and MAC counts, and its safetensors image. Loading checks the metadata, rebuilds the
// model's skeleton from the "model" JSON and checks its structure, then the tensor list (missing,
// unexpected, dtype, shape, all derived from the skeleton by the same function the writer's layout
// follows), and only then decodes and validates the whole model: a file either loads into a valid
// model or throws one line naming the file. Not here: running the model (packed_runtime) or
// building it (quant/export).
#include "kernels/runtime/packed_model.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
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

// ---- validation ----

void check_size(size_t got, int64_t want, const std::string& what) {
  check_lazy(static_cast<int64_t>(got) == want, [&] {
    return kPrefix + what + ": expected " + std::to_string(want) + " values, got " +
           std::to_string(got);
  });
}

// Name, geometry (against the place in the network), spec and bit widths; nothing that reads data.
void check_conv_structure(const PackedConv& c, const std::string& name, const ConvSpec& want) {
  check_lazy(c.name == name, [&] {
    return kPrefix + "expected a conv named '" + name + "', got '" + c.name + "'";
  });
  const ConvSpec& s = c.spec;
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
  check_lazy(m.in_channels >= 1 && m.num_classes >= 1 && m.height >= 1 && m.width >= 1, [&] {
    return kPrefix + "expected in_channels, num_classes, height and width >= 1, got " +
           std::to_string(m.in_channels) + ", " + std::to_string(m.num_classes) + ", " +
           std::to_string(m.height) + ", " + std::to_string(m.width);
  });
  check_lazy(m.depth >= 8 && (m.depth - 2) % 6 == 0, [&] {
    return kPrefix + "expected depth 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, ...), got " +
           std::to_string(m.depth);
  });
  const int64_t n = blocks_per_stage(m.depth);
  check_lazy(static_cast<int64_t>(m.blocks.size()) == kStages * n, [&] {
    return kPrefix + "expected 3 stages of " + std::to_string(n) + " blocks (" +
           std::to_string(kStages * n) + " blocks for depth " + std::to_string(m.depth) +
           "), got " + std::to_string(m.blocks.size()) + " blocks";
  });
  int64_t h = m.height, w = m.width, in = kStemPlanes;
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const PackedBlock& b = m.blocks[i];
    const int stage = static_cast<int>(static_cast<int64_t>(i) / n);
    const bool down = stage > 0 && static_cast<int64_t>(i) % n == 0;
    const int64_t planes = stage_planes(stage);
    const std::string name = block_name(m, i);
    check_lazy(b.downsample == down, [&] {
      return kPrefix + name + ": expected downsample " + (down ? "true" : "false") +
             (down ? " (first block of a stage that halves the size)" : "") + ", got " +
             (b.downsample ? "true" : "false");
    });
    ConvSpec want1;
    want1.height = h;
    want1.width = w;
    want1.in_channels = in;
    want1.out_channels = planes;
    want1.kernel = 3;
    want1.stride = down ? 2 : 1;
    want1.pad = 1;
    want1.act_bits = b.conv1.spec.act_bits;
    want1.pad_code = b.conv1.spec.pad_code;
    check_conv_structure(b.conv1, name + ".conv1", want1);
    h = want1.out_height();
    w = want1.out_width();
    ConvSpec want2 = want1;
    want2.height = h;
    want2.width = w;
    want2.in_channels = planes;
    want2.stride = 1;
    want2.act_bits = b.conv2.spec.act_bits;
    want2.pad_code = b.conv2.spec.pad_code;
    check_conv_structure(b.conv2, name + ".conv2", want2);
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
    in = planes;
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
  const int64_t depth = c.spec.depth();
  check_lazy(static_cast<int64_t>(c.weights.size()) == c.spec.weight_elements(), [&] {
    return kPrefix + name + ": expected " + std::to_string(c.spec.weight_elements()) +
           " weights (OHWI " + std::to_string(out) + "x" + std::to_string(c.spec.kernel) + "x" +
           std::to_string(c.spec.kernel) + "x" + std::to_string(c.spec.in_channels) + "), got " +
           std::to_string(c.weights.size());
  });
  for (int64_t o = 0; o < out; ++o) {
    const auto first = c.weights.begin() + o * depth;
    const auto [lo, hi] = std::minmax_element(first, first + depth);
    check_lazy(*hi - *lo < (1 << c.weight_bits), [&] {
      return kPrefix + name +
             ": expected the weights of each output channel to span fewer than 2^" +
             std::to_string(c.weight_bits) + " values, channel " + std::to_string(o) + " spans [" +
             std::to_string(*lo) + ", " + std::to_string(*hi) + "]";
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

// ---- the tensor layout ----

struct Expected {
  std::string name;
  core::DType dtype;
  std::vector<int64_t> shape;
  bool optional = false;
};

// Every tensor of the file of a model with m's structure (check_structure passed), in file order
// (the writer fills them in this order too). Needs only the skeleton: specs, bit widths, level
// counts.
std::vector<Expected> expected_tensors(const PackedResNet& m) {
  using core::DType;
  std::vector<Expected> e;
  auto add = [&](std::string name, DType dtype, std::vector<int64_t> shape, bool optional = false) {
    e.push_back({std::move(name), dtype, std::move(shape), optional});
  };
  auto add_codes = [&](const std::string& name, const FloatQuantizer& q) {
    const auto levels = static_cast<int64_t>(q.levels.size());
    add(name + ".thresholds", DType::kF32, {levels - 1});
    add(name + ".levels", DType::kU8, {levels});
  };
  add("stem.weight", DType::kF32, {kStemPlanes, m.in_channels, 3, 3});
  for (const char* v : {"stem.bn_mean", "stem.bn_scale", "stem.bn_offset"})
    add(v, DType::kF32, {kStemPlanes});
  add_codes("stem.codes", m.stem_codes);
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const PackedBlock& b = m.blocks[i];
    for (const PackedConv* c : {&b.conv1, &b.conv2}) {
      const int64_t out = c->spec.out_channels;
      add(c->name + ".weight", DType::kU8, {packed_bytes(*c)});
      add(c->name + ".weight_offset", DType::kI32, {out});
      add(c->name + ".acc_offset", DType::kI32, {out}, true);
      if (c == &b.conv1) {
        add(c->name + ".thresholds", DType::kI32, {out, c->thresholds.count()});
        add(c->name + ".descending", DType::kU8, {out});
        add(c->name + ".out_levels", DType::kU8, {int64_t{1} << c->thresholds.out_bits});
      } else {
        add(c->name + ".scale", DType::kF32, {out});
        add(c->name + ".bias", DType::kF32, {out}, true);
        for (const char* v : {".bn_mean", ".bn_scale", ".bn_offset"})
          add(c->name + v, DType::kF32, {out});
      }
    }
    if (i + 1 < m.blocks.size()) add_codes(block_name(m, i) + ".out", b.out_codes);
  }
  add("fc.weight", DType::kF32, {m.num_classes, kHeadInputs});
  add("fc.bias", DType::kF32, {m.num_classes});
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

// Unsigned codes u = w - min(channel), weight_bits each, a least-significant-bit-first bit stream.
void put_weights(core::SafetensorsFile& f, const PackedConv& c) {
  const int64_t out = c.spec.out_channels, depth = c.spec.depth();
  std::vector<int32_t> offset(static_cast<size_t>(out));
  std::vector<uint8_t> bytes(static_cast<size_t>(packed_bytes(c)), 0);
  int64_t bit = 0;
  for (int64_t o = 0; o < out; ++o) {
    const auto first = c.weights.begin() + o * depth;
    offset[static_cast<size_t>(o)] = *std::min_element(first, first + depth);
    for (int64_t k = 0; k < depth; ++k) {
      const auto u = static_cast<uint32_t>(first[k] - offset[static_cast<size_t>(o)]);
      for (int j = 0; j < c.weight_bits; ++j, ++bit)
        if ((u >> j) & 1u)
          bytes[static_cast<size_t>(bit / 8)] |= static_cast<uint8_t>(1u << (bit % 8));
    }
  }
  f.tensors[c.name + ".weight"] = core::StoredTensor::from_u8({packed_bytes(c)}, bytes);
  f.tensors[c.name + ".weight_offset"] = core::StoredTensor::from_i32({out}, offset);
}

std::vector<int8_t> get_weights(const core::SafetensorsFile& f, const PackedConv& c,
                                const std::string& what) {
  const int64_t out = c.spec.out_channels, depth = c.spec.depth();
  const std::vector<uint8_t>& bytes = f.tensors.at(c.name + ".weight").bytes;
  const std::vector<int32_t> offset = i32_values(f.tensors.at(c.name + ".weight_offset"));
  std::vector<int8_t> weights(static_cast<size_t>(c.spec.weight_elements()));
  int64_t bit = 0;
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < depth; ++k) {
      uint32_t u = 0;
      for (int j = 0; j < c.weight_bits; ++j, ++bit)
        u |= static_cast<uint32_t>((bytes[static_cast<size_t>(bit / 8)] >> (bit % 8)) & 1u) << j;
      const int64_t value = int64_t{u} + offset[static_cast<size_t>(o)];
      check_lazy(value >= -128 && value <= 127, [&] {
        return what + ": " + c.name + ".weight: channel " + std::to_string(o) +
               " decodes to code " + std::to_string(u) + " + weight_offset " +
               std::to_string(offset[static_cast<size_t>(o)]) + " = " + std::to_string(value) +
               ", outside [-128, 127]";
      });
      weights[static_cast<size_t>(o * depth + k)] = static_cast<int8_t>(value);
    }
  }
  return weights;
}

// ---- the "model" metadata ----

core::Json conv_json(const PackedConv& c) {
  core::Json j = core::Json::object();
  j.set("name", c.name)
      .set("height", c.spec.height)
      .set("width", c.spec.width)
      .set("in_channels", c.spec.in_channels)
      .set("out_channels", c.spec.out_channels)
      .set("kernel", c.spec.kernel)
      .set("stride", c.spec.stride)
      .set("pad", c.spec.pad)
      .set("act_bits", c.spec.act_bits)
      .set("pad_code", c.spec.pad_code)
      .set("weight_bits", c.weight_bits);
  if (c.has_thresholds()) j.set("out_bits", c.thresholds.out_bits);
  return j;
}

core::Json model_json(const PackedResNet& m) {
  core::Json blocks = core::Json::array();
  for (const PackedBlock& b : m.blocks)
    blocks.push_back(core::Json::object()
                         .set("downsample", b.downsample)
                         .set("out_levels", b.out_codes.levels.size())
                         .set("conv1", conv_json(b.conv1))
                         .set("conv2", conv_json(b.conv2)));
  core::Json j = core::Json::object();
  j.set("depth", m.depth)
      .set("in_channels", m.in_channels)
      .set("num_classes", m.num_classes)
      .set("height", m.height)
      .set("width", m.width)
      .set("source", m.source)
      .set("stem_levels", m.stem_codes.levels.size())
      .set("blocks", std::move(blocks));
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

int64_t int_member(const core::Json& obj, const std::string& key, const std::string& where,
                   int64_t lo = std::numeric_limits<int64_t>::min(),
                   int64_t hi = std::numeric_limits<int64_t>::max()) {
  const core::Json& v = member(obj, key, where);
  check_lazy(v.is_integer() && v.as_int64() >= lo && v.as_int64() <= hi, [&] {
    std::string range = lo == std::numeric_limits<int64_t>::min()
                            ? "an integer"
                            : "an integer in " + std::to_string(lo) + ".." + std::to_string(hi);
    return where + "." + key + ": expected " + range + ", got " + v.dump();
  });
  return v.as_int64();
}

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();

PackedConv conv_from_json(const core::Json& j, const std::string& where, bool has_thresholds) {
  PackedConv c;
  const core::Json& name = member(j, "name", where);
  check_lazy(name.is_string(),
             [&] { return where + ".name: expected a string, got " + name.dump(); });
  c.name = name.as_string();
  c.spec.batch = 1;
  c.spec.height = int_member(j, "height", where, 1, kIntMax);
  c.spec.width = int_member(j, "width", where, 1, kIntMax);
  c.spec.in_channels = int_member(j, "in_channels", where, 1, kIntMax);
  c.spec.out_channels = int_member(j, "out_channels", where, 1, kIntMax);
  c.spec.kernel = int_member(j, "kernel", where, 1, kIntMax);
  c.spec.stride = int_member(j, "stride", where, 1, kIntMax);
  c.spec.pad = int_member(j, "pad", where, 0, kIntMax);
  c.spec.act_bits = static_cast<int>(int_member(j, "act_bits", where, 1, 8));
  c.spec.pad_code = static_cast<uint8_t>(int_member(j, "pad_code", where, 0, 255));
  c.weight_bits = static_cast<int>(int_member(j, "weight_bits", where, 1, 8));
  if (has_thresholds) {
    c.thresholds.channels = c.spec.out_channels;
    c.thresholds.out_bits = static_cast<int>(int_member(j, "out_bits", where, 1, 8));
  } else {
    check_lazy(!j.contains("out_bits"),
               [&] { return where + ": unexpected 'out_bits' (conv2 has no thresholds)"; });
  }
  return c;
}

// The model without its tensor data (level vectors sized, zero-filled).
PackedResNet skeleton_from_json(const core::Json& j) {
  const std::string where = "metadata 'model'";
  PackedResNet m;
  m.depth = static_cast<int>(int_member(j, "depth", where, 1, 1 << 20));
  m.in_channels = int_member(j, "in_channels", where, 1, kIntMax);
  m.num_classes = int_member(j, "num_classes", where, 1, kIntMax);
  m.height = int_member(j, "height", where, 1, kIntMax);
  m.width = int_member(j, "width", where, 1, kIntMax);
  m.source = member(j, "source", where);
  m.stem_codes.levels.resize(static_cast<size_t>(int_member(j, "stem_levels", where, 1, 256)));
  const core::Json& blocks = member(j, "blocks", where);
  check_lazy(blocks.is_array(),
             [&] { return where + ".blocks: expected an array, got " + blocks.dump(); });
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string at = where + ".blocks[" + std::to_string(i) + "]";
    const core::Json& b = blocks.at(i);
    PackedBlock block;
    const core::Json& down = member(b, "downsample", at);
    check_lazy(down.is_bool(),
               [&] { return at + ".downsample: expected true or false, got " + down.dump(); });
    block.downsample = down.as_bool();
    const bool last = i + 1 == blocks.size();
    const int64_t levels = int_member(b, "out_levels", at, last ? 0 : 1, last ? 0 : 256);
    block.out_codes.levels.resize(static_cast<size_t>(levels));
    block.conv1 = conv_from_json(member(b, "conv1", at), at + ".conv1", true);
    block.conv2 = conv_from_json(member(b, "conv2", at), at + ".conv2", false);
    m.blocks.push_back(std::move(block));
  }
  return m;
}

FloatQuantizer get_codes(const core::SafetensorsFile& f, const std::string& name) {
  FloatQuantizer q;
  q.thresholds = f32_values(f.tensors.at(name + ".thresholds"));
  q.levels = f.tensors.at(name + ".levels").bytes;
  return q;
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
  core::SafetensorsFile f;
  f.metadata["format"] = kPackedFormat;
  f.metadata["format_version"] = std::to_string(kPackedFormatVersion);
  f.metadata["model"] = model_json(model).dump();
  f.metadata["source"] = source_note;
  auto put_codes = [&](const std::string& name, const FloatQuantizer& q) {
    f.tensors[name + ".thresholds"] =
        f32_tensor({static_cast<int64_t>(q.thresholds.size())}, q.thresholds);
    f.tensors[name + ".levels"] =
        core::StoredTensor::from_u8({static_cast<int64_t>(q.levels.size())}, q.levels);
  };
  f.tensors["stem.weight"] = core::StoredTensor::from_tensor(model.stem_weight);
  f.tensors["stem.bn_mean"] = f32_tensor({kStemPlanes}, model.stem_bn_mean);
  f.tensors["stem.bn_scale"] = f32_tensor({kStemPlanes}, model.stem_bn_scale);
  f.tensors["stem.bn_offset"] = f32_tensor({kStemPlanes}, model.stem_bn_offset);
  put_codes("stem.codes", model.stem_codes);
  for (size_t i = 0; i < model.blocks.size(); ++i) {
    const PackedBlock& b = model.blocks[i];
    for (const PackedConv* c : {&b.conv1, &b.conv2}) {
      const int64_t out = c->spec.out_channels;
      put_weights(f, *c);
      if (std::any_of(c->acc_offset.begin(), c->acc_offset.end(), [](int32_t v) { return v != 0; }))
        f.tensors[c->name + ".acc_offset"] = core::StoredTensor::from_i32({out}, c->acc_offset);
      if (c == &b.conv1) {
        const Thresholds& t = c->thresholds;
        f.tensors[c->name + ".thresholds"] =
            core::StoredTensor::from_i32({out, t.count()}, t.values);
        f.tensors[c->name + ".descending"] = core::StoredTensor::from_u8({out}, t.descending);
        f.tensors[c->name + ".out_levels"] =
            core::StoredTensor::from_u8({int64_t{1} << t.out_bits}, c->out_levels);
      } else {
        f.tensors[c->name + ".scale"] = f32_tensor({out}, c->scale);
        if (!c->bias.empty()) f.tensors[c->name + ".bias"] = f32_tensor({out}, c->bias);
        f.tensors[c->name + ".bn_mean"] = f32_tensor({out}, c->bn_mean);
        f.tensors[c->name + ".bn_scale"] = f32_tensor({out}, c->bn_scale);
        f.tensors[c->name + ".bn_offset"] = f32_tensor({out}, c->bn_offset);
      }
    }
    if (i + 1 < model.blocks.size()) put_codes(block_name(model, i) + ".out", b.out_codes);
  }
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
  try {
    m = skeleton_from_json(core::Json::parse(*model_text));
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

  const std::vector<Expected> expected = expected_tensors(m);
  std::set<std::string> names;
  std::vector<std::string> missing, unexpected;
  for (const Expected& e : expected) {
    names.insert(e.name);
    if (!e.optional && !file.contains(e.name)) missing.push_back(e.name);
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
           " packed ResNet: " + list_text(unexpected);
  });
  for (const Expected& e : expected) {
    const auto it = file.tensors.find(e.name);
    if (it == file.tensors.end()) continue;
    const core::StoredTensor& t = it->second;
    check_lazy(t.dtype == e.dtype && t.shape == e.shape, [&] {
      return what + ": " + e.name + ": expected " + std::string(core::dtype_name(e.dtype)) + " " +
             dims_text(e.shape) + ", file has " + std::string(core::dtype_name(t.dtype)) + " " +
             dims_text(t.shape);
    });
  }

  m.stem_weight = file.tensors.at("stem.weight").to_tensor();
  m.stem_bn_mean = f32_values(file.tensors.at("stem.bn_mean"));
  m.stem_bn_scale = f32_values(file.tensors.at("stem.bn_scale"));
  m.stem_bn_offset = f32_values(file.tensors.at("stem.bn_offset"));
  m.stem_codes = get_codes(file, "stem.codes");
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    PackedBlock& b = m.blocks[i];
    for (PackedConv* c : {&b.conv1, &b.conv2}) {
      c->weights = get_weights(file, *c, what);
      if (file.contains(c->name + ".acc_offset"))
        c->acc_offset = i32_values(file.tensors.at(c->name + ".acc_offset"));
      if (c == &b.conv1) {
        c->thresholds.values = i32_values(file.tensors.at(c->name + ".thresholds"));
        c->thresholds.descending = file.tensors.at(c->name + ".descending").bytes;
        c->out_levels = file.tensors.at(c->name + ".out_levels").bytes;
      } else {
        c->scale = f32_values(file.tensors.at(c->name + ".scale"));
        if (file.contains(c->name + ".bias"))
          c->bias = f32_values(file.tensors.at(c->name + ".bias"));
        c->bn_mean = f32_values(file.tensors.at(c->name + ".bn_mean"));
        c->bn_scale = f32_values(file.tensors.at(c->name + ".bn_scale"));
        c->bn_offset = f32_values(file.tensors.at(c->name + ".bn_offset"));
      }
    }
    if (i + 1 < m.blocks.size()) b.out_codes = get_codes(file, block_name(m, i) + ".out");
  }
  m.fc_weight = file.tensors.at("fc.weight").to_tensor();
  m.fc_bias = f32_values(file.tensors.at("fc.bias"));
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
