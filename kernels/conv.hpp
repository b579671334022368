// conv.hpp: the contract every integer convolution kernel of bitgrad meets, whatever its family
// (bit-serial AND-popcount, int8 dot products, APoT shift-add) or ISA tier: the layer description
// (ConvSpec), the data layouts, the exact int64 reference that defines the result, and the interface
// of a layer prepared for one kernel (QConv). A GEMM is the 1x1 case: height = width = kernel = 1,
// batch = rows.
// Not here: the kernels (kernels/<family>/), the choice among them (kernels/registry.hpp), epilogues
// that turn accumulators into the next layer's codes, or float scales (those belong to the exporter).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "kernels/cpu.hpp"

namespace bitgrad::kernels {

// One convolution on integer codes. Layouts (all dense, row-major):
//   activations  uint8  [batch, height, width, in_channels]           (NHWC), codes in [0, 2^act_bits)
//   weights      int8   [out_channels, kernel, kernel, in_channels]    (OHWI), integer weight values
//   accumulators int32  [batch, out_height, out_width, out_channels]   (NHWC)
// acc[n, y, x, o] = sum over (i, j, c) of a[n, y*stride - pad + i, x*stride - pad + j, c] * w[o, i, j, c],
// where taps outside the image read pad_code (the activation zero point; 0 for bitgrad's quantizers,
// whose code 0 means 0.0). Exact: every kernel computes this sum in integers, no rounding anywhere.
struct ConvSpec {
  int64_t batch = 1;
  int64_t height = 1;
  int64_t width = 1;
  int64_t in_channels = 1;
  int64_t out_channels = 1;
  int64_t kernel = 1;  // square kernel, kernel x kernel taps
  int64_t stride = 1;
  int64_t pad = 0;
  int act_bits = 2;     // activation codes lie in [0, 2^act_bits); 1..8
  uint8_t pad_code = 0; // code read for taps outside the image; < 2^act_bits

  int64_t out_height() const { return (height + 2 * pad - kernel) / stride + 1; }
  int64_t out_width() const { return (width + 2 * pad - kernel) / stride + 1; }
  int64_t depth() const { return kernel * kernel * in_channels; }  // K of the implied GEMM
  int64_t out_pixels() const { return batch * out_height() * out_width(); }  // M
  int64_t macs() const { return out_pixels() * out_channels * depth(); }
  int64_t input_elements() const { return batch * height * width * in_channels; }
  int64_t weight_elements() const { return out_channels * depth(); }
  int64_t output_elements() const { return out_pixels() * out_channels; }
  // "conv 3x3/s1/p1 16->16 @ 32x32, batch 1, a2" (for messages and benchmark names).
  std::string describe() const;
  // Throws bitgrad::Error naming the offending field (non-positive sizes, an empty output, act_bits
  // outside 1..8, pad_code out of range, sizes whose accumulators could overflow int32).
  void validate() const;
};

// Why (spec, weights) is not a valid layer, or "" when it is: validate()'s message, or a weight
// count that does not match the spec. The common first check of every row's `rejects`.
std::string conv_problem(const ConvSpec& spec, std::span<const int8_t> weights);

// The definition of the result, in int64: out has output_elements() entries. Checks the spec and that
// every activation code is < 2^act_bits (bitgrad::Error otherwise). Single-threaded; slow on purpose.
void conv_codes__ref(const ConvSpec& spec, std::span<const uint8_t> act, std::span<const int8_t> weights,
                     std::span<int64_t> out);

// The kernel families.
enum class Family : int {
  kBitserial = 0,  // activations and weights as bit-planes, AND + popcount (2-bit activations)
  kInt8 = 1,       // codes as bytes, u8 x s8 dot products (VNNI vpdpbusd, AVX2 maddubs)
  kShift = 2,      // APoT weights as sums of signed powers of two, shift-add, no multiplies
};
std::string_view family_name(Family family);  // "bitserial", "int8", "shift"
Family parse_family(std::string_view name);   // throws bitgrad::Error naming the accepted names

// One layer's weights prepared (packed) for one kernel. Immutable after construction; run() may be
// called from several threads at once on different buffers.
class QConv {
 public:
  virtual ~QConv() = default;
  virtual const ConvSpec& spec() const = 0;
  virtual std::string_view kernel_name() const = 0;  // the registry row that built it
  // Bytes of the packed weights this object holds (the deployable size, padding included).
  virtual std::size_t packed_weight_bytes() const = 0;
  // Bytes of the kernel's own input format for one call (bit-planes, padded copies, indirection).
  virtual std::size_t packed_input_bytes() const = 0;
  // Converts NHWC activation codes into the kernel's input format in `packed` (packed_input_bytes()
  // bytes, 64-byte aligned). Threaded with oneTBB. Codes >= 2^act_bits are a precondition violation.
  virtual void pack_input(const uint8_t* codes, std::byte* packed) const = 0;
  // acc = the convolution of the packed input (from pack_input) with the prepared weights, exactly
  // conv_codes__ref's numbers, NHWC int32. Threaded with oneTBB over (pixel tiles x output-channel
  // groups); the tile kernels underneath are single-threaded and do not allocate.
  virtual void run(const std::byte* packed, int32_t* acc) const = 0;
};

// A row of a family's kernel table (kernels/<family>/<family>_registry.cpp). The rows of all families
// form the registry that drives dispatch, tests and benchmarks (kernels/registry.hpp).
struct ConvKernelRow {
  std::string_view name;  // e.g. "conv_w2a2_bitserial__avx512_2x12"; unique
  Family family;
  Tier tier;              // the ISA the row needs
  // Why this row cannot run this layer, or "" when it can (e.g. "weights of channel 3 take 5 distinct
  // values; the bit-serial kernel takes at most 4"). Cheap; called per layer at preparation.
  std::string (*rejects)(const ConvSpec& spec, std::span<const int8_t> weights);
  // Packs the weights for this kernel. Precondition: rejects(spec, weights) is empty.
  std::unique_ptr<QConv> (*prepare)(const ConvSpec& spec, std::span<const int8_t> weights);
};

}  // namespace bitgrad::kernels
