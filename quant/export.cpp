// export.cpp: QAT ResNet -> PackedResNet (quant/export.hpp).
#include "quant/export.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autograd/ops/batch_norm_relu.hpp"
#include "autograd/variable.hpp"
#include "core/error.hpp"
#include "core/eval_epilogue.hpp"
#include "kernels/epilogue/threshold.hpp"

namespace bitgrad::quant {

namespace {

using kernels::FloatQuantizer;
using kernels::PackedConv;

// float32 values in the order of their bit patterns' magnitude: -inf < ... < -0 == +0 < ... < +inf.
int64_t order_key(float x) {
  const auto u = std::bit_cast<uint32_t>(x);
  return (u >> 31) != 0 ? -static_cast<int64_t>(u & 0x7fffffffu) : static_cast<int64_t>(u);
}
float from_order_key(int64_t k) {
  const uint32_t u = k < 0 ? (0x80000000u | static_cast<uint32_t>(-k)) : static_cast<uint32_t>(k);
  return std::bit_cast<float>(u);
}

// The activation quantizer's code map (per tensor) with its levels checked to be bytes.
CodeMap activation_map(const TensorQuantizer& q, const std::string& name) {
  const Encoded e = q.encode(Tensor::zeros(core::Shape{1}));
  const CodeMap& m = e.map;
  check_lazy(m.scale.size() == 1 && m.zero_point.size() == 1 && !m.levels.empty() && m.levels.size() <= 256 &&
                 m.levels.front() >= 0 && m.levels.back() <= 255 && m.zero_point[0] >= 0 &&
                 m.zero_point[0] <= 255,
             [&] {
               return "export: " + name + ": expected a per-tensor activation quantizer with codes and zero point in "
                      "0..255, got " + std::to_string(m.scale.size()) + " scales, " + std::to_string(m.levels.size()) +
                      " levels from " + std::to_string(m.levels.empty() ? 0 : m.levels.front()) + " to " +
                      std::to_string(m.levels.empty() ? 0 : m.levels.back()) + ", zero point " +
                      std::to_string(m.zero_point.empty() ? 0 : m.zero_point[0]);
             });
  return m;
}

// code -> index in the ascending level list (-1 for a code that is not a level).
std::vector<int> level_index(const std::vector<int32_t>& levels) {
  std::vector<int> index(256, -1);
  for (size_t i = 0; i < levels.size(); ++i) index[static_cast<size_t>(levels[i])] = static_cast<int>(i);
  return index;
}

int bits_for(int64_t count) {  // smallest b with 2^b >= count, at least 1
  int b = 1;
  while ((int64_t{1} << b) < count) ++b;
  return b;
}

autograd::BatchNormAffine bn_affine(nn::BatchNorm2d& bn) {
  return autograd::batch_norm_eval_affine(bn.weight().defined() ? bn.weight().value() : Tensor(),
                                          bn.bias().defined() ? bn.bias().value() : Tensor(), bn.running_mean(),
                                          bn.running_var(), bn.config().eps);
}

// The weight an edge layer (stem or classifier) uses in eval: fake-quantized when it has a quantizer.
Tensor edge_weight(nn::LayerQuantizer* lq, const autograd::Variable& weight, const std::string& name) {
  if (lq == nullptr) return weight.value().contiguous();
  auto* q = dynamic_cast<QuantizedLayer*>(lq);
  check_lazy(q != nullptr && q->input() == nullptr && q->output_scale() == nullptr, [&] {
    return "export: " + name + ": expected float inputs and no output scale on the first and last layers (the "
                              "packed stem and classifier run in float), got a quantized input or an output scale";
  });
  return q->quantize_weight(weight).value().contiguous();
}

struct TrunkConv {
  PackedConv packed;
  TensorQuantizer* input = nullptr;
  CodeMap input_map;
};

// One trunk convolution: integer weights, scales and bias from the layer's own integer form.
TrunkConv trunk_conv(nn::Conv2d& conv, const std::string& name, int64_t height, int64_t width) {
  auto* q = dynamic_cast<QuantizedLayer*>(conv.quantizer());
  check_lazy(q != nullptr && q->input() != nullptr, [&] {
    return "export: " + name + ": expected a quantized convolution with quantized inputs, got " +
           (q == nullptr ? std::string("a float convolution") : std::string("float inputs"));
  });
  const nn::Conv2dConfig& cfg = conv.config();
  check_lazy(cfg.dilation == 1 && cfg.kernel == 3 && cfg.padding == 1, [&] {
    return "export: " + name + ": expected a 3x3 convolution with padding 1, dilation 1";
  });
  const Tensor x = Tensor::zeros(core::Shape{1, cfg.in_channels, height, width});
  const std::optional<nn::LayerQuantizer::IntegerOperands> ops = q->integer_operands(x, conv.weight().value());
  check_lazy(ops.has_value(), [&] {
    return "export: " + name + ": the quantizer has no integer form (" + q->describe().dump() +
           "): its integer sums could reach 2^24, or it is calibrating";
  });
  TrunkConv t;
  t.input = q->input();
  t.input_map = activation_map(*t.input, name + " input");
  PackedConv& pc = t.packed;
  pc.name = name;
  pc.spec.batch = 1;
  pc.spec.height = height;
  pc.spec.width = width;
  pc.spec.in_channels = cfg.in_channels;
  pc.spec.out_channels = cfg.out_channels;
  pc.spec.kernel = cfg.kernel;
  pc.spec.stride = cfg.stride;
  pc.spec.pad = cfg.padding;
  pc.spec.act_bits = bits_for(int64_t{t.input_map.levels.back()} + 1);
  pc.spec.pad_code = static_cast<uint8_t>(t.input_map.zero_point[0]);
  // OIHW float integers -> OHWI int8.
  const int64_t o = cfg.out_channels, c = cfg.in_channels, k = cfg.kernel;
  const float* w = ops->weight.data();
  pc.weights.resize(static_cast<size_t>(o * k * k * c));
  for (int64_t oc = 0; oc < o; ++oc)
    for (int64_t ic = 0; ic < c; ++ic)
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < k; ++j) {
          const float v = w[((oc * c + ic) * k + i) * k + j];
          check_lazy(v == std::nearbyint(v) && v >= -128.0f && v <= 127.0f, [&] {
            return "export: " + name + ": expected integer weight values in -128..127, got " + std::to_string(v);
          });
          const auto iv = static_cast<int32_t>(v);
          pc.weights[static_cast<size_t>(((oc * k + i) * k + j) * c + ic)] = static_cast<int8_t>(iv);
        }
  pc.weight_bits = bits_for([&] {  // bits per level index: the most distinct values of a channel
    int64_t most = 1;
    for (int64_t oc = 0; oc < o; ++oc) {
      std::vector<int8_t> v(pc.weights.begin() + oc * k * k * c, pc.weights.begin() + (oc + 1) * k * k * c);
      std::sort(v.begin(), v.end());
      most = std::max<int64_t>(most, std::unique(v.begin(), v.end()) - v.begin());
    }
    return most;
  }());
  // The kernel reads pad_code for taps outside the image and sums code * w; the QAT layer sums
  // (code - zp) * w with zeros outside: subtract zp * sum(w) per channel.
  if (pc.spec.pad_code != 0) {
    pc.acc_offset.assign(static_cast<size_t>(o), 0);
    for (int64_t oc = 0; oc < o; ++oc) {
      int64_t sum = 0;
      for (int64_t i = 0; i < k * k * c; ++i) sum += pc.weights[static_cast<size_t>(oc * k * k * c + i)];
      pc.acc_offset[static_cast<size_t>(oc)] = static_cast<int32_t>(-int64_t{pc.spec.pad_code} * sum);
    }
  }
  pc.scale = ops->scale;
  pc.bias = nn::scaled_bias(conv.bias(), ops->output_factor);
  return t;
}

// The reachable accumulator range of a trunk conv: per channel, sum over taps of the extreme products
// of (code - zp) and the weight.
std::pair<int32_t, int32_t> acc_range(const TrunkConv& t) {
  const int64_t zp = t.input_map.zero_point[0];
  const int64_t a_lo = std::min<int64_t>(0, t.input_map.levels.front() - zp);
  const int64_t a_hi = std::max<int64_t>(0, t.input_map.levels.back() - zp);
  const int64_t o = t.packed.spec.out_channels, depth = t.packed.spec.depth();
  int64_t lo = 0, hi = 0;
  for (int64_t oc = 0; oc < o; ++oc) {
    int64_t l = 0, h = 0;
    for (int64_t i = 0; i < depth; ++i) {
      const int64_t w = t.packed.weights[static_cast<size_t>(oc * depth + i)];
      l += std::min(w * a_lo, w * a_hi);
      h += std::max(w * a_lo, w * a_hi);
    }
    lo = std::min(lo, l);
    hi = std::max(hi, h);
  }
  return {static_cast<int32_t>(lo - 1), static_cast<int32_t>(hi + 1)};
}

// conv1 -> scale -> BN -> ReLU -> next quantizer, as integer thresholds on conv1's accumulators.
void add_thresholds(TrunkConv& conv1, nn::BatchNorm2d& bn1, const TrunkConv& conv2) {
  PackedConv& pc = conv1.packed;
  const autograd::BatchNormAffine bn = bn_affine(bn1);
  const auto [acc_min, acc_max] = acc_range(conv1);
  const int64_t channels = pc.spec.out_channels, range = int64_t{acc_max} - acc_min + 1;
  // Every accumulator value of every channel through the QAT model's own float functions.
  Tensor values = Tensor::empty(core::Shape{channels * range});
  float* pv = values.data();
  for (int64_t c = 0; c < channels; ++c) {
    float* row = pv + c * range;
    for (int64_t i = 0; i < range; ++i) row[i] = static_cast<float>(acc_min + i);
    const auto uc = static_cast<size_t>(c);
    core::scale_shift_row(row, range, pc.scale[uc], pc.bias.empty() ? nullptr : &pc.bias[uc], row);
    core::batch_norm_row(row, nullptr, range, {bn.mean[uc], bn.scale[uc], bn.offset[uc]}, true, row);
  }
  const Encoded codes = conv2.input->encode(values);
  const std::vector<int32_t>& levels = conv2.input_map.levels;
  const std::vector<int> index = level_index(levels);
  const int out_bits = bits_for(static_cast<int64_t>(levels.size()));
  pc.thresholds = kernels::derive_thresholds(channels, out_bits, acc_min, acc_max, [&](int64_t c, int32_t acc) {
    const int32_t code = codes.codes[static_cast<size_t>(c * range + (int64_t{acc} - acc_min))];
    const int idx = code >= 0 && code < 256 ? index[static_cast<size_t>(code)] : -1;
    check_lazy(idx >= 0, [&] {
      return "export: " + conv2.packed.name + ": its input quantizer produced code " + std::to_string(code) +
             ", which is not one of its levels";
    });
    return static_cast<uint8_t>(idx);
  });
  pc.out_levels.assign(size_t{1} << out_bits, static_cast<uint8_t>(levels.back()));
  for (size_t i = 0; i < levels.size(); ++i) pc.out_levels[i] = static_cast<uint8_t>(levels[i]);
}

}  // namespace

