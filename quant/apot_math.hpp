// apot_math.hpp: the scalar code functions of the PoT / APoT quantizers (ALGORITHMS.md §1.1-1.3)
// and of APoT's 8-bit first/last-layer weight quantizer (§1.4). Header-only, no autograd: the
// training path (quant/apot.cpp, quant/int8_max.cpp) and the deploy path call these same functions,
// so both see the same integer codes. Level sets are integer lattices: level = code / denominator
// (APoT B = 3: codes {0,1,2,3,4,6,8,10}, denominator 10) and a quantized value is exactly
// grid_scale(alpha, grid) * code in float32.
// Not here: gradients, learnable parameters, graph nodes (quant/apot.hpp, quant/int8_max.hpp).
#pragma once

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

namespace bitgrad::quant::apot {

// An unsigned magnitude grid on [0, 1]: level i is codes[i] / denominator. codes ascend from 0 to
// denominator (the largest level is exactly 1) and share no common factor. thresholds[k] is the
// largest float <= the midpoint (codes[k] + codes[k+1]) / (2 denominator), so that for every float
// m, "m > thresholds[k]" is exactly "m > that midpoint" (no float lies strictly between the two).
// Build grids with make_grid() or the functions below, which fill the thresholds.
struct PowerGrid {
  std::vector<int32_t> codes;
  int32_t denominator = 1;
  std::vector<float> thresholds;
};

// The grid of the ascending codes (codes.front() == 0; denominator = codes.back()).
inline PowerGrid make_grid(std::vector<int32_t> codes) {
  assert(codes.size() >= 2 && codes.front() == 0);
  PowerGrid grid;
  grid.denominator = codes.back();
  for (size_t k = 0; k + 1 < codes.size(); ++k) {
    // The midpoint is sum / (2 den); f * 2 den is exact in double (24 + 16 bits), so the check
    // "f above the midpoint" is exact, and stepping down once reaches the float below it.
    const double sum = static_cast<double>(codes[k]) + codes[k + 1];
    const double twice_den = 2.0 * grid.denominator;
    float f = static_cast<float>(sum / twice_den);
    while (static_cast<double>(f) * twice_den > sum) f = std::nextafter(f, -1.0f);
    grid.thresholds.push_back(f);
  }
  grid.codes = std::move(codes);
  return grid;
}

// build_power_value(B, additive) of the official APoT code, exactly, on the integer lattice. The
// base lists a, b, c start as {0} and receive the powers 2^-k listed below; every sum a_i + b_j +
// c_k is a level (duplicates removed) and the levels are divided by the largest sum. Here each 2^-k
// is the integer 2^(K-k) (K = the largest exponent used), so the sums are exact integers: codes =
// the sums, denominator = the largest, both divided by their gcd. Exponents k per list:
//   additive B = 2: a {1,2,3}
//            B = 3: a {1,2,4}, b {3}
//            B = 4: a {1,3,5}, b {2,4,6}
//            B = 5: a {1,3,6}, b {2,4,7}, c {5}
//            B = 6: a {1,4,7}, b {2,5,8}, c {3,6,9}
//   non-additive ("vanilla PoT"): a {1, 2, ..., 2^B - 1}: codes {0, 1, 2, 4, ..., 2^(2^B - 2)}.
// Results: APoT B = 2 {0,1,2,4}/4, B = 3 {0,1,2,3,4,6,8,10}/10,
// B = 4 {0,1,2,3,4,6,8,9,12,16,18,24,32,33,36,48}/48. Valid B: additive 2..6, non-additive 1..4
// (asserted). The official code yields NaN levels for additive B = 1 (only the sum 0, divided by
// 0); 2-bit weights never use it (see weight_grid).
inline PowerGrid build_power_value(int B, bool additive) {
  std::vector<int> a;
  std::vector<int> b;
  std::vector<int> c;
  if (additive) {
    assert(B >= 2 && B <= 6);
    switch (B) {
      case 2:
        a = {1, 2, 3};
        break;
      case 3:
        a = {1, 2, 4};
        b = {3};
        break;
      case 4:
        a = {1, 3, 5};
        b = {2, 4, 6};
        break;
      case 5:
        a = {1, 3, 6};
        b = {2, 4, 7};
        c = {5};
        break;
      default:
        a = {1, 4, 7};
        b = {2, 5, 8};
        c = {3, 6, 9};
        break;
    }
  } else {
    assert(B >= 1 && B <= 4);
    for (int k = 1; k <= (1 << B) - 1; ++k) a.push_back(k);
  }
  int top = 0;
  for (const auto* list : {&a, &b, &c})
    for (int k : *list) top = std::max(top, k);
  // Each base list as integers in units of 2^-top, with its leading 0.
  auto lattice = [top](const std::vector<int>& exponents) {
    std::vector<int64_t> out{0};
    for (int k : exponents) out.push_back(int64_t{1} << (top - k));
    return out;
  };
  std::vector<int64_t> sums;
  for (int64_t x : lattice(a))
    for (int64_t y : lattice(b))
      for (int64_t z : lattice(c)) sums.push_back(x + y + z);
  std::sort(sums.begin(), sums.end());
  sums.erase(std::unique(sums.begin(), sums.end()), sums.end());
  int64_t divisor = 0;
  for (int64_t s : sums) divisor = std::gcd(divisor, s);
  std::vector<int32_t> codes;
  for (int64_t s : sums) codes.push_back(static_cast<int32_t>(s / divisor));
  return make_grid(std::move(codes));
}

// The magnitude grid of b-bit weights (B = b - 1, plus a sign): 2-bit weights are uniform ternary
// {0, 1}/1 whatever `additive` says (the CIFAR and ImageNet code switch PoT off for b <= 2), 3-bit
// build_power_value(2), 4-bit build_power_value(3). bits in 2..5.
inline PowerGrid weight_grid(int bits, bool additive) {
  if (bits == 2) return make_grid({0, 1});
  return build_power_value(bits - 1, additive);
}

// The grid of b-bit (unsigned) activations: build_power_value(b). bits in 2..4 (additive up to 6).
inline PowerGrid activation_grid(int bits, bool additive) {
  return build_power_value(bits, additive);
}

// alpha / denominator, computed once as a float: every quantized value is grid_scale * code.
inline float grid_scale(float alpha, const PowerGrid& grid) {
  return alpha / static_cast<float>(grid.denominator);
}

// The index into grid.codes of the nearest level to a magnitude m in [0, 1] (the projection
// "argmin |m - level|"), for a grid of N + 1 levels: the number of midpoints m lies above. On an
// exact tie the smaller level (so the ternary grid gives nearbyint(m), half to even); NaN gives 0.
// Branch-free with a fixed trip count, so loops over elements vectorize.
template <int N>
inline int project_index(float magnitude, const float* thresholds) {
  int k = 0;
  for (int i = 0; i < N; ++i) k += magnitude > thresholds[i] ? 1 : 0;
  return k;
}

// project_index for any grid (the same count; the trip count known at compile time for the grids
// of 2, 4, 8 and 16 levels).
inline int project_index(float magnitude, const PowerGrid& grid) {
  const float* t = grid.thresholds.data();
  switch (grid.thresholds.size()) {
    case 1:
      return project_index<1>(magnitude, t);
    case 3:
      return project_index<3>(magnitude, t);
    case 7:
      return project_index<7>(magnitude, t);
    case 15:
      return project_index<15>(magnitude, t);
    default:
      break;  // the larger grids (additive B = 5, 6)
  }
  int k = 0;
  for (float threshold : grid.thresholds) k += magnitude > threshold ? 1 : 0;
  return k;
}

// The nearest code to a magnitude m in [0, 1]: THE projection of every APoT / PoT code.
inline int32_t project(float magnitude, const PowerGrid& grid) {
  return grid.codes[static_cast<size_t>(project_index(magnitude, grid))];
}

// ---- weights (§1.2, CIFAR code) -----------------------------------------------------------------

// Per-tensor statistics of the weight normalisation: the mean and the unbiased (N - 1) standard
// deviation, accumulated in double and rounded to float once. Fewer than 2 elements give std = NaN.
struct WeightStats {
  float mean = 0.0f;
  float std = 0.0f;
};

inline WeightStats weight_stats(std::span<const float> w) {
  const size_t n = w.size();
  if (n < 2) return WeightStats{n == 1 ? w[0] : 0.0f, std::nanf("")};
  double sum = 0.0;
  for (float v : w) sum += v;
  const double mean = sum / static_cast<double>(n);
  double squares = 0.0;
  for (float v : w) squares += (v - mean) * (v - mean);
  return WeightStats{static_cast<float>(mean),
                     static_cast<float>(std::sqrt(squares / static_cast<double>(n - 1)))};
}

// u = ((w - mean) / std) / alpha: the weight's position in units of alpha (float32, in this order).
inline float weight_position(float w, const WeightStats& stats, float alpha) {
  return (w - stats.mean) / stats.std / alpha;
}

// The clamped position c = clamp(u, -1, 1).
inline float weight_clamp(float u) { return u > 1.0f ? 1.0f : (u < -1.0f ? -1.0f : u); }

// The signed code of position u: sign(c) * project(|c|), c = clamp(u, -1, 1); level = code /
// denominator.
inline int32_t weight_code_at(float u, const PowerGrid& grid) {
  const float c = weight_clamp(u);
  const int32_t magnitude = project(std::fabs(c), grid);
  return c < 0.0f ? -magnitude : magnitude;
}

// THE weight code function: the code of element w of a tensor with statistics `stats`.
inline int32_t weight_code(float w, const WeightStats& stats, float alpha, const PowerGrid& grid) {
  return weight_code_at(weight_position(w, stats, alpha), grid);
}

// ---- activations (§1.3) -------------------------------------------------------------------------

// v = x / alpha.
inline float activation_position(float x, float alpha) { return x / alpha; }

// The clamped position c = clamp(v, 0, 1). The CIFAR code has no lower clamp, but its nearest-level
// projection maps every negative v to level 0 anyway, so the codes are the same.
inline float activation_clamp(float v) { return v > 1.0f ? 1.0f : (v > 0.0f ? v : 0.0f); }

inline int32_t activation_code_at(float v, const PowerGrid& grid) {
  return project(activation_clamp(v), grid);
}

// THE activation code function.
inline int32_t activation_code(float x, float alpha, const PowerGrid& grid) {
  return activation_code_at(activation_position(x, alpha), grid);
}

// ---- 8-bit first / last layer weights (§1.4) ----------------------------------------------------

// scale = max / 127, where max is the tensor's MAXIMUM (not its absolute maximum).
inline float int8max_scale(float max) { return max / 127.0f; }

// round(w / max * 127), half to even, in float32 in this order (like the official code). No clamp:
// codes never exceed 127 but go below -127 when the tensor's minimum is below -max.
inline int32_t int8max_code(float w, float max) {
  return static_cast<int32_t>(std::nearbyint(w / max * 127.0f));
}

}  // namespace bitgrad::quant::apot
