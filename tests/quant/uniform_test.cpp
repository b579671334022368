// uniform_test.cpp: the four uniform quantizers (min-max, learned interval, PACT, LSQ): outputs on
// their level sets bit for bit (value == scale * (code - zero_point), codes in CodeMap::levels) and
// encode() == the codes behind fake_quant; forward and gradients against the PyTorch fixture
// (tests/golden/make_golden_uniform.py); each pseudo-gradient against its formula on hand-picked
// inputs (in range, clipped, at a level, between levels, ties); STE / EWGS / DSQ / DAQ through the
// quantizers; the bias-corrected min-max EMA; errors for bad options.
#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.hpp"
#include "core/rng.hpp"
#include "core/safetensors.hpp"
#include "quant/lint.hpp"
#include "quant/lsq.hpp"
#include "quant/minmax.hpp"
#include "quant/pact.hpp"
#include "test_util.hpp"

namespace {

using bitgrad::autograd::Variable;
using bitgrad::core::SafetensorsFile;
using bitgrad::core::Shape;
using bitgrad::core::Tensor;
namespace q = bitgrad::quant;
using bitgrad::test::error_message;
using q::Estimator;
using q::EstimatorKind;
using q::Granularity;
using q::Role;
using Range = std::pair<float, float>;

// Value tolerances of the brief: |got - ref| <= abs + rel |ref| per element.
constexpr double kValueTol = 1e-6;
constexpr double kGradTol = 1e-5;

const SafetensorsFile& fixture() {
  static const SafetensorsFile f = bitgrad::core::read_safetensors(std::string(BITGRAD_GOLDEN_DIR) +
                                                                   "/quant_uniform.safetensors");
  return f;
}

Tensor vec(std::vector<float> v) { return Tensor::from(Shape{static_cast<int64_t>(v.size())}, v); }

void expect_close(const std::string& what, const Tensor& got, const Tensor& ref, double tol) {
  INFO(what << ": got " << got.shape().to_string() << ", ref " << ref.shape().to_string());
  REQUIRE(got.defined());
  REQUIRE(got.numel() == ref.numel());
  const std::vector<float> g = got.to_vector(), r = ref.to_vector();
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double excess = std::abs(double(g[i]) - r[i]) - tol * (1.0 + std::abs(double(r[i])));
    if (i == 0 || excess > worst) {
      worst = excess;
      at = i;
    }
  }
  INFO("worst element " << at << ": got " << g[at] << ", ref " << r[at] << ", tolerance " << tol);
  CHECK(worst <= 0.0);
}

// Runs fake_quant(x) and backward(grad_out) from fresh gradients; returns {out, dx}.
struct Run {
  Tensor out;
  Tensor dx;
};
Run run(q::TensorQuantizer& qz, const Tensor& x, const Tensor& grad_out) {
  qz.zero_grad();
  Variable xv(x.clone(), true);
  const Variable y = qz.fake_quant(xv);
  y.backward(grad_out);
  return {y.value(), xv.grad()};
}

// out must equal scale * (code - zero_point) bit for bit with enc's codes (per channel: dimension
// 0), every code must be in the ascending `levels`, and `levels` must be `expected_levels`.
void expect_on_level_set(const Tensor& out, const q::Encoded& enc,
                         const std::vector<int32_t>& expected_levels) {
  REQUIRE(enc.codes.size() == static_cast<size_t>(out.numel()));
  REQUIRE(enc.map.levels == expected_levels);
  REQUIRE(!enc.map.scale.empty());
  REQUIRE(enc.map.scale.size() == enc.map.zero_point.size());
  const std::vector<float> v = out.to_vector();
  const size_t per = v.size() / enc.map.scale.size();
  for (size_t i = 0; i < v.size(); ++i) {
    const size_t c = i / per;
    const int32_t code = enc.codes[i];
    const float expect = enc.map.scale[c] * static_cast<float>(code - enc.map.zero_point[c]);
    const bool on_level = std::binary_search(expected_levels.begin(), expected_levels.end(), code);
    if (on_level && std::bit_cast<uint32_t>(v[i]) == std::bit_cast<uint32_t>(expect)) continue;
    INFO("element " << i << " channel " << c << ": code " << code << ", value " << v[i]
                    << ", scale * (code - zero_point) " << expect);
    REQUIRE(on_level);
    REQUIRE(std::bit_cast<uint32_t>(v[i]) == std::bit_cast<uint32_t>(expect));
  }
}

std::vector<int32_t> range_levels(int32_t lo, int32_t hi, int32_t stride = 1) {
  std::vector<int32_t> out;
  for (int32_t c = lo; c <= hi; c += stride) out.push_back(c);
  return out;
}

Tensor random_tensor(const Shape& shape, float scale, float shift, uint64_t seed) {
  bitgrad::core::Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(shape.numel()));
  for (float& e : v) e = shift + scale * rng.normal();
  return Tensor::from(shape, v);
}

Estimator ewgs(float delta) {
  Estimator e;
  e.kind = EstimatorKind::kEwgs;
  e.ewgs_delta = delta;
  return e;
}
Estimator dsq(float alpha) {
  Estimator e;
  e.kind = EstimatorKind::kDsq;
  e.dsq_alpha = alpha;
  return e;
}
Estimator daq(float sigma, float temperature) {
  Estimator e;
  e.kind = EstimatorKind::kDaq;
  e.daq_sigma = sigma;
  e.daq_temperature = temperature;
  return e;
}

// Independent transcriptions of the estimator formulas (ALGORITHMS.md §7.1, §7.2), in units of the
// grid step: t = position / step.
double dsq_factor(double t, double alpha) {
  const double k = std::log(2.0 / alpha - 1.0);
  const double s = 1.0 / (1.0 - alpha);
  const double th = std::tanh(k * (t - (std::floor(t) + 0.5)));
  return 0.5 * s * k * (1.0 - th * th);
}
double daq_factor(double t, double sigma, double temp) {
  const double f = t - std::floor(t);
  const double nearest = f <= 0.5 ? 0.0 : 1.0;
  auto score = [&](double qv) {
    return std::exp(-std::abs(f - qv)) *
           std::exp(-(qv - nearest) * (qv - nearest) / (sigma * sigma));
  };
  const double c = 1.0 / (std::exp(temp) - 1.0);
  const double sig = 1.0 / (1.0 + std::exp(-temp));
  return (1.0 + 2.0 * c) * sig * (1.0 - sig) * temp * (score(0) + score(1)) /
         std::abs(score(0) - score(1));
}
double sign(double g) { return g > 0 ? 1.0 : (g < 0 ? -1.0 : 0.0); }

std::vector<std::string> buffer_names(const bitgrad::nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& b : m.named_buffers()) out.push_back(b.name);
  return out;
}

