// feature_taps.cpp: FeatureTaps (a linear search: models emit a few dozen features at most).
#include "nn/feature_taps.hpp"

#include "core/error.hpp"

namespace bitgrad::nn {

bool FeatureTaps::wants(std::string_view name) const {
  if (!filtered_) return true;
  for (const std::string& w : wanted_)
    if (w == name) return true;
  return false;
}

void FeatureTaps::add(std::string name, autograd::Variable feature) {
  if (!wants(name)) return;
  check_lazy(!contains(name), [&] { return "FeatureTaps: feature \"" + name + "\" added twice"; });
  entries_.emplace_back(std::move(name), std::move(feature));
}

bool FeatureTaps::contains(std::string_view name) const {
  for (const auto& e : entries_)
    if (e.first == name) return true;
  return false;
}

const autograd::Variable& FeatureTaps::at(std::string_view name) const {
  for (const auto& e : entries_)
    if (e.first == name) return e.second;
  std::string available;
  for (const auto& e : entries_) available += (available.empty() ? "" : ", ") + e.first;
  throw Error("FeatureTaps: no feature named \"" + std::string(name) + "\"; available: [" +
              available + "]");
}

std::vector<std::string> FeatureTaps::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.first);
  return out;
}

}  // namespace bitgrad::nn
