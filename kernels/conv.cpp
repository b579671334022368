// conv.cpp: ConvSpec checks, the int64 reference convolution on codes, family names.
#include "kernels/conv.hpp"

#include <limits>

#include "core/error.hpp"

namespace bitgrad::kernels {

std::string ConvSpec::describe() const {
  return "conv " + std::to_string(kernel) + "x" + std::to_string(kernel) + "/s" + std::to_string(stride) +
         "/p" + std::to_string(pad) + " " + std::to_string(in_channels) + "->" +
         std::to_string(out_channels) + " @ " + std::to_string(height) + "x" + std::to_string(width) +
         ", batch " + std::to_string(batch) + ", a" + std::to_string(act_bits);
}

void ConvSpec::validate() const {
  auto positive = [&](int64_t v, const char* name) {
    check_lazy(v > 0, [&] {
      return describe() + ": expected " + name + " > 0, got " + std::to_string(v);
    });
  };
  positive(batch, "batch");
  positive(height, "height");
  positive(width, "width");
  positive(in_channels, "in_channels");
  positive(out_channels, "out_channels");
  positive(kernel, "kernel");
  positive(stride, "stride");
  check_lazy(pad >= 0 && pad < kernel, [&] {
    return describe() + ": expected 0 <= pad < kernel, got pad " + std::to_string(pad);
  });
  check_lazy(height + 2 * pad >= kernel && width + 2 * pad >= kernel, [&] {
    return describe() + ": the padded image is smaller than the kernel (empty output)";
  });
  check_lazy(act_bits >= 1 && act_bits <= 8, [&] {
    return describe() + ": expected act_bits in 1..8, got " + std::to_string(act_bits);
  });
  check_lazy(pad_code < (1 << act_bits), [&] {
    return describe() + ": pad_code " + std::to_string(pad_code) + " is not a " +
           std::to_string(act_bits) + "-bit code";
  });
  // |acc| <= depth * (2^act_bits - 1) * 128 must fit int32 for every kernel.
  const int64_t bound = depth() * ((int64_t{1} << act_bits) - 1) * 128;
  check_lazy(bound <= std::numeric_limits<int32_t>::max(), [&] {
    return describe() + ": accumulators could reach " + std::to_string(bound) +
           ", beyond int32; split the reduction";
  });
}

std::string conv_problem(const ConvSpec& spec, std::span<const int8_t> weights) {
  try {
    spec.validate();
  } catch (const Error& e) {
    return e.what();
  }
  if (static_cast<int64_t>(weights.size()) != spec.weight_elements())
    return "expected " + std::to_string(spec.weight_elements()) + " weights, got " +
           std::to_string(weights.size());
  return {};
}

void conv_codes__ref(const ConvSpec& spec, std::span<const uint8_t> act, std::span<const int8_t> weights,
                     std::span<int64_t> out) {
  spec.validate();
  check_lazy(static_cast<int64_t>(act.size()) == spec.input_elements(), [&] {
    return spec.describe() + ": expected " + std::to_string(spec.input_elements()) +
           " activation codes, got " + std::to_string(act.size());
  });
  check_lazy(static_cast<int64_t>(weights.size()) == spec.weight_elements(), [&] {
    return spec.describe() + ": expected " + std::to_string(spec.weight_elements()) + " weights, got " +
           std::to_string(weights.size());
  });
  check_lazy(static_cast<int64_t>(out.size()) == spec.output_elements(), [&] {
    return spec.describe() + ": expected room for " + std::to_string(spec.output_elements()) +
           " accumulators, got " + std::to_string(out.size());
  });
  for (std::size_t i = 0; i < act.size(); ++i) {
    check_lazy(act[i] < (1 << spec.act_bits), [&] {
      return spec.describe() + ": activation code " + std::to_string(act[i]) + " at index " +
             std::to_string(i) + " is not a " + std::to_string(spec.act_bits) + "-bit code";
    });
  }
  const int64_t oh = spec.out_height(), ow = spec.out_width(), c = spec.in_channels;
  const int64_t k = spec.kernel;
  for (int64_t n = 0; n < spec.batch; ++n)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x)
        for (int64_t o = 0; o < spec.out_channels; ++o) {
          int64_t sum = 0;
          for (int64_t i = 0; i < k; ++i)
            for (int64_t j = 0; j < k; ++j) {
              const int64_t iy = y * spec.stride - spec.pad + i, ix = x * spec.stride - spec.pad + j;
              const bool inside = iy >= 0 && iy < spec.height && ix >= 0 && ix < spec.width;
              const int8_t* w = &weights[static_cast<std::size_t>(((o * k + i) * k + j) * c)];
              const uint8_t* a =
                  inside ? &act[static_cast<std::size_t>(((n * spec.height + iy) * spec.width + ix) * c)]
                         : nullptr;
              for (int64_t ch = 0; ch < c; ++ch)
                sum += int64_t{inside ? a[ch] : spec.pad_code} * w[ch];
            }
          out[static_cast<std::size_t>(((n * oh + y) * ow + x) * spec.out_channels + o)] = sum;
        }
}

std::string_view family_name(Family family) {
  switch (family) {
    case Family::kBitserial: return "bitserial";
    case Family::kInt8: return "int8";
    case Family::kShift: return "shift";
  }
  return "unknown";
}

Family parse_family(std::string_view name) {
  for (Family f : {Family::kBitserial, Family::kInt8, Family::kShift}) {
    if (name == family_name(f)) return f;
  }
  check(false, "kernel family: expected one of bitserial, int8, shift, got '" + std::string(name) + "'");
  return Family::kBitserial;
}

}  // namespace bitgrad::kernels