// One bit-exact level-set check for a quantizer on x.
void level_set_case(q::TensorQuantizer& qz, const Tensor& x, const std::vector<int32_t>& levels) {
  const Variable y = qz.fake_quant(Variable(x));
  expect_on_level_set(y.value(), qz.encode(x), levels);
}

}  // namespace

// ---- level sets and the integer-code contract ---------------------------------------------------

TEST_CASE("uniform: every output lies on the level set and encode gives its codes",
          "[quant][uniform]") {
  const Tensor w = random_tensor(Shape{6, 4, 3, 3}, 0.3f, 0.05f, 11);
  const Tensor a = random_tensor(Shape{2, 4, 5, 5}, 1.0f, 0.4f, 12);  // some negative, some large
  for (int bits : {2, 3, 4, 8}) {
    INFO("bits " << bits);
    const int32_t top = (1 << bits) - 1;
    {
      q::MinMaxQuantizer t(Role::kWeight, bits, Granularity::kPerTensor);
      level_set_case(t, w, range_levels(0, top));
      q::MinMaxQuantizer c(Role::kWeight, bits, Granularity::kPerChannel);
      level_set_case(c, w, range_levels(0, top));
      CHECK(c.encode(w).map.scale.size() == 6);
      q::MinMaxQuantizer act(Role::kActivation, bits, Granularity::kPerTensor);
      level_set_case(act, a, range_levels(0, top));  // training: updates, then encode uses it
    }
    {
      q::LearnedIntervalQuantizer lw(Role::kWeight, bits);
      lw.calibrate(w);
      level_set_case(lw, w, range_levels(-top, top, 2));
      q::LearnedIntervalQuantizer la(Role::kActivation, bits);
      la.upper().set_value(vec({1.7f}));
      level_set_case(la, a, range_levels(0, top));
    }
    {
      q::PactQuantizer p(bits, 1.3f);
      level_set_case(p, a, range_levels(0, top));
    }
    {
      q::LsqQuantizer lw(Role::kWeight, bits);
      lw.calibrate(w);
      level_set_case(lw, w, range_levels(-(1 << (bits - 1)), (1 << (bits - 1)) - 1));
      q::LsqQuantizer la(Role::kActivation, bits);
      la.calibrate(a);
      level_set_case(la, a, range_levels(0, top));
    }
  }
}

TEST_CASE("uniform: 2-bit learned-interval weights are {-1, -1/3, 1/3, 1} as codes {-3,-1,1,3} / 3",
          "[quant][uniform]") {
  q::LearnedIntervalQuantizer qw(Role::kWeight, 2);  // lower -1, upper 1
  const Tensor x = vec({-5.0f, -0.5f, -0.1f, 0.1f, 0.5f, 5.0f});
  const Tensor out = qw.fake_quant(Variable(x)).value();
  const q::Encoded enc = qw.encode(x);
  CHECK(enc.codes == std::vector<int32_t>{-3, -1, -1, 1, 1, 3});
  REQUIRE(enc.map.scale.size() == 1);
  CHECK(enc.map.scale[0] == 1.0f / 3.0f);
  CHECK(enc.map.zero_point[0] == 0);
  CHECK(out.to_vector() ==
        std::vector<float>{-1.0f, -1.0f / 3.0f, -1.0f / 3.0f, 1.0f / 3.0f, 1.0f / 3.0f, 1.0f});
}

TEST_CASE("uniform: min-max keeps near-constant channels exact and the zero point small",
          "[quant][uniform]") {
  // Channel 0 constant 5, channel 1 all zeros, channel 2 an ordinary range.
  const Tensor w = Tensor::from(
      Shape{3, 4}, {5.0f, 5.0f, 5.0f, 5.0f, 0.0f, 0.0f, 0.0f, 0.0f, -1.0f, -0.2f, 0.4f, 2.0f});
  q::MinMaxQuantizer c(Role::kWeight, 4, Granularity::kPerChannel);
  const Tensor out = c.fake_quant(Variable(w)).value();
  const q::Encoded enc = c.encode(w);
  expect_on_level_set(out, enc, range_levels(0, 15));
  for (int i = 0; i < 4; ++i) CHECK(out.at({0, i}) == Approx(5.0f).epsilon(1e-4));
  for (int i = 0; i < 4; ++i) CHECK(out.at({1, i}) == 0.0f);
  CHECK(std::abs(enc.map.zero_point[0]) < (1 << 24));
  CHECK(out.at({2, 0}) == Approx(-1.0f).epsilon(1e-6));
  CHECK(out.at({2, 3}) == Approx(2.0f).epsilon(1e-6));
  // GDFQ's grid contains 0 exactly when m <= 0 <= M.
  q::MinMaxQuantizer t(Role::kWeight, 2, Granularity::kPerTensor);
  const Tensor z = t.fake_quant(Variable(vec({-1.0f, 0.0f, 2.2f}))).value();
  CHECK(z.at({1}) == 0.0f);
}

// ---- golden: PyTorch references -----------------------------------------------------------------

TEST_CASE("uniform golden: fixture records its generator", "[quant][uniform][golden]") {
  const SafetensorsFile& f = fixture();
  CHECK(f.metadata.at("generator") == "tests/golden/make_golden_uniform.py");
  CHECK(f.metadata.at("script_sha256").size() == 64);
  CHECK(f.metadata.count("torch_version") == 1);
}

TEST_CASE("uniform golden: min-max weights, per tensor and per channel",
          "[quant][uniform][golden]") {
  const SafetensorsFile& f = fixture();
  for (int bits : {2, 4}) {
    for (bool per_channel : {false, true}) {
      const std::string key =
          "minmax.w" + std::to_string(bits) + (per_channel ? "_channel" : "_tensor");
      INFO(key);
      q::MinMaxQuantizer qz(Role::kWeight, bits,
                            per_channel ? Granularity::kPerChannel : Granularity::kPerTensor);
      const Tensor x = f.tensor(key + ".x");
      const Run r = run(qz, x, f.tensor(key + ".grad_out"));
      expect_close(key + ".out", r.out, f.tensor(key + ".out"), kValueTol);
      expect_close(key + ".dx", r.dx, f.tensor(key + ".dx"), kGradTol);
      expect_on_level_set(r.out, qz.encode(x), range_levels(0, (1 << bits) - 1));
    }
  }
}