FloatQuantizer float_thresholds(const TensorQuantizer& quantizer, const std::string& name) {
  const CodeMap map = activation_map(quantizer, name);
  const std::vector<int> index = level_index(map.levels);
  Tensor one = Tensor::empty(core::Shape{1});
  auto level_of = [&](float x) {
    one.data()[0] = x;
    const int32_t code = quantizer.encode(one).codes[0];
    const int idx = code >= 0 && code < 256 ? index[static_cast<size_t>(code)] : -1;
    check_lazy(idx >= 0, [&] {
      return "export: " + name + ": the quantizer produced code " + std::to_string(code) + " for " +
             std::to_string(x) + ", which is not one of its levels";
    });
    return idx;
  };
  constexpr float kInf = std::numeric_limits<float>::infinity();
  FloatQuantizer fq;
  for (const int32_t l : map.levels) fq.levels.push_back(static_cast<uint8_t>(l));
  for (int k = 1; k < static_cast<int>(map.levels.size()); ++k) {
    // Smallest float x with level_of(x) >= k; -inf / +inf when every / no finite float reaches it.
    int64_t lo = order_key(-kInf), hi = order_key(kInf);
    float t;
    if (level_of(-kInf) >= k) {
      t = -kInf;
    } else if (level_of(kInf) < k) {
      t = kInf;
    } else {
      while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        (level_of(from_order_key(mid)) >= k ? hi : lo) = mid;
      }
      t = from_order_key(hi);
    }
    fq.thresholds.push_back(t + 0.0f);  // -0 -> +0: the same comparisons
  }
  // Check: every threshold and its predecessor, and a dense sample of the active range, all at once
  // (the quantizer's vectorised loop).
  std::vector<float> sample;
  for (const float t : fq.thresholds) {
    if (!std::isfinite(t)) continue;
    sample.push_back(t);
    sample.push_back(std::nextafter(t, -kInf));
    sample.push_back(std::nextafter(t, kInf));
  }
  float lo = 0.0f, hi = 1.0f;
  for (const float t : fq.thresholds)
    if (std::isfinite(t)) {
      lo = std::min(lo, t);
      hi = std::max(hi, t);
    }
  const float margin = (hi - lo) * 0.25f + 1e-6f;
  constexpr int kSample = 1 << 16;
  for (int i = 0; i <= kSample; ++i)
    sample.push_back(lo - margin + (hi - lo + 2 * margin) * static_cast<float>(i) / kSample);
  Tensor all = Tensor::empty(core::Shape{static_cast<int64_t>(sample.size())});
  std::copy(sample.begin(), sample.end(), all.data());
  const Encoded e = quantizer.encode(all);
  for (size_t i = 0; i < sample.size(); ++i)
    check_lazy(e.codes[i] == fq.code(sample[i]), [&] {
      return "export: " + name + ": float thresholds give code " + std::to_string(fq.code(sample[i])) + " at " +
             std::to_string(sample[i]) + ", the quantizer " + std::to_string(e.codes[i]) +
             " (not a monotone step function of its input?)";
    });
  return fq;
}

