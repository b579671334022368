// apot.cpp: ApotQuantizer's forward and backward nodes (the custom autograd Functions _pq and _uq
// of the APoT CIFAR quant_layer.py, ALGORITHMS.md §1.2-1.3), built on the scalar codes of
// apot_math.hpp. The activation loops (the hot path: every quantized conv input) are branch-free
// over a grid copied to the stack, so that they vectorize; the weight loops (small tensors) stay
// plain.
#include "quant/apot.hpp"


#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "quant/blocks.hpp"

namespace bitgrad::quant {

namespace {

const char* role_name(Role role) { return role == Role::kWeight ? "weight" : "activation"; }

std::string grid_text(const apot::PowerGrid& grid) {
  std::string out = "{";
  for (size_t i = 0; i < grid.codes.size(); ++i)
    out += (i ? "," : "") + std::to_string(grid.codes[i]);
  return out + "}/" + std::to_string(grid.denominator);
}

}  // namespace

ApotQuantizer::ApotQuantizer(Role role, int bits, bool additive, float alpha_init)
    : TensorQuantizer("ApotQuantizer"), role_(role), bits_(bits), additive_(additive) {
  check_lazy(bits >= 2 && bits <= 4, [&] {
    return std::string("ApotQuantizer: expected bits 2, 3 or 4, got ") + std::to_string(bits);
  });
  check_lazy(std::isfinite(alpha_init) && alpha_init > 0.0f, [&] {
    return "ApotQuantizer: expected a finite alpha_init > 0, got " + std::to_string(alpha_init);
  });
  grid_ = role == Role::kWeight ? apot::weight_grid(bits, additive)
                                : apot::activation_grid(bits, additive);
  alpha_ = Variable(Tensor::full(core::Shape{1}, alpha_init), true);
  register_parameter("alpha", alpha_, nn::ParamKind::kBias);
}

void ApotQuantizer::set_estimator(const Estimator& estimator) {
  const std::string who = std::string("ApotQuantizer (") + (additive_ ? "apot" : "pot") + " " +
                          std::to_string(bits_) + "-bit " + role_name(role_) + ")";
  switch (estimator.kind) {
    case EstimatorKind::kSte:
      break;
    case EstimatorKind::kEwgs:
      check_lazy(std::isfinite(estimator.ewgs_delta) && estimator.ewgs_delta >= 0.0f, [&] {
        return who + ": expected a finite EWGS delta >= 0, got " +
               std::to_string(estimator.ewgs_delta);
      });
      break;
    case EstimatorKind::kDsq:
    case EstimatorKind::kDaq: {
      // Only the ternary grid is uniform; its step is 1 in the clamped position c.
      const bool ternary = role_ == Role::kWeight && bits_ == 2;
      check_lazy(ternary, [&] {
        return who + ": estimator " + estimator_name(estimator.kind) +
               " needs a uniform grid, but the grid " + grid_text(grid_) +
               " is not uniform (supported: ste, ewgs; dsq/daq only for 2-bit ternary weights)";
      });
      if (estimator.kind == EstimatorKind::kDsq)
        check_lazy(estimator.dsq_alpha > 0.0f && estimator.dsq_alpha < 1.0f, [&] {
          return who + ": expected DSQ alpha in (0, 1), got " + std::to_string(estimator.dsq_alpha);
        });
      else
        check_lazy(estimator.daq_sigma > 0.0f && estimator.daq_temperature > 0.0f, [&] {
          return who + ": expected DAQ sigma > 0 and temperature > 0, got sigma " +
                 std::to_string(estimator.daq_sigma) + ", temperature " +
                 std::to_string(estimator.daq_temperature);
        });
      break;
    }
  }
  estimator_ = estimator;
}

float ApotQuantizer::checked_alpha() const {
  const float alpha = alpha_.value().item();
  check_lazy(std::isfinite(alpha) && alpha > 0.0f, [&] {
    return std::string("ApotQuantizer (") + role_name(role_) +
           "): expected alpha finite and > 0, got " + std::to_string(alpha);
  });
  return alpha;
}

namespace {

apot::WeightStats checked_stats(const Tensor& w) {
  check_lazy(w.numel() >= 2, [&] {
    return "ApotQuantizer (weight): expected a weight tensor of at least 2 elements (unbiased "
           "std), got " +
           w.shape().to_string();
  });
  const apot::WeightStats stats = apot::weight_stats(w.span());
  check_lazy(std::isfinite(stats.mean) && std::isfinite(stats.std) && stats.std > 0.0f, [&] {
    return "ApotQuantizer (weight): expected weights with a finite mean and a finite std > 0, got "
           "mean " +
           std::to_string(stats.mean) + ", std " + std::to_string(stats.std);
  });
  return stats;
}

}  // namespace

Variable ApotQuantizer::fake_quant(const Variable& x) {
  return role_ == Role::kWeight ? fake_quant_weight(x) : fake_quant_activation(x);
}

// The CIFAR _pq Function: unclipped weight gradient ("calibrated gradient"), divided by the
// detached std of the normalisation; alpha gradient sign(u) outside [-1, 1], q - u inside.
Variable ApotQuantizer::fake_quant_weight(const Variable& x) {
  const Tensor w = x.value().contiguous();
  const apot::WeightStats stats = checked_stats(w);
  const float alpha = checked_alpha();
  const float scale = apot::grid_scale(alpha, grid_);
  Tensor out = Tensor::empty(w.shape());
  const float* pw = w.data();
  float* po = out.data();
  const int64_t n = w.numel();
  block_sum(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      po[i] = scale * static_cast<float>(apot::weight_code(pw[i], stats, alpha, grid_));
    return 0.0;
  });
  return autograd::make_node(
      std::move(out), {x, alpha_}, additive_ ? "apot_weight" : "pot_weight",
      [w, stats, alpha, grid = grid_, est = estimator_](
          const Tensor& grad, const std::vector<bool>& needs) -> std::vector<Tensor> {
        const Tensor g = grad.contiguous();
        const float* pg = g.data();
        const float* pw = w.data();
        const float den = static_cast<float>(grid.denominator);
        Tensor dx = needs[0] ? Tensor::empty(w.shape()) : Tensor();
        float* pdx = needs[0] ? dx.data() : nullptr;
        const double dalpha = block_sum(w.numel(), [&](int64_t begin, int64_t end) {
          double sum = 0.0;
          for (int64_t i = begin; i < end; ++i) {
            const float u = apot::weight_position(pw[i], stats, alpha);
            const float q = static_cast<float>(apot::weight_code_at(u, grid)) / den;
            const bool clipped = std::fabs(u) > 1.0f;
            if (pdx)
              pdx[i] =
                  (clipped ? pg[i] : estimator_grad(est, apot::weight_clamp(u), q, 1.0f, pg[i])) /
                  stats.std;
            const float s = clipped ? (u > 0.0f ? 1.0f : -1.0f) : q - u;
            sum += static_cast<double>(pg[i]) * s;
          }
          return sum;
        });
        Tensor da = needs[1] ? Tensor::full(core::Shape{1}, static_cast<float>(dalpha)) : Tensor();
        return {dx, da};
      });
}