TEST_CASE("uniform golden: min-max activations with the bias-corrected EMA, then eval",
          "[quant][uniform][golden]") {
  const SafetensorsFile& f = fixture();
  const float momentum = std::stof(f.metadata.at("ema_momentum"));
  for (int bits : {2, 4}) {
    const std::string key = "minmax.a" + std::to_string(bits);
    INFO(key);
    q::MinMaxQuantizer qz(Role::kActivation, bits, Granularity::kPerTensor, momentum);
    qz.fake_quant(Variable(f.tensor(key + ".x0")));
    qz.fake_quant(Variable(f.tensor(key + ".x1")));
    const Tensor x2 = f.tensor(key + ".x2");
    const Run r = run(qz, x2, f.tensor(key + ".grad_out"));
    const auto [lo, hi] = qz.activation_range();
    expect_close(key + ".range", vec({lo, hi}), f.tensor(key + ".range"), kValueTol);
    expect_close(key + ".out", r.out, f.tensor(key + ".out"), kValueTol);
    expect_close(key + ".dx", r.dx, f.tensor(key + ".dx"), kGradTol);
    expect_on_level_set(r.out, qz.encode(x2), range_levels(0, (1 << bits) - 1));
    qz.eval();
    const Tensor xe = f.tensor(key + ".x_eval");
    const Tensor out_eval = qz.fake_quant(Variable(xe)).value();
    expect_close(key + ".out_eval", out_eval, f.tensor(key + ".out_eval"), kValueTol);
    expect_on_level_set(out_eval, qz.encode(xe), range_levels(0, (1 << bits) - 1));
    CHECK(qz.describe()["ema_steps"].as_int64() == 3);
  }
}

TEST_CASE("uniform golden: learned interval (EWGS), weights and activations, STE and EWGS",
          "[quant][uniform][golden]") {
  const SafetensorsFile& f = fixture();
  const float delta = std::stof(f.metadata.at("ewgs_delta"));
  for (const std::string c : {"w2", "w4", "a2", "a4", "w2_ewgs", "a2_ewgs"}) {
    const std::string key = "lint." + c;
    INFO(key);
    const bool weight = c[0] == 'w';
    const int bits = c[1] - '0';
    q::LearnedIntervalQuantizer qz(weight ? Role::kWeight : Role::kActivation, bits);
    if (c.find("ewgs") != std::string::npos) qz.set_estimator(ewgs(delta));
    qz.lower().set_value(f.tensor(key + ".lower"));
    qz.upper().set_value(f.tensor(key + ".upper"));
    const Tensor x = f.tensor(key + ".x");
    const Run r = run(qz, x, f.tensor(key + ".grad_out"));
    expect_close(key + ".out", r.out, f.tensor(key + ".out"), kValueTol);
    expect_close(key + ".dx", r.dx, f.tensor(key + ".dx"), kGradTol);
    expect_close(key + ".dlower", qz.lower().grad(), f.tensor(key + ".dlower"), kGradTol);
    expect_close(key + ".dupper", qz.upper().grad(), f.tensor(key + ".dupper"), kGradTol);
    const int32_t top = (1 << bits) - 1;
    expect_on_level_set(r.out, qz.encode(x),
                        weight ? range_levels(-top, top, 2) : range_levels(0, top));
    qz.calibrate(x);
    expect_close(key + ".calib_lower", qz.lower().value(), f.tensor(key + ".calib_lower"),
                 kValueTol);
    expect_close(key + ".calib_upper", qz.upper().value(), f.tensor(key + ".calib_upper"),
                 kValueTol);
  }
}

TEST_CASE("uniform golden: PACT", "[quant][uniform][golden]") {
  const SafetensorsFile& f = fixture();
  for (int bits : {2, 4}) {
    const std::string key = "pact.a" + std::to_string(bits);
    INFO(key);
    q::PactQuantizer qz(bits);
    qz.alpha().set_value(f.tensor(key + ".alpha"));
    const Tensor x = f.tensor(key + ".x");
    const Run r = run(qz, x, f.tensor(key + ".grad_out"));
    expect_close(key + ".out", r.out, f.tensor(key + ".out"), kValueTol);
    expect_close(key + ".dx", r.dx, f.tensor(key + ".dx"), kGradTol);
    expect_close(key + ".dalpha", qz.alpha().grad(), f.tensor(key + ".dalpha"), kGradTol);
    expect_on_level_set(r.out, qz.encode(x), range_levels(0, (1 << bits) - 1));
  }
}