kernels::PackedResNet export_resnet(nn::ResNetCifar& model, const QuantPolicy& policy, int64_t height,
                                    int64_t width) {
  check(model.config().shortcut == nn::Shortcut::kA,
        "export: expected option-A shortcuts (the packed runtime has no option-B projection), got option B");
  check_lazy(height >= 4 && width >= 4, [&] {
    return "export: expected an input size of at least 4x4, got " + std::to_string(height) + "x" +
           std::to_string(width);
  });
  model.eval();
  autograd::NoGradGuard no_grad;
  kernels::PackedResNet p;
  p.depth = model.config().depth;
  p.in_channels = model.config().in_channels;
  p.num_classes = model.config().num_classes;
  p.height = height;
  p.width = width;
  p.source = core::Json::object();
  p.source.set("policy", to_json(policy));

  p.stem_weight = edge_weight(model.conv1().quantizer(), model.conv1().weight(), "conv1");
  check(!model.conv1().bias().defined(), "export: conv1: expected no bias");
  const autograd::BatchNormAffine stem_bn = bn_affine(model.bn1());
  p.stem_bn_mean = stem_bn.mean;
  p.stem_bn_scale = stem_bn.scale;
  p.stem_bn_offset = stem_bn.offset;

  // Trunk convolutions in order, with their input sizes.
  struct BlockConvs {
    TrunkConv conv1, conv2;
    nn::BasicBlock* block;
    std::string prefix;
  };
  std::vector<BlockConvs> blocks;
  int64_t h = height, w = width;
  for (int s = 1; s <= 3; ++s)
    for (int b = 0; b < model.blocks_per_stage(); ++b) {
      nn::BasicBlock& block = model.block(s, b);
      const std::string prefix = "layer" + std::to_string(s) + "." + std::to_string(b);
      TrunkConv c1 = trunk_conv(block.conv1(), prefix + ".conv1", h, w);
      h = c1.packed.spec.out_height();
      w = c1.packed.spec.out_width();
      TrunkConv c2 = trunk_conv(block.conv2(), prefix + ".conv2", h, w);
      blocks.push_back({std::move(c1), std::move(c2), &block, prefix});
    }
  p.stem_codes = float_thresholds(*blocks.front().conv1.input, "layer1.0.conv1 input");
  for (size_t i = 0; i < blocks.size(); ++i) {
    BlockConvs& bc = blocks[i];
    add_thresholds(bc.conv1, bc.block->bn1(), bc.conv2);
    kernels::PackedBlock pb;
    pb.downsample = bc.block->changes_shape();
    pb.conv1 = std::move(bc.conv1.packed);
    pb.conv1.scale.clear();
    pb.conv1.bias.clear();
    pb.conv2 = std::move(bc.conv2.packed);
    const autograd::BatchNormAffine bn2 = bn_affine(bc.block->bn2());
    pb.conv2.bn_mean = bn2.mean;
    pb.conv2.bn_scale = bn2.scale;
    pb.conv2.bn_offset = bn2.offset;
    if (i + 1 < blocks.size()) pb.out_codes = float_thresholds(*blocks[i + 1].conv1.input, blocks[i + 1].prefix + ".conv1 input");
    p.blocks.push_back(std::move(pb));
  }

  p.fc_weight = edge_weight(model.linear().quantizer(), model.linear().weight(), "linear");
  check(model.linear().bias().defined(), "export: linear: expected a bias");
  const Tensor fc_bias = model.linear().bias().value().contiguous();
  p.fc_bias.assign(fc_bias.data(), fc_bias.data() + fc_bias.numel());
  p.validate();
  return p;
}

}  // namespace bitgrad::quant