namespace {

// The grid as the activation loops use it, copied into the loop's own stack frame (so stores to
// the output cannot alias it and the element loops vectorize). N = the number of thresholds when
// it is 1, 3, 7 or 15 (fixed trip count), 0 for any other grid (counted at run time).
constexpr size_t kMaxLevels = 64;  // build_power_value(6) has at most 4 * 4 * 4 sums

template <int N>
struct LocalGrid {
  std::array<float, N> thresholds{};
  std::array<float, kMaxLevels> value{};  // scale * code: the output
  std::array<float, kMaxLevels> level{};  // code / den: q in the alpha-normalised domain
  const apot::PowerGrid* grid = nullptr;  // N = 0 only

  LocalGrid(const apot::PowerGrid& g, float scale) {
    assert(g.codes.size() <= kMaxLevels && (N == 0 || g.thresholds.size() == size_t{N}));
    std::copy_n(g.thresholds.begin(), N, thresholds.begin());
    const float den = static_cast<float>(g.denominator);
    for (size_t k = 0; k < g.codes.size(); ++k) {
      value[k] = scale * static_cast<float>(g.codes[k]);
      level[k] = static_cast<float>(g.codes[k]) / den;
    }
    grid = &g;
  }
  int index(float c) const {
    if constexpr (N == 0) return apot::project_index(c, *grid);
    return apot::project_index<N>(c, thresholds.data());
  }
};

// Calls f(std::integral_constant<int, N>{}) with the grid's N (see LocalGrid).
template <typename F>
void with_grid_size(const apot::PowerGrid& grid, F f) {
  switch (grid.thresholds.size()) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    case 7:
      return f(std::integral_constant<int, 7>{});
    case 15:
      return f(std::integral_constant<int, 15>{});
    default:
      return f(std::integral_constant<int, 0>{});
  }
}