TEST_CASE("uniform golden: LSQ weights and activations", "[quant][uniform][golden]") {
  const SafetensorsFile& f = fixture();
  for (const std::string c : {"w2", "w4", "a2", "a4"}) {
    const std::string key = "lsq." + c;
    INFO(key);
    const bool weight = c[0] == 'w';
    const int bits = c[1] - '0';
    q::LsqQuantizer qz(weight ? Role::kWeight : Role::kActivation, bits);
    qz.step().set_value(f.tensor(key + ".step"));
    const Tensor x = f.tensor(key + ".x");
    const Run r = run(qz, x, f.tensor(key + ".grad_out"));
    expect_close(key + ".out", r.out, f.tensor(key + ".out"), kValueTol);
    expect_close(key + ".dx", r.dx, f.tensor(key + ".dx"), kGradTol);
    expect_close(key + ".dstep", qz.step().grad(), f.tensor(key + ".dstep"), kGradTol);
    expect_on_level_set(r.out, qz.encode(x),
                        weight ? range_levels(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
                               : range_levels(0, (1 << bits) - 1));
    qz.calibrate(x);
    expect_close(key + ".calib_step", qz.step().value(), f.tensor(key + ".calib_step"), kValueTol);
  }
}

// ---- pseudo-gradients, analytically -------------------------------------------------------------

TEST_CASE("uniform: min-max backward is pure STE, the estimator only inside the range",
          "[quant][uniform][grad]") {
  // Weights: every element passes g unchanged (GDFQ: no clip mask).
  q::MinMaxQuantizer qw(Role::kWeight, 2, Granularity::kPerTensor);
  const Tensor g = vec({0.5f, -1.0f, 2.0f, -0.25f, 3.0f});
  const Run rw = run(qw, vec({-1.0f, -0.3f, 0.0f, 0.45f, 1.0f}), g);
  CHECK(rw.dx.to_vector() == g.to_vector());

  // Activations, momentum 0: the range is exactly the last batch's, [0, 3] -> scale 1, zero point
  // 0.
  q::MinMaxQuantizer qa(Role::kActivation, 2, Granularity::kPerTensor, 0.0f);
  qa.fake_quant(Variable(vec({0.0f, 1.0f, 3.0f})));
  qa.eval();
  // Clipped below, between levels, a tie (1.5 -> 2), near a level, at the top, clipped above.
  const Tensor x = vec({-2.0f, 0.2f, 1.5f, 2.7f, 3.0f, 5.0f});
  const Tensor gx = vec({1.0f, -2.0f, 0.5f, 4.0f, -1.0f, 2.0f});
  const Run ste = run(qa, x, gx);
  CHECK(ste.out.to_vector() == std::vector<float>{0.0f, 0.0f, 2.0f, 3.0f, 3.0f, 3.0f});
  CHECK(ste.dx.to_vector() == gx.to_vector());

  qa.set_estimator(dsq(0.4f));
  const Run soft = run(qa, x, gx);
  const std::vector<float> xs = x.to_vector(), gs = gx.to_vector(), d = soft.dx.to_vector();
  CHECK(d[0] == gs[0]);  // outside [-1/2, 3 + 1/2]: plain STE
  CHECK(d[5] == gs[5]);
  for (int i = 1; i <= 4; ++i) {
    INFO("element " << i);
    CHECK(d[i] == Approx(gs[i] * dsq_factor(xs[i], 0.4)).epsilon(1e-5));
  }

  qa.set_estimator(ewgs(0.5f));
  const Run ew = run(qa, x, gx);
  const std::vector<float> codes = {0.0f, 0.0f, 2.0f, 3.0f, 3.0f, 3.0f};
  for (int i = 1; i <= 4; ++i) {
    INFO("element " << i);
    const double expect = gs[i] * (1.0 + 0.5 * sign(gs[i]) * (xs[i] / 3.0 - codes[i] / 3.0));
    CHECK(ew.dx.to_vector()[i] == Approx(expect).epsilon(1e-6));
  }
}

TEST_CASE("uniform: learned-interval gradients to x, lower and upper (STE)",
          "[quant][uniform][grad]") {
  q::LearnedIntervalQuantizer qz(Role::kWeight, 2);
  qz.lower().set_value(vec({-1.0f}));
  qz.upper().set_value(vec({1.0f}));
  // Clipped below, at the lower bound (a level), between levels, at a level (z = 2/3), near the
  // top, clipped above.
  const std::vector<double> x = {-1.5, -1.0, -0.2, 1.0 / 3.0, 0.9, 2.0};
  const std::vector<double> g = {0.7, -1.1, 0.4, 2.0, -0.6, 1.3};
  std::vector<float> xf(x.begin(), x.end()), gf(g.begin(), g.end());
  const Run r = run(qz, vec(xf), vec(gf));
  CHECK(r.out.to_vector() ==
        std::vector<float>{-1.0f, -1.0f, -1.0f / 3.0f, 1.0f / 3.0f, 1.0f, 1.0f});
  const double l = -1.0, u = 1.0, w = u - l;
  double dl = 0.0, du = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double z = (static_cast<double>(xf[i]) - l) / w;
    const bool inside = z >= 0.0 && z <= 1.0;
    const double gz = 2.0 * g[i];  // out = 2 D - 1
    INFO("element " << i);
    CHECK(r.dx.to_vector()[i] == Approx(inside ? gz / w : 0.0).margin(1e-7));
    if (inside) {
      dl += -gz * (u - xf[i]) / (w * w);
      du += -gz * (xf[i] - l) / (w * w);
    }
  }
  CHECK(qz.lower().grad().item() == Approx(dl).epsilon(1e-6));
  CHECK(qz.upper().grad().item() == Approx(du).epsilon(1e-6));
  // Clipped elements give zero gradient to lower and upper too: move the clipped ones further out.
  run(qz, vec({-9.0f, -1.0f, -0.2f, 1.0f / 3.0f, 0.9f, 9.0f}), vec(gf));
  CHECK(qz.lower().grad().item() == Approx(dl).epsilon(1e-6));
  CHECK(qz.upper().grad().item() == Approx(du).epsilon(1e-6));
}

TEST_CASE("uniform: EWGS on the learned interval is g (1 + delta sign(g) (x - x_q))",
          "[quant][uniform][grad]") {
  const float delta = 0.5f;
  // Activations with l = 0, u = 1: the normalised domain is x itself.
  q::LearnedIntervalQuantizer qz(Role::kActivation, 2);
  qz.set_estimator(ewgs(delta));
  const std::vector<float> x = {-0.2f, 0.1f, 0.5f, 2.0f / 3.0f, 0.8f, 0.95f, 1.3f};
  const std::vector<float> g = {1.0f, 0.8f, -1.5f, 2.0f, -0.7f, 1.2f, -3.0f};
  const Run r = run(qz, vec(x), vec(g));
  const std::vector<float> dx = r.dx.to_vector();
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("element " << i << " x " << x[i]);
    if (x[i] < 0.0f || x[i] > 1.0f) {
      CHECK(dx[i] == 0.0f);
      continue;
    }
    const double xq = std::nearbyint(x[i] * 3.0) / 3.0;  // 0.5 -> 1.5 -> 2 (half to even)
    CHECK(dx[i] == Approx(g[i] * (1.0 + delta * sign(g[i]) * (x[i] - xq))).epsilon(1e-6));
  }
  CHECK(r.out.to_vector()[2] == 2.0f / 3.0f);
  // delta = 0 is exactly the STE.
  qz.set_estimator(ewgs(0.0f));
  const Run r0 = run(qz, vec(x), vec(g));
  qz.set_estimator(Estimator{});
  const Run rs = run(qz, vec(x), vec(g));
  CHECK(r0.dx.to_vector() == rs.dx.to_vector());
  // Weights: z = (w - l)/(u - l) and D are normalised; dL/dD = 2 g, then the affine map.
  q::LearnedIntervalQuantizer qw(Role::kWeight, 2);
  qw.set_estimator(ewgs(delta));
  qw.lower().set_value(vec({-0.5f}));
  qw.upper().set_value(vec({1.5f}));
  const std::vector<float> w = {-0.3f, 0.2f, 0.9f, 1.4f};
  const Run rw = run(qw, vec(w), vec({1.0f, -2.0f, 0.5f, -0.25f}));
  const std::vector<float> gw = {1.0f, -2.0f, 0.5f, -0.25f};
  for (size_t i = 0; i < w.size(); ++i) {
    const double z = (w[i] + 0.5) / 2.0;
    const double zq = std::nearbyint(z * 3.0) / 3.0;
    const double gd = 2.0 * gw[i];
    INFO("weight " << i);
    CHECK(rw.dx.to_vector()[i] ==
          Approx(gd * (1.0 + delta * sign(gd) * (z - zq)) / 2.0).epsilon(1e-5));
  }
}

