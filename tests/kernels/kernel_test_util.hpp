// kernel_test_util.hpp: what the kernel-family tests share: a family's registry rows, skipping rows
// this CPU cannot run (with a WARN), running one row end to end (prepare, pack_input, run) and
// comparing it with conv_codes__ref exactly, and building random layers.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <iterator>
#include <random>
#include <span>
#include <vector>

#include "kernels/conv.hpp"
#include "kernels/registry.hpp"

namespace bitgrad::kernels::testing {

inline std::vector<const ConvKernelRow*> family_rows(Family family) {
  std::vector<const ConvKernelRow*> rows;
  for (const ConvKernelRow& row : conv_kernels())
    if (row.family == family) rows.push_back(&row);
  return rows;
}

inline bool runnable(const ConvKernelRow& row) {
  if (cpu_supports(row)) return true;
  WARN("skipping " << row.name << ": this CPU lacks the " << tier_name(row.tier) << " tier ("
                   << cpu_feature_summary() << ")");
  return false;
}

struct AlignedDelete {
  void operator()(std::byte* p) const { ::operator delete[](p, std::align_val_t{64}); }
};

// The row's accumulators for this layer (prepare, pack_input into a 64-byte aligned buffer, run).
inline std::vector<int32_t> run_row(const ConvKernelRow& row, const ConvSpec& s,
                                    const std::vector<uint8_t>& a, const std::vector<int8_t>& w) {
  const std::unique_ptr<QConv> conv = row.prepare(s, w);
  REQUIRE(conv->kernel_name() == row.name);
  REQUIRE(conv->packed_weight_bytes() > 0);
  const std::size_t bytes = conv->packed_input_bytes();
  std::unique_ptr<std::byte[], AlignedDelete> packed(new (std::align_val_t{64}) std::byte[bytes]);
  conv->pack_input(a.data(), packed.get());
  std::vector<int32_t> acc(static_cast<std::size_t>(s.output_elements()), 0x5a5a5a5a);
  conv->run(packed.get(), acc.data());
  return acc;
}

inline std::vector<int64_t> reference(const ConvSpec& s, const std::vector<uint8_t>& a,
                                      const std::vector<int8_t>& w) {
  std::vector<int64_t> out(static_cast<std::size_t>(s.output_elements()));
  conv_codes__ref(s, a, w, out);
  return out;
}

// Every accumulator equal; reports the first difference.
inline void expect_exact(const ConvKernelRow& row, const ConvSpec& s, const std::vector<uint8_t>& a,
                         const std::vector<int8_t>& w) {
  INFO(row.name << " on " << s.describe() << ", pad_code " << int{s.pad_code});
  REQUIRE(row.rejects(s, w).empty());
  const std::vector<int64_t> want = reference(s, a, w);
  const std::vector<int32_t> got = run_row(row, s, a, w);
  std::size_t bad = 0;
  while (bad < want.size() && want[bad] == got[bad]) ++bad;
  if (bad < want.size())
    INFO("first difference at accumulator " << bad << ": " << got[bad] << " vs " << want[bad]);
  CHECK(bad == want.size());
}

inline ConvSpec layer(int64_t batch, int64_t h, int64_t w, int64_t cin, int64_t cout, int64_t k,
                      int64_t stride, int64_t pad, int act_bits, int pad_code) {
  ConvSpec s;
  s.batch = batch;
  s.height = h;
  s.width = w;
  s.in_channels = cin;
  s.out_channels = cout;
  s.kernel = k;
  s.stride = stride;
  s.pad = pad;
  s.act_bits = act_bits;
  s.pad_code = static_cast<uint8_t>(pad_code);
  return s;
}

// The randomized layer set of the int8 and shift tests, drawn from rng: every channel count
// (1, 3, 16, 17, 31, 32, 33, 64, 100; three layers each) against the output-channel counts `couts`
// in turn, kernels 1/3, strides 1/2, pads 0/1, 1..8-bit codes with non-zero pad codes; then
// padding-heavy tiny images (a batch of them) and GEMM shapes (1x1 images, batch = rows).
inline std::vector<ConvSpec> random_layers(std::mt19937& rng, std::span<const int64_t> couts) {
  const int64_t cins[] = {1, 3, 16, 17, 31, 32, 33, 64, 100};
  const int bits[] = {1, 2, 3, 4, 7, 8};
  std::vector<ConvSpec> layers;
  int i = 0;
  for (int64_t cin : cins) {
    for (int rep = 0; rep < 3; ++rep, ++i) {
      const int64_t k = (i % 3 == 2) ? 1 : 3;
      const int64_t stride = 1 + (i / 2) % 2;
      const int64_t pad = k == 3 ? (i % 4 == 0 ? 0 : 1) : 0;
      const int b = bits[static_cast<std::size_t>(i) % std::size(bits)];
      std::uniform_int_distribution<int> size(static_cast<int>(k), 7);
      std::uniform_int_distribution<int> code(0, (1 << b) - 1);
      layers.push_back(layer(1 + i % 2, size(rng), size(rng), cin,
                             couts[static_cast<std::size_t>(i) % couts.size()], k, stride, pad, b,
                             code(rng)));
    }
  }
  layers.push_back(layer(3, 1, 1, 17, 15, 3, 1, 1, 2, 3));
  layers.push_back(layer(2, 2, 3, 33, 17, 3, 1, 1, 4, 9));
  layers.push_back(layer(2, 2, 3, 5, 33, 3, 2, 1, 8, 200));
  layers.push_back(layer(37, 1, 1, 100, 33, 1, 1, 0, 2, 0));
  layers.push_back(layer(5, 1, 1, 1, 1, 1, 1, 0, 1, 0));
  return layers;
}

inline std::vector<uint8_t> random_codes(const ConvSpec& s, std::mt19937& rng) {
  std::uniform_int_distribution<int> code(0, (1 << s.act_bits) - 1);
  std::vector<uint8_t> a(static_cast<std::size_t>(s.input_elements()));
  for (auto& v : a) v = static_cast<uint8_t>(code(rng));
  return a;
}

}  // namespace bitgrad::kernels::testing