// out = value[index(clamp(x / alpha))] over [begin, end); returns the count of non-finite inputs.
template <int N>
double activation_forward(const float* px, float* po, int64_t begin, int64_t end, float alpha,
                          const LocalGrid<N>& g) {
  int64_t bad = 0;
  for (int64_t i = begin; i < end; ++i) {
    const float x = px[i];
    bad += std::isfinite(x) ? 0 : 1;
    po[i] = g.value[static_cast<size_t>(
        g.index(apot::activation_clamp(apot::activation_position(x, alpha))))];
  }
  return static_cast<double>(bad);
}

// dx over [begin, end) (when kWithDx) and the partial alpha gradient. Per block: a vectorizable
// pass writes dx and each element's alpha term (float), then the terms are added in double, in
// four lanes combined in a fixed order (deterministic).
template <int N, EstimatorKind K, bool kWithDx>
double activation_backward(const float* px, const float* pg, float* pdx, int64_t begin, int64_t end,
                           float alpha, const LocalGrid<N>& grid, const Estimator& estimator) {
  const LocalGrid<N> g = grid;  // local copies: the stores below cannot alias them
  Estimator est = estimator;
  est.kind = K;  // a compile-time estimator: estimator_grad's switch folds away
  constexpr int64_t kBlock = 256;
  std::array<float, kBlock> vs;  // v = x / alpha
  std::array<float, kBlock> cs;  // c = clamp(v, 0, 1)
  std::array<float, kBlock> qs;  // q = level of c
  std::array<float, kBlock> terms;
  std::array<double, 4> acc{};
  for (int64_t b0 = begin; b0 < end; b0 += kBlock) {
    const int64_t m = std::min(kBlock, end - b0);
    const float* x = px + b0;
    const float* gr = pg + b0;
    for (int64_t j = 0; j < m; ++j) {
      const size_t k = static_cast<size_t>(j);
      vs[k] = apot::activation_position(x[j], alpha);
      cs[k] = apot::activation_clamp(vs[k]);
      qs[k] = g.level[static_cast<size_t>(g.index(cs[k]))];
    }
    for (int64_t j = 0; j < m; ++j) {
      const size_t k = static_cast<size_t>(j);
      const bool above = vs[k] > 1.0f;
      if constexpr (kWithDx)
        pdx[b0 + j] = above ? 0.0f : estimator_grad(est, cs[k], qs[k], 1.0f, gr[j]);
      terms[k] = above ? gr[j] : gr[j] * (qs[k] - vs[k]);
    }
    for (int64_t j = 0; j < m; ++j)
      acc[static_cast<size_t>(j & 3)] += terms[static_cast<size_t>(j)];
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

template <int N, bool kWithDx>
double activation_backward_kind(const float* px, const float* pg, float* pdx, int64_t begin,
                                int64_t end, float alpha, const LocalGrid<N>& g,
                                const Estimator& est) {
  switch (est.kind) {
    case EstimatorKind::kSte:
      return activation_backward<N, EstimatorKind::kSte, kWithDx>(px, pg, pdx, begin, end, alpha, g,
                                                                  est);
    case EstimatorKind::kEwgs:
      return activation_backward<N, EstimatorKind::kEwgs, kWithDx>(px, pg, pdx, begin, end, alpha,
                                                                   g, est);
    case EstimatorKind::kDsq:
      return activation_backward<N, EstimatorKind::kDsq, kWithDx>(px, pg, pdx, begin, end, alpha, g,
                                                                  est);
    case EstimatorKind::kDaq:
      return activation_backward<N, EstimatorKind::kDaq, kWithDx>(px, pg, pdx, begin, end, alpha, g,
                                                                  est);
  }
  return 0.0;
}

template <int N>
double activation_backward_any(const float* px, const float* pg, float* pdx, int64_t begin,
                               int64_t end, float alpha, const LocalGrid<N>& g,
                               const Estimator& est) {
  if (pdx != nullptr)
    return activation_backward_kind<N, true>(px, pg, pdx, begin, end, alpha, g, est);
  return activation_backward_kind<N, false>(px, pg, pdx, begin, end, alpha, g, est);
}

}  // namespace

// The CIFAR _uq Function: gradient to x zero above alpha; alpha gradient 1 above, q - v below.
Variable ApotQuantizer::fake_quant_activation(const Variable& x) {
  const Tensor in = x.value().contiguous();
  const float alpha = checked_alpha();
  const float scale = apot::grid_scale(alpha, grid_);
  Tensor out = Tensor::empty(in.shape());
  const float* px = in.data();
  float* po = out.data();
  double bad = 0.0;
  with_grid_size(grid_, [&](auto n) {
    bad = block_sum(in.numel(), [&](int64_t begin, int64_t end) {
      const LocalGrid<decltype(n)::value> g(grid_, scale);
      return activation_forward(px, po, begin, end, alpha, g);
    });
  });
  check_lazy(bad == 0.0, [&] {
    return "ApotQuantizer (activation): expected finite inputs, got " +
           std::to_string(static_cast<int64_t>(bad)) + " non-finite values in " +
           in.shape().to_string();
  });
  return autograd::make_node(
      std::move(out), {x, alpha_}, additive_ ? "apot_activation" : "pot_activation",
      [in, alpha, scale, grid = grid_, est = estimator_](
          const Tensor& grad, const std::vector<bool>& needs) -> std::vector<Tensor> {
        const Tensor g = grad.contiguous();
        Tensor dx = needs[0] ? Tensor::empty(in.shape()) : Tensor();
        float* pdx = needs[0] ? dx.data() : nullptr;
        double dalpha = 0.0;
        with_grid_size(grid, [&](auto n) {
          dalpha = block_sum(in.numel(), [&](int64_t begin, int64_t end) {
            const LocalGrid<decltype(n)::value> local(grid, scale);
            return activation_backward_any(in.data(), g.data(), pdx, begin, end, alpha, local, est);
          });
        });
        Tensor da = needs[1] ? Tensor::full(core::Shape{1}, static_cast<float>(dalpha)) : Tensor();
        return {dx, da};
      });
}

std::vector<int32_t> ApotQuantizer::levels() const {
  std::vector<int32_t> out;
  if (role_ == Role::kWeight)
    for (auto it = grid_.codes.rbegin(); it != grid_.codes.rend(); ++it)
      if (*it != 0) out.push_back(-*it);
  out.insert(out.end(), grid_.codes.begin(), grid_.codes.end());
  return out;
}

CodeMap ApotQuantizer::code_map() const {
  CodeMap map;
  map.scale = {apot::grid_scale(checked_alpha(), grid_)};
  map.zero_point = {0};
  map.levels = levels();
  return map;
}

Encoded ApotQuantizer::encode(const Tensor& x) const {
  const Tensor c = x.contiguous();
  Encoded enc;
  enc.map = code_map();
  const float alpha = checked_alpha();
  enc.codes.resize(static_cast<size_t>(c.numel()));
  const std::span<const float> values = c.span();
  if (role_ == Role::kWeight) {
    const apot::WeightStats stats = checked_stats(c);
    for (size_t i = 0; i < values.size(); ++i)
      enc.codes[i] = apot::weight_code(values[i], stats, alpha, grid_);
  } else {
    int32_t* codes = enc.codes.data();
    parallel_blocks(static_cast<int64_t>(values.size()), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) codes[i] = apot::activation_code(values[static_cast<size_t>(i)], alpha, grid_);
    });
  }
  return enc;
}

core::Json ApotQuantizer::describe() const {
  core::Json out = core::Json::object();
  out.set("kind", additive_ ? "apot" : "pot");
  out.set("bits", bits_);
  out.set("role", role_name(role_));
  out.set("granularity", "tensor");
  out.set("estimator", estimator_name(estimator_.kind));
  if (estimator_.kind == EstimatorKind::kEwgs) out.set("ewgs_delta", estimator_.ewgs_delta);
  out.set("denominator", grid_.denominator);
  core::Json codes = core::Json::array();
  for (int32_t code : levels()) codes.push_back(code);
  out.set("levels", std::move(codes));
  if (role_ == Role::kWeight) out.set("weight_normalisation", "mean_std_unbiased");
  return out;
}

}  // namespace bitgrad::quant