TEST_CASE("uniform: PACT gradients, dx inside [0, alpha] and dalpha from x >= alpha",
          "[quant][uniform][grad]") {
  q::PactQuantizer qz(2, 3.0f);  // scale 1
  // Negative, zero, a tie (0.5 -> 0), a tie (1.5 -> 2), between, at alpha, above alpha.
  const std::vector<float> x = {-1.0f, 0.0f, 0.5f, 1.5f, 2.2f, 3.0f, 4.0f};
  const std::vector<float> g = {1.0f, -2.0f, 0.5f, 4.0f, -1.0f, 2.0f, 0.25f};
  const Run r = run(qz, vec(x), vec(g));
  CHECK(r.out.to_vector() == std::vector<float>{0.0f, 0.0f, 0.0f, 2.0f, 2.0f, 3.0f, 3.0f});
  CHECK(r.dx.to_vector() == std::vector<float>{0.0f, -2.0f, 0.5f, 4.0f, -1.0f, 2.0f, 0.0f});
  CHECK(qz.alpha().grad().item() == 2.0f + 0.25f);
  // EWGS in the normalised [0, 1] domain: p = x / alpha, p_q = code / 3.
  qz.set_estimator(ewgs(0.3f));
  const Run e = run(qz, vec(x), vec(g));
  const std::vector<float> codes = {0.0f, 0.0f, 0.0f, 2.0f, 2.0f, 3.0f, 3.0f};
  for (size_t i = 1; i <= 5; ++i) {
    INFO("element " << i);
    const double expect = g[i] * (1.0 + 0.3 * sign(g[i]) * (x[i] / 3.0 - codes[i] / 3.0));
    CHECK(e.dx.to_vector()[i] == Approx(expect).epsilon(1e-6));
  }
  CHECK(e.dx.to_vector()[0] == 0.0f);
  CHECK(e.dx.to_vector()[6] == 0.0f);
  CHECK(qz.alpha().grad().item() == 2.0f + 0.25f);  // dalpha does not see the estimator
}

TEST_CASE("uniform: LSQ gradients to x and step with the gradient scale",
          "[quant][uniform][grad]") {
  q::LsqQuantizer qz(Role::kWeight, 2);  // Qn 2, Qp 1
  qz.step().set_value(vec({0.5f}));
  // v = x/s: below (-4), at -Qn (-2), between (-0.6), a tie (0.5 -> 0), near 1 (0.8), above (2).
  const std::vector<float> x = {-2.0f, -1.0f, -0.3f, 0.25f, 0.4f, 1.0f};
  const std::vector<float> g = {1.0f, -2.0f, 0.5f, 4.0f, -1.0f, 2.0f};
  const Run r = run(qz, vec(x), vec(g));
  CHECK(r.out.to_vector() == std::vector<float>{-1.0f, -1.0f, -0.5f, 0.0f, 0.5f, 0.5f});
  CHECK(r.dx.to_vector() == std::vector<float>{0.0f, -2.0f, 0.5f, 4.0f, -1.0f, 0.0f});
  const std::vector<double> codes = {-2, -2, -1, 0, 1, 1};
  double ds = -2.0 * g[0] + 1.0 * g[5];
  for (int i = 1; i <= 4; ++i) ds += g[i] * (codes[i] - x[i] / 0.5);
  const double gscale = 1.0 / std::sqrt(6.0 * 1.0);
  CHECK(qz.step().grad().item() == Approx(ds * gscale).epsilon(1e-6));
  // EWGS: dx = G, ds = g code - G v inside (the rounding's derivative is the estimator's).
  qz.set_estimator(ewgs(0.4f));
  const Run e = run(qz, vec(x), vec(g));
  double ds_e = -2.0 * g[0] + 1.0 * g[5];
  for (int i = 1; i <= 4; ++i) {
    const double v = x[i] / 0.5;
    const double big_g =
        g[i] * (1.0 + 0.4 * sign(g[i]) * ((v + 2.0) / 3.0 - (codes[i] + 2.0) / 3.0));
    INFO("element " << i);
    CHECK(e.dx.to_vector()[i] == Approx(big_g).epsilon(1e-6));
    ds_e += g[i] * codes[i] - big_g * v;
  }
  CHECK(qz.step().grad().item() == Approx(ds_e * gscale).epsilon(1e-6));
  // Activations: Qn 0, Qp 3; negative inputs are clipped below (ds += -0 * g).
  q::LsqQuantizer qa(Role::kActivation, 2);
  qa.step().set_value(vec({0.5f}));
  const Run ra = run(qa, vec({-0.4f, 0.3f, 1.6f}), vec({1.0f, 2.0f, 3.0f}));
  CHECK(ra.out.to_vector() == std::vector<float>{0.0f, 0.5f, 1.5f});
  CHECK(ra.dx.to_vector() == std::vector<float>{0.0f, 2.0f, 0.0f});
  CHECK(qa.step().grad().item() ==
        Approx((2.0 * (1.0 - 0.6) + 3.0 * 3.0) / std::sqrt(3.0 * 3.0)).epsilon(1e-6));
}

TEST_CASE("uniform: DSQ through each quantizer matches the tanh formula",
          "[quant][uniform][grad]") {
  const float alpha = 0.4f;
  // Hand values (alpha 0.4: k = ln 4, s = 5/3): 0.7394 at a level, 1.1552 at a midpoint.
  CHECK(dsq_factor(1.0, 0.4) == Approx(0.5 * (5.0 / 3.0) * std::log(4.0) * 0.64).epsilon(1e-9));
  CHECK(dsq_factor(1.5, 0.4) == Approx(0.5 * (5.0 / 3.0) * std::log(4.0)).epsilon(1e-9));
  // PACT, alpha 3, 2 bits: grid units are x itself.
  q::PactQuantizer p(2, 3.0f);
  p.set_estimator(dsq(alpha));
  const std::vector<float> x = {-0.5f, 0.0f, 1.0f, 1.2f, 1.5f, 2.75f, 3.5f};
  const std::vector<float> g = {1.0f, 1.0f, -2.0f, 0.5f, 1.0f, 3.0f, 1.0f};
  const Run r = run(p, vec(x), vec(g));
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("pact element " << i);
    const bool inside = x[i] >= 0.0f && x[i] <= 3.0f;
    CHECK(r.dx.to_vector()[i] ==
          Approx(inside ? g[i] * dsq_factor(x[i], alpha) : 0.0).margin(1e-6));
  }
  // LSQ activations, step 0.5, 2 bits: grid units v = x / 0.5.
  q::LsqQuantizer l(Role::kActivation, 2);
  l.step().set_value(vec({0.5f}));
  l.set_estimator(dsq(alpha));
  const Run rl = run(l, vec({0.1f, 0.5f, 0.75f, 2.0f}), vec({1.0f, 1.0f, 1.0f, 1.0f}));
  CHECK(rl.dx.to_vector()[0] == Approx(dsq_factor(0.2, alpha)).epsilon(1e-5));
  CHECK(rl.dx.to_vector()[1] == Approx(dsq_factor(1.0, alpha)).epsilon(1e-5));
  CHECK(rl.dx.to_vector()[2] == Approx(dsq_factor(1.5, alpha)).epsilon(1e-5));
  CHECK(rl.dx.to_vector()[3] == 0.0f);  // clipped above
  // Learned interval, activations l = 0, u = 1: grid units 3 x.
  q::LearnedIntervalQuantizer li(Role::kActivation, 2);
  li.set_estimator(dsq(alpha));
  const Run ri = run(li, vec({0.1f, 0.5f, 1.2f}), vec({2.0f, 2.0f, 2.0f}));
  CHECK(ri.dx.to_vector()[0] == Approx(2.0 * dsq_factor(0.3, alpha)).epsilon(1e-5));
  CHECK(ri.dx.to_vector()[1] == Approx(2.0 * dsq_factor(1.5, alpha)).epsilon(1e-5));
  CHECK(ri.dx.to_vector()[2] == 0.0f);
}

