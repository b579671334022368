// registry.cpp: the concatenated kernel table and dispatch. Each family owns its rows in
// kernels/<family>/<family>_registry.cpp; this file only joins them.
#include "kernels/registry.hpp"

#include <vector>

#include "core/error.hpp"

namespace bitgrad::kernels {

// Defined in kernels/<family>/<family>_registry.cpp: each family's rows, slowest first.
std::span<const ConvKernelRow> bitserial_rows();
std::span<const ConvKernelRow> int8_rows();
std::span<const ConvKernelRow> shift_rows();

std::span<const ConvKernelRow> conv_kernels() {
  static const std::vector<ConvKernelRow> all = [] {
    std::vector<ConvKernelRow> rows;
    for (auto family : {bitserial_rows(), int8_rows(), shift_rows()})
      rows.insert(rows.end(), family.begin(), family.end());
    return rows;
  }();
  return all;
}

bool cpu_supports(const ConvKernelRow& row) { return row.tier <= cpu_tier(); }

const ConvKernelRow& select_conv(Family family, const ConvSpec& spec, std::span<const int8_t> weights) {
  const ConvKernelRow* best = nullptr;
  std::string reasons;
  for (const ConvKernelRow& row : conv_kernels()) {
    if (row.family != family) continue;
    if (row.tier > max_tier()) {
      reasons += std::string(reasons.empty() ? "" : "; ") + std::string(row.name) + ": needs tier " +
                 std::string(tier_name(row.tier)) + " > " + std::string(tier_name(max_tier()));
      continue;
    }
    const std::string why = row.rejects(spec, weights);
    if (!why.empty()) {
      reasons += std::string(reasons.empty() ? "" : "; ") + std::string(row.name) + ": " + why;
      continue;
    }
    best = &row;  // rows are ordered slowest to fastest: keep the last that fits
  }
  check_lazy(best != nullptr, [&] {
    return "no " + std::string(family_name(family)) + " kernel runs " + spec.describe() + " (" +
           (reasons.empty() ? std::string("the family has no kernels") : reasons) + ")";
  });
  return *best;
}

std::unique_ptr<QConv> make_conv(Family family, const ConvSpec& spec, std::span<const int8_t> weights) {
  spec.validate();
  check_lazy(static_cast<int64_t>(weights.size()) == spec.weight_elements(), [&] {
    return spec.describe() + ": expected " + std::to_string(spec.weight_elements()) + " weights, got " +
           std::to_string(weights.size());
  });
  return select_conv(family, spec, weights).prepare(spec, weights);
}

const ConvKernelRow& find_conv(std::string_view name) {
  std::string known;
  for (const ConvKernelRow& row : conv_kernels()) {
    if (row.name == name) return row;
    known += std::string(known.empty() ? "" : ", ") + std::string(row.name);
  }
  check(false, "kernel '" + std::string(name) + "' is not in the registry (known: " + known + ")");
  return conv_kernels().front();
}

}  // namespace bitgrad::kernels