TEST_CASE("uniform: DAQ surrogate matches ALGORITHMS.md §7.2 and its range",
          "[quant][uniform][grad]") {
  // PACT, alpha 3, 2 bits: the grid position is x; sweep f = 0, 0.01, .., 0.49 on level 1.
  std::vector<float> x, ones;
  for (int i = 0; i < 50; ++i) {
    x.push_back(1.0f + 0.01f * static_cast<float>(i));
    ones.push_back(1.0f);
  }
  for (float sigma : {1.0f, 2.0f}) {
    INFO("sigma " << sigma);
    q::PactQuantizer p(2, 3.0f);
    p.set_estimator(daq(sigma, 2.0f));
    const Run r = run(p, vec(x), vec(ones));
    const std::vector<float> d = r.dx.to_vector();
    for (size_t i = 0; i < x.size(); ++i) {
      INFO("x " << x[i]);
      CHECK(d[i] == Approx(daq_factor(x[i], sigma, 2.0)).epsilon(1e-4));
    }
    const auto [lo, hi] = std::minmax_element(d.begin(), d.end());
    CHECK(lo == d.begin());    // smallest at the level
    CHECK(hi == d.end() - 1);  // largest next to the midpoint
    if (sigma == 1.0f) {
      CHECK(*lo == Approx(0.36).margin(0.01));
      CHECK(*hi == Approx(0.59).margin(0.01));
    } else {
      CHECK(*lo == Approx(0.50).margin(0.01));
      CHECK(*hi == Approx(2.05).margin(0.01));
    }
    // Symmetric around the midpoint: f and 1 - f give the same factor.
    const Run s = run(p, vec({1.2f, 1.8f}), vec({1.0f, 1.0f}));
    CHECK(s.dx.to_vector()[0] == Approx(s.dx.to_vector()[1]).epsilon(1e-4));
  }
}

// ---- min-max activation EMA ---------------------------------------------------------------------

TEST_CASE("uniform: min-max EMA is bias-corrected exactly (raw / (1 - beta^t))",
          "[quant][uniform]") {
  // beta = 0.5 and dyadic batch ranges: the raw EMA is exact in float, the correction is one
  // division.
  q::MinMaxQuantizer qz(Role::kActivation, 2, Granularity::kPerTensor, 0.5f);
  const std::vector<std::pair<float, float>> batches = {{-1.0f, 4.0f}, {-2.0f, 2.0f}, {0.0f, 8.0f}};
  const std::vector<std::pair<double, double>> expect = {
      {-1.0, 4.0}, {-1.25 / 0.75, 2.0 / 0.75}, {-0.625 / 0.875, 5.0 / 0.875}};
  for (size_t k = 0; k < batches.size(); ++k) {
    const auto [m, big_m] = batches[k];
    qz.fake_quant(Variable(vec({m, 0.5f * (m + big_m), big_m})));
    const auto [lo, hi] = qz.activation_range();
    INFO("batch " << k);
    CHECK(lo == static_cast<float>(expect[k].first));
    CHECK(hi == static_cast<float>(expect[k].second));
  }
  // The raw EMA and the step count are what is stored.
  float raw_min = 0, raw_max = 0;
  for (const auto& b : qz.named_buffers()) {
    if (b.name == "ema_min") raw_min = b.tensor->item();
    if (b.name == "ema_max") raw_max = b.tensor->item();
  }
  CHECK(raw_min == -0.625f);
  CHECK(raw_max == 5.0f);
  REQUIRE(qz.named_counters().size() == 1);
  CHECK(qz.named_counters()[0].name == "ema_steps");
  CHECK(*qz.named_counters()[0].value == 3);

  // Default beta 0.9 on a constant range: every step reads the constant (GDFQ's recursive
  // correction would read 5.26 at step 2 and ~3900 at step 20).
  q::MinMaxQuantizer c(Role::kActivation, 4, Granularity::kPerTensor);
  for (int t = 1; t <= 25; ++t) {
    c.fake_quant(Variable(vec({0.0f, 0.3f, 1.0f})));
    INFO("step " << t);
    CHECK(c.activation_range().second == Approx(1.0).epsilon(1e-6));
    CHECK(c.activation_range().first == 0.0f);
  }
  // A varying sequence against the float64 recurrence.
  q::MinMaxQuantizer v(Role::kActivation, 4, Granularity::kPerTensor);
  double rmin = 0, rmax = 0;
  bitgrad::core::Rng rng(5);
  for (int t = 1; t <= 10; ++t) {
    const float m = -rng.uniform(), big_m = 1.0f + 3.0f * rng.uniform();
    v.fake_quant(Variable(vec({big_m, m, 0.0f})));
    rmin = 0.9 * rmin + 0.1 * m;
    rmax = 0.9 * rmax + 0.1 * big_m;
    const double corr = 1.0 - std::pow(0.9, t);
    INFO("step " << t);
    CHECK(v.activation_range().first == Approx(rmin / corr).epsilon(1e-6));
    CHECK(v.activation_range().second == Approx(rmax / corr).epsilon(1e-6));
  }
}

TEST_CASE("uniform: min-max freeze, eval and the missing-range error", "[quant][uniform]") {
  q::MinMaxQuantizer qz(Role::kActivation, 2, Granularity::kPerTensor, 0.0f);
  CHECK(error_message([&] { qz.encode(vec({1.0f})); }).find("no activation range yet") !=
        std::string::npos);
  qz.eval();
  CHECK(error_message([&] {
          qz.fake_quant(Variable(vec({1.0f})));
        }).find("no activation range yet") != std::string::npos);
  qz.train();
  qz.freeze(true);
  CHECK(error_message([&] {
          qz.fake_quant(Variable(vec({1.0f})));
        }).find("no activation range yet") != std::string::npos);
  qz.freeze(false);
  qz.fake_quant(Variable(vec({0.0f, 3.0f})));  // range [0, 3]
  qz.freeze(true);
  CHECK(qz.frozen());
  const Tensor wide = vec({-3.0f, 1.0f, 6.0f});
  CHECK(qz.fake_quant(Variable(wide)).value().to_vector() == std::vector<float>{0.0f, 1.0f, 3.0f});
  CHECK(qz.activation_range() == Range{0.0f, 3.0f});
  CHECK(qz.describe()["ema_steps"].as_int64() == 1);
  qz.freeze(false);
  qz.eval();
  qz.fake_quant(Variable(wide));  // eval: no update either
  CHECK(qz.activation_range() == Range{0.0f, 3.0f});
  qz.train();
  qz.fake_quant(Variable(wide));  // momentum 0: the range is this batch's
  CHECK(qz.activation_range() == Range{-3.0f, 6.0f});
  // Weights carry no state of their own (only the base's EWGS delta).
  q::MinMaxQuantizer qw(Role::kWeight, 2, Granularity::kPerChannel);
  CHECK(buffer_names(qw) == std::vector<std::string>{"ewgs_delta"});
  CHECK(qw.named_counters().empty());
  CHECK(qw.named_parameters().empty());
}

// ---- parameters, describe, errors ---------------------------------------------------------------

TEST_CASE("uniform: parameters are registered by name without weight decay", "[quant][uniform]") {
  q::LearnedIntervalQuantizer li(Role::kWeight, 2);
  const auto lp = li.named_parameters();
  REQUIRE(lp.size() == 2);
  CHECK(lp[0].name == "lower");
  CHECK(lp[1].name == "upper");
  CHECK(li.lower().item() == -1.0f);
  CHECK(q::LearnedIntervalQuantizer(Role::kActivation, 2).lower().item() == 0.0f);
  q::PactQuantizer p(4, 2.5f);
  REQUIRE(p.named_parameters().size() == 1);
  CHECK(p.named_parameters()[0].name == "alpha");
  CHECK(p.alpha().item() == 2.5f);
  q::LsqQuantizer l(Role::kActivation, 4);
  REQUIRE(l.named_parameters().size() == 1);
  CHECK(l.named_parameters()[0].name == "step");
  for (const auto* m : std::vector<const bitgrad::nn::Module*>{&li, &p, &l})
    for (const auto& np : m->named_parameters()) {
      INFO(np.name);
      CHECK(np.kind == bitgrad::nn::ParamKind::kBias);
      CHECK(np.variable.requires_grad());
    }
  q::MinMaxQuantizer a(Role::kActivation, 2, Granularity::kPerTensor);
  CHECK(buffer_names(a) == std::vector<std::string>{"ewgs_delta", "ema_min", "ema_max"});
}

TEST_CASE("uniform: EWGS delta from the Hessian and its unit", "[quant][uniform]") {
  // set_ewgs_delta (TensorQuantizer) goes through each quantizer's set_estimator.
  q::LearnedIntervalQuantizer lw(Role::kWeight, 2);
  lw.set_estimator(ewgs(0.0f));
  lw.set_ewgs_delta(0.25f);
  CHECK(lw.estimator().kind == EstimatorKind::kEwgs);
  CHECK(lw.estimator().ewgs_delta == 0.25f);
  // ewgs_unit = d out / d (normalised position).
  CHECK(lw.ewgs_unit() == 2.0);
  CHECK(q::LearnedIntervalQuantizer(Role::kActivation, 4).ewgs_unit() == 1.0);
  q::PactQuantizer p(2, 3.0f);
  CHECK(p.ewgs_unit() == 3.0);
  q::LsqQuantizer ls(Role::kWeight, 4);  // Qn 8, Qp 7
  ls.step().set_value(vec({0.5f}));
  CHECK(ls.ewgs_unit() == Approx(7.5));
  q::MinMaxQuantizer ma(Role::kActivation, 2, Granularity::kPerTensor, 0.0f);
  CHECK(ma.ewgs_unit() == 1.0);  // no range yet
  ma.fake_quant(Variable(vec({-1.0f, 2.0f})));
  CHECK(ma.ewgs_unit() == Approx(3.0));
  q::MinMaxQuantizer mc(Role::kWeight, 2, Granularity::kPerChannel);
  mc.fake_quant(Variable(Tensor::from(Shape{2, 2}, {0.0f, 1.0f, -3.0f, 4.0f})));
  CHECK(mc.ewgs_unit() == Approx(std::sqrt((1.0 + 49.0) / 2.0)));
  // The unit is what makes EWGS's x - x_q a normalised distance: PACT with alpha 3 and 2 bits has
  // levels 1 apart in x and 1/3 apart in p; the EWGS factor uses p.
  p.set_estimator(ewgs(0.3f));
  const Run r = run(p, vec({1.25f}), vec({1.0f}));
  CHECK(r.dx.item() == Approx(1.0 + 0.3 * (1.25 - 1.0) / 3.0).epsilon(1e-6));
}

TEST_CASE("uniform: describe() names kind, bits, role, granularity and estimator",
          "[quant][uniform]") {
  q::MinMaxQuantizer mw(Role::kWeight, 3, Granularity::kPerChannel);
  auto d = mw.describe();
  CHECK(d["kind"].as_string() == "minmax");
  CHECK(d["bits"].as_int64() == 3);
  CHECK(d["role"].as_string() == "weight");
  CHECK(d["granularity"].as_string() == "channel");
  CHECK(d["estimator"].as_string() == "ste");
  q::MinMaxQuantizer ma(Role::kActivation, 2, Granularity::kPerTensor);
  ma.set_estimator(daq(2.0f, 2.0f));
  d = ma.describe();
  CHECK(d["role"].as_string() == "activation");
  CHECK(d["granularity"].as_string() == "tensor");
  CHECK(d["estimator"].as_string() == "daq");
  CHECK(d["daq_sigma"].as_number() == 2.0);
  CHECK(d["daq_temperature"].as_number() == 2.0);
  CHECK(d["momentum"].as_number() == Approx(0.9));
  CHECK(d["frozen"].as_bool() == false);

  q::LearnedIntervalQuantizer li(Role::kActivation, 4);
  li.set_estimator(ewgs(0.001f));
  d = li.describe();
  CHECK(d["kind"].as_string() == "lint");
  CHECK(d["bits"].as_int64() == 4);
  CHECK(d["estimator"].as_string() == "ewgs");
  CHECK(d["ewgs_delta"].as_number() == Approx(0.001));
  q::PactQuantizer p(2);
  p.set_estimator(dsq(0.3f));
  d = p.describe();
  CHECK(d["kind"].as_string() == "pact");
  CHECK(d["role"].as_string() == "activation");
  CHECK(d["estimator"].as_string() == "dsq");
  CHECK(d["dsq_alpha"].as_number() == Approx(0.3));
  CHECK(p.alpha().item() == 6.0f);
  q::LsqQuantizer l(Role::kWeight, 2);
  d = l.describe();
  CHECK(d["kind"].as_string() == "lsq");
  CHECK(d["granularity"].as_string() == "tensor");
  CHECK(d["qn"].as_int64() == 2);
  CHECK(d["qp"].as_int64() == 1);
}

TEST_CASE("uniform: bad options and parameters throw one-line errors", "[quant][uniform]") {
  auto expect_error = [](auto f, const std::string& part) {
    const std::string msg = error_message(f);
    INFO(msg);
    CHECK(msg.find(part) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  };
  for (int bits : {0, 1, 9}) {
    INFO("bits " << bits);
    expect_error([&] { q::MinMaxQuantizer m(Role::kWeight, bits, Granularity::kPerTensor); },
                 "MinMaxQuantizer: expected bits in 2..8, got " + std::to_string(bits));
    expect_error([&] { q::LearnedIntervalQuantizer l(Role::kWeight, bits); },
                 "LearnedIntervalQuantizer: expected bits in 2..8");
    expect_error([&] { q::PactQuantizer p(bits); }, "PactQuantizer: expected bits in 2..8");
    expect_error([&] { q::LsqQuantizer l(Role::kActivation, bits); },
                 "LsqQuantizer: expected bits in 2..8");
  }
  expect_error([] { q::MinMaxQuantizer m(Role::kActivation, 2, Granularity::kPerChannel); },
               "per-tensor granularity for activations");
  expect_error([] { q::MinMaxQuantizer m(Role::kActivation, 2, Granularity::kPerTensor, 1.0f); },
               "momentum in [0, 1)");
  expect_error([] { q::PactQuantizer p(2, -1.0f); }, "alpha_init > 0");

  // Estimator numbers outside their formula's domain, for every quantizer.
  q::MinMaxQuantizer mm(Role::kWeight, 2, Granularity::kPerTensor);
  q::LearnedIntervalQuantizer li(Role::kWeight, 2);
  q::PactQuantizer pa(2);
  q::LsqQuantizer ls(Role::kWeight, 2);
  for (q::TensorQuantizer* qz : std::vector<q::TensorQuantizer*>{&mm, &li, &pa, &ls}) {
    INFO(qz->type_name());
    expect_error([&] { qz->set_estimator(ewgs(-0.1f)); },
                 qz->type_name() + ": expected EWGS delta >= 0");
    expect_error([&] { qz->set_estimator(ewgs(NAN)); }, "EWGS delta");
    expect_error([&] { qz->set_estimator(dsq(0.0f)); }, "DSQ alpha in (0, 1)");
    expect_error([&] { qz->set_estimator(dsq(1.0f)); }, "DSQ alpha in (0, 1)");
    expect_error([&] { qz->set_estimator(daq(0.0f, 2.0f)); }, "DAQ sigma > 0");
    expect_error([&] { qz->set_estimator(daq(1.0f, -2.0f)); }, "temperature > 0");
    CHECK(qz->estimator().kind == EstimatorKind::kSte);  // a rejected estimator is not kept
  }

  // Learned clipping parameters checked at every forward and encode.
  li.lower().set_value(vec({0.5f}));
  li.upper().set_value(vec({0.5f}));
  expect_error([&] { li.fake_quant(Variable(vec({0.1f}))); },
               "expected finite learned clipping parameters with lower < upper, found lower = "
               "0.500000, upper = 0.500000");
  li.lower().set_value(vec({NAN}));
  expect_error([&] { li.fake_quant(Variable(vec({0.1f}))); }, "NaN in learned clipping parameters");
  expect_error([&] { li.encode(vec({0.1f})); }, "NaN in learned clipping parameters");
  pa.alpha().set_value(vec({0.0f}));
  expect_error([&] { pa.fake_quant(Variable(vec({0.1f}))); }, "alpha > 0, found alpha = 0");
  pa.alpha().set_value(vec({NAN}));
  expect_error([&] { pa.fake_quant(Variable(vec({0.1f}))); }, "NaN in learned clipping parameters");
  ls.step().set_value(vec({-0.1f}));
  expect_error([&] { ls.fake_quant(Variable(vec({0.1f}))); }, "step > 0, found step = -0.1");
  ls.step().set_value(vec({NAN}));
  expect_error([&] { ls.encode(vec({0.1f})); }, "NaN in learned clipping parameters");
  expect_error([&] { ls.calibrate(Tensor::zeros(Shape{4})); }, "LsqQuantizer: calibrate expected");
  expect_error([&] { li.calibrate(vec({1.0f})); }, "calibrate expected at least 2 values");
  expect_error([&] { li.calibrate(vec({1.0f, 1.0f})); }, "calibrate expected a finite interval");
  // Non-finite inputs to min-max (its range comes from the data).
  expect_error([&] { mm.fake_quant(Variable(vec({0.1f, NAN}))); }, "NaN or Inf");
  expect_error([&] { mm.fake_quant(Variable(Tensor::zeros(Shape{0}))); }, "non-empty");
}

TEST_CASE("uniform: large tensors take the parallel path with the same results",
          "[quant][uniform]") {
  // 3 * 2^16 + 5 elements: several blocks, and the parameter gradients summed block by block.
  const Tensor x = random_tensor(Shape{3 * 65536 + 5}, 1.0f, 0.2f, 21);
  const Tensor g = random_tensor(Shape{3 * 65536 + 5}, 1.0f, 0.0f, 22);
  const std::vector<float> xs = x.to_vector(), gs = g.to_vector();
  q::LsqQuantizer qz(Role::kActivation, 3);
  qz.step().set_value(vec({0.25f}));
  const Run r = run(qz, x, g);
  expect_on_level_set(r.out, qz.encode(x), range_levels(0, 7));
  const std::vector<float> got_dx = r.dx.to_vector();
  double ds = 0.0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float v = xs[i] / 0.25f;
    const float code = std::clamp(std::nearbyint(std::clamp(v, 0.0f, 7.0f)), 0.0f, 7.0f);
    ds += v < 0.0f ? 0.0 : (v > 7.0f ? 7.0 * gs[i] : gs[i] * (double(code) - v));
    const float dx = (v >= 0.0f && v <= 7.0f) ? gs[i] : 0.0f;
    if (got_dx[i] != dx) FAIL("dx differs at " << i);
  }
  CHECK(qz.step().grad().item() ==
        Approx(ds / std::sqrt(static_cast<double>(xs.size()) * 7.0)).epsilon(1e-6));
  q::MinMaxQuantizer mm(Role::kActivation, 4, Granularity::kPerTensor);
  const Tensor out = mm.fake_quant(Variable(x)).value();
  const auto [lo, hi] = mm.activation_range();
  CHECK(lo == Approx(*std::min_element(xs.begin(), xs.end())).epsilon(1e-6));
  CHECK(hi == Approx(*std::max_element(xs.begin(), xs.end())).epsilon(1e-6));
  expect_on_level_set(out, mm.encode(x), range_levels(0, 15));
}
