// apot_test.cpp: the PoT / APoT quantizer and the 8-bit first/last-layer quantizer (quant/apot.hpp,
// quant/int8_max.hpp, quant/apot_math.hpp): level sets against ALGORITHMS.md §1.1 as exact
// rationals, the projection, outputs exactly on the level set (value == scale * code bit for bit,
// codes within levels, encode == the codes behind fake_quant), PyTorch golden values of the
// official CIFAR code (tests/golden/make_golden_apot.py), every pseudo-gradient checked against its
// formula on hand-picked elements (clipped, at the clip point, at a level, between levels, on a
// tie), EWGS / DSQ / DAQ, and the errors for bad options.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/safetensors.hpp"
#include "core/tensor_ops.hpp"
#include "core/threads.hpp"
#include "quant/apot.hpp"
#include "quant/apot_math.hpp"
#include "quant/int8_max.hpp"
#include "test_util.hpp"

namespace {

using bitgrad::autograd::Variable;
using bitgrad::core::Shape;
using bitgrad::core::Tensor;
using bitgrad::quant::ApotQuantizer;
using bitgrad::quant::Encoded;
using bitgrad::quant::Estimator;
using bitgrad::quant::EstimatorKind;
using bitgrad::quant::Int8MaxQuantizer;
using bitgrad::quant::Role;
using bitgrad::quant::TensorQuantizer;
using bitgrad::test::error_message;
namespace apot = bitgrad::quant::apot;

const bitgrad::core::SafetensorsFile& fixture() {
  static const bitgrad::core::SafetensorsFile f =
      bitgrad::core::read_safetensors(std::string(BITGRAD_GOLDEN_DIR) + "/quant_apot.safetensors");
  return f;
}

struct Run {
  Tensor out;
  Tensor dx;
  float dalpha = 0.0f;  // 0 when the quantizer has no alpha
};

// fake_quant(x) and the gradients of sum(g * out).
Run run(TensorQuantizer& q, const Tensor& x, const Tensor& g) {
  q.zero_grad();
  Variable xv(x.clone(), true);
  Variable y = q.fake_quant(xv);
  y.backward(g);
  Run r;
  r.out = y.value();
  r.dx = xv.grad();
  const auto params = q.named_parameters();
  if (!params.empty()) r.dalpha = params[0].variable.grad().item();
  return r;
}

void set_alpha(ApotQuantizer& q, float alpha) {
  q.alpha().set_value(Tensor::full(Shape{1}, alpha));
}

// |got - ref| <= tol + tol * |ref| for every element.
void expect_close(const std::string& what, const Tensor& got, const Tensor& ref, double tol) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(got.shape() == ref.shape());
  const std::vector<float> a = got.to_vector();
  const std::vector<float> b = ref.to_vector();
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double excess = std::abs(double{a[i]} - b[i]) - tol * (1.0 + std::abs(double{b[i]}));
    if (i == 0 || excess > worst) {
      worst = excess;
      at = i;
    }
  }
  INFO("worst element " << at << ": got " << a[at] << ", ref " << b[at] << ", tolerance " << tol);
  CHECK(worst <= 0.0);
}

void expect_close(const std::string& what, float got, float ref, double tol) {
  expect_close(what, Tensor::full(Shape{1}, got), Tensor::full(Shape{1}, ref), tol);
}

std::vector<int32_t> as_codes(const Tensor& t) {
  std::vector<int32_t> out;
  for (float v : t.to_vector()) out.push_back(static_cast<int32_t>(v));
  return out;
}

// The integer-code contract for one fake_quant output: value == scale * code bit for bit, with the
// codes of encode(x), every code within map.levels.
void expect_on_lattice(const std::string& what, const TensorQuantizer& q, const Tensor& x,
                       const Tensor& out) {
  INFO(what);
  const Encoded enc = q.encode(x);
  REQUIRE(enc.map.scale.size() == 1);
  REQUIRE(enc.map.zero_point == std::vector<int32_t>{0});
  REQUIRE(enc.codes.size() == static_cast<size_t>(out.numel()));
  const float scale = enc.map.scale[0];
  const std::vector<float> values = out.to_vector();
  size_t bad_value = 0;
  size_t bad_level = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    const float expected = scale * static_cast<float>(enc.codes[i]);
    if (std::memcmp(&expected, &values[i], sizeof(float)) != 0) ++bad_value;
    if (!std::binary_search(enc.map.levels.begin(), enc.map.levels.end(), enc.codes[i]))
      ++bad_level;
  }
  CHECK(bad_value == 0);
  CHECK(bad_level == 0);
  CHECK(std::is_sorted(enc.map.levels.begin(), enc.map.levels.end()));
}

std::string mode_name(bool additive) { return additive ? "apot" : "pot"; }

}  // namespace

// ---- level sets ---------------------------------------------------------------------------------

TEST_CASE("apot: build_power_value equals the tables of ALGORITHMS.md 1.1 as rationals",
          "[quant][apot]") {
  using V = std::vector<int32_t>;
  const apot::PowerGrid b2 = apot::build_power_value(2, true);
  CHECK(b2.codes == V{0, 1, 2, 4});  // 0, 1/4, 1/2, 1
  CHECK(b2.denominator == 4);
  const apot::PowerGrid b3 = apot::build_power_value(3, true);
  CHECK(b3.codes == V{0, 1, 2, 3, 4, 6, 8, 10});  // 0, .1, .2, .3, .4, .6, .8, 1
  CHECK(b3.denominator == 10);
  const apot::PowerGrid b4 = apot::build_power_value(4, true);
  // 0, 1/48, 1/24, 1/16, 1/12, 1/8, 1/6, 3/16, 1/4, 1/3, 3/8, 1/2, 2/3, 11/16, 3/4, 1
  CHECK(b4.codes == V{0, 1, 2, 3, 4, 6, 8, 9, 12, 16, 18, 24, 32, 33, 36, 48});
  CHECK(b4.denominator == 48);
  // Vanilla PoT: {0, 2^-1, ..., 2^-(2^B - 1)} normalised: codes 0 and powers of two up to 2^(2^B -
  // 2).
  for (int B = 1; B <= 4; ++B) {
    INFO("pot B = " << B);
    const apot::PowerGrid g = apot::build_power_value(B, false);
    V expected{0};
    for (int k = 0; k <= (1 << B) - 2; ++k) expected.push_back(1 << k);
    CHECK(g.codes == expected);
    CHECK(g.denominator == (1 << ((1 << B) - 2)));
  }
  CHECK(apot::build_power_value(2, false).codes == b2.codes);  // APoT = PoT at B = 2
  // Weight grids: B = bits - 1 with 2-bit weights ternary whatever `additive` says.
  for (bool additive : {true, false}) {
    CHECK(apot::weight_grid(2, additive).codes == V{0, 1});
    CHECK(apot::weight_grid(2, additive).denominator == 1);
    CHECK(apot::weight_grid(3, additive).codes == V{0, 1, 2, 4});
  }
  CHECK(apot::weight_grid(4, true).codes == b3.codes);
  CHECK(apot::weight_grid(4, false).codes == V{0, 1, 2, 4, 8, 16, 32, 64});
  CHECK(apot::activation_grid(3, true).codes == b3.codes);
}

TEST_CASE("apot: every level set matches the transcribed build_power_value",
          "[quant][apot][golden]") {
  for (bool additive : {true, false}) {
    for (int B = additive ? 2 : 1; B <= (additive ? 6 : 4); ++B) {
      const std::string key = "grid." + mode_name(additive) + std::to_string(B);
      INFO(key);
      const apot::PowerGrid g = apot::build_power_value(B, additive);
      const std::vector<float> ref = fixture().tensor(key).to_vector();
      REQUIRE(g.codes.size() == ref.size());
      for (size_t i = 0; i < ref.size(); ++i)
        CHECK(std::abs(double(g.codes[i]) / g.denominator - ref[i]) <= 1e-7);
    }
  }
}

TEST_CASE("apot: project is the nearest level, ties to the smaller code", "[quant][apot]") {
  for (const apot::PowerGrid& g :
       {apot::build_power_value(2, true), apot::build_power_value(3, true),
        apot::build_power_value(4, true), apot::build_power_value(3, false),
        apot::build_power_value(4, false), apot::weight_grid(2, true)}) {
    INFO("grid denominator " << g.denominator);
    for (int i = 0; i <= 4000; ++i) {
      const float m = static_cast<float>(i) / 4000.0f;
      const int32_t code = apot::project(m, g);
      REQUIRE(std::find(g.codes.begin(), g.codes.end(), code) != g.codes.end());
      // Distances in lattice units, exact in double (m has 24 significant bits, den < 2^15).
      const double t = double{m} * g.denominator;
      const double d = std::abs(t - code);
      for (int32_t other : g.codes) {
        const double e = std::abs(t - other);
        REQUIRE(d <= e);
        if (d == e) REQUIRE(code <= other);
      }
    }
  }
  // The thresholds are the floats just at or below each midpoint: f <= mid < next float above f.
  for (const apot::PowerGrid& g :
       {apot::build_power_value(3, true), apot::build_power_value(4, true),
        apot::build_power_value(4, false), apot::weight_grid(2, true)}) {
    REQUIRE(g.thresholds.size() + 1 == g.codes.size());
    for (size_t k = 0; k < g.thresholds.size(); ++k) {
      const double sum = double(g.codes[k]) + g.codes[k + 1];
      const float f = g.thresholds[k];
      CHECK(double{f} * 2.0 * g.denominator <= sum);
      CHECK(double{std::nextafter(f, 2.0f)} * 2.0 * g.denominator > sum);
    }
  }
  const apot::PowerGrid b3 = apot::build_power_value(3, true);
  CHECK(apot::project(0.5f, b3) == 4);   // exactly between .4 and .6
  CHECK(apot::project(0.15f, b3) == 2);  // 0.15f is a little above .15
  CHECK(apot::project(0.7f, b3) == 6);   // 0.7f is a little below .7
  // The ternary grid is nearbyint (half to even) of the magnitude.
  const apot::PowerGrid t = apot::weight_grid(2, true);
  CHECK(apot::project(0.5f, t) == 0);
  CHECK(apot::project(0.50001f, t) == 1);
  CHECK(apot::weight_code_at(-0.5f, t) == 0);
  CHECK(apot::weight_code_at(-0.7f, t) == -1);
  CHECK(apot::weight_code_at(-3.0f, t) == -1);
  CHECK(apot::activation_code_at(-2.0f, b3) == 0);
  CHECK(apot::activation_code_at(7.0f, b3) == 10);
}

TEST_CASE("apot: quantizer levels, parameter and describe", "[quant][apot]") {
  using V = std::vector<int32_t>;
  ApotQuantizer w4(Role::kWeight, 4, true, 3.0f);
  CHECK(w4.levels() == V{-10, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 10});
  CHECK(w4.code_map().scale == std::vector<float>{3.0f / 10.0f});
  ApotQuantizer w2(Role::kWeight, 2, false, 3.0f);
  CHECK(w2.levels() == V{-1, 0, 1});
  ApotQuantizer a3(Role::kActivation, 3, true, 8.0f);
  CHECK(a3.levels() == V{0, 1, 2, 3, 4, 6, 8, 10});
  CHECK(a3.code_map().scale == std::vector<float>{0.8f});
  CHECK(a3.bits() == 3);
  CHECK(a3.ewgs_unit() == 8.0);  // d out / d q: out = alpha * q

  const auto params = a3.named_parameters();
  REQUIRE(params.size() == 1);
  CHECK(params[0].name == "alpha");
  CHECK(params[0].kind == bitgrad::nn::ParamKind::kBias);
  CHECK(params[0].variable.value().shape() == Shape{1});
  CHECK(params[0].variable.item() == 8.0f);
  CHECK(params[0].variable.requires_grad());

  const bitgrad::core::Json d = w4.describe();
  CHECK(d["kind"].as_string() == "apot");
  CHECK(d["bits"].as_int64() == 4);
  CHECK(d["role"].as_string() == "weight");
  CHECK(d["granularity"].as_string() == "tensor");
  CHECK(d["estimator"].as_string() == "ste");
  CHECK(d["denominator"].as_int64() == 10);
  CHECK(d["levels"].size() == 15);
  const bitgrad::core::Json p = ApotQuantizer(Role::kActivation, 2, false, 8.0f).describe();
  CHECK(p["kind"].as_string() == "pot");
  CHECK(p["role"].as_string() == "activation");
  Estimator ewgs;
  ewgs.kind = EstimatorKind::kEwgs;
  ewgs.ewgs_delta = 0.25f;
  a3.set_estimator(ewgs);
  CHECK(a3.describe()["estimator"].as_string() == "ewgs");
  CHECK(a3.describe()["ewgs_delta"].as_number() == 0.25);
}

// ---- golden -------------------------------------------------------------------------------------

TEST_CASE("apot: weights match the PyTorch CIFAR code (values, dw, dalpha, codes)",
          "[quant][apot][golden]") {
  for (bool additive : {true, false}) {
    for (int bits : {2, 3, 4}) {
      const std::string key = "weight." + mode_name(additive) + std::to_string(bits);
      INFO(key);
      const auto& f = fixture();
      const Tensor w = f.tensor(key + ".w");
      ApotQuantizer q(Role::kWeight, bits, additive, 3.0f);
      set_alpha(q, f.tensor(key + ".alpha").item());
      const Run r = run(q, w, f.tensor(key + ".grad_out"));
      expect_close(key + ".out", r.out, f.tensor(key + ".out"), 1e-6);
      expect_close(key + ".dw", r.dx, f.tensor(key + ".dw"), 1e-5);
      expect_close(key + ".dalpha", r.dalpha, f.tensor(key + ".dalpha").item(), 1e-5);
      CHECK(q.encode(w).codes == as_codes(f.tensor(key + ".code")));
      expect_on_lattice(key, q, w, r.out);
    }
  }
}

TEST_CASE("apot: activations match the PyTorch CIFAR code (values, dx, dalpha, codes)",
          "[quant][apot][golden]") {
  for (bool additive : {true, false}) {
    for (int bits : {2, 3, 4}) {
      const std::string key = "act." + mode_name(additive) + std::to_string(bits);
      INFO(key);
      const auto& f = fixture();
      const Tensor x = f.tensor(key + ".x");
      ApotQuantizer q(Role::kActivation, bits, additive, 8.0f);
      const float alpha = f.tensor(key + ".alpha").item();
      set_alpha(q, alpha);
      // The fixture covers every region: negative, zero, in range, above alpha.
      const std::vector<float> xs = x.to_vector();
      CHECK(std::any_of(xs.begin(), xs.end(), [](float v) { return v < 0.0f; }));
      CHECK(std::any_of(xs.begin(), xs.end(), [](float v) { return v == 0.0f; }));
      CHECK(std::any_of(xs.begin(), xs.end(), [alpha](float v) { return v > alpha; }));
      const Run r = run(q, x, f.tensor(key + ".grad_out"));
      expect_close(key + ".out", r.out, f.tensor(key + ".out"), 1e-6);
      expect_close(key + ".dx", r.dx, f.tensor(key + ".dx"), 1e-5);
      expect_close(key + ".dalpha", r.dalpha, f.tensor(key + ".dalpha").item(), 1e-5);
      CHECK(q.encode(x).codes == as_codes(f.tensor(key + ".code")));
      expect_on_lattice(key, q, x, r.out);
    }
  }
}

TEST_CASE("int8max: matches the PyTorch first_conv / last_fc quantizer, codes and bounds",
          "[quant][apot][golden]") {
  for (const char* name : {"conv", "fc"}) {
    const std::string key = std::string("int8max.") + name;
    INFO(key);
    const auto& f = fixture();
    const Tensor w = f.tensor(key + ".w");
    const Tensor g = f.tensor(key + ".grad_out");
    Int8MaxQuantizer q;
    const Run r = run(q, w, g);
    expect_close(key + ".out", r.out, f.tensor(key + ".out"), 1e-6);
    CHECK(bitgrad::core::max_abs_diff(r.dx, g) == 0.0f);  // STE: exactly g
    expect_close(key + ".dw", r.dx, f.tensor(key + ".dw"), 1e-5);
    const Encoded enc = q.encode(w);
    CHECK(enc.codes == as_codes(f.tensor(key + ".code")));
    expect_on_lattice(key, q, w, r.out);
    // The maximum maps to 127 exactly, nothing above; no clamp below: the fixture's minimum is
    // below -max, so codes go below -127, and the levels extend down to them.
    const std::vector<float> ws = w.to_vector();
    const float max = *std::max_element(ws.begin(), ws.end());
    CHECK(enc.map.scale[0] == max / 127.0f);
    CHECK(*std::max_element(enc.codes.begin(), enc.codes.end()) == 127);
    const int32_t lowest = *std::min_element(enc.codes.begin(), enc.codes.end());
    CHECK(lowest < -127);
    CHECK(enc.map.levels.front() == lowest);
    CHECK(enc.map.levels.back() == 127);
    CHECK(enc.map.levels.size() == static_cast<size_t>(127 - lowest + 1));
  }
}

TEST_CASE("int8max: codes, bounds and describe on hand-picked weights", "[quant][apot]") {
  Int8MaxQuantizer q;
  const Tensor w = Tensor::from(Shape{6}, {0.5f, -0.5f, 0.25f, 0.0f, -0.75f, 0.001968f});
  const Encoded enc = q.encode(w);
  // 0.5 -> 127; -0.5 -> -127; 0.25 -> 63.5 -> 64 (half to even); -0.75 -> -190.5 -> -190 (even);
  // 0.001968 / 0.5 * 127 = 0.4999 -> 0.
  CHECK(enc.codes == std::vector<int32_t>{127, -127, 64, 0, -190, 0});
  CHECK(enc.map.levels.front() == -190);
  const Run r = run(q, w, Tensor::from(Shape{6}, {1, 2, 3, 4, 5, 6}));
  expect_on_lattice("int8max hand", q, w, r.out);
  CHECK(r.dx.to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  // A tensor within [-max, max] keeps the nominal range -127..127.
  CHECK(q.encode(Tensor::from(Shape{2}, {1.0f, -0.2f})).map.levels.front() == -127);
  CHECK(q.bits() == 8);
  CHECK(q.named_parameters().empty());
  const bitgrad::core::Json d = q.describe();
  CHECK(d["kind"].as_string() == "int8max");
  CHECK(d["bits"].as_int64() == 8);
  CHECK(d["role"].as_string() == "weight");
  CHECK(d["granularity"].as_string() == "tensor");
  CHECK(d["estimator"].as_string() == "ste");
}

// ---- pseudo-gradients on hand-picked elements ---------------------------------------------------

namespace {

// Mean exactly 0 and unbiased std exactly 2 (squares 36 over n - 1 = 9): w^ = w / 2 =
// {1.5, -1.5, 1, -1, 1, -1, .5, -.5, 0, 0}.
const std::vector<float> kHandWeights{3, -3, 2, -2, 2, -2, 1, -1, 0, 0};
const std::vector<float> kHandGrad{0.3f, -0.7f, 1.1f, 0.2f, -0.5f, 0.9f, -1.3f, 0.4f, 0.6f, -0.8f};

struct WeightCase {
  int bits;
  bool additive;
  float alpha;
  std::vector<int32_t> codes;  // worked out by hand from the level tables
};

// dL/dw = g / std for every element; dL/dalpha = sum g * (sign(u) if |u| > 1 else q - u).
void check_weight_case(const WeightCase& c, const Estimator& est) {
  INFO("bits " << c.bits << " " << mode_name(c.additive) << " alpha " << c.alpha);
  const apot::WeightStats stats = apot::weight_stats(kHandWeights);
  REQUIRE(stats.mean == 0.0f);
  REQUIRE(stats.std == 2.0f);
  ApotQuantizer q(Role::kWeight, c.bits, c.additive, c.alpha);
  q.set_estimator(est);
  const Tensor w = Tensor::from(Shape{10}, kHandWeights);
  const Run r = run(q, w, Tensor::from(Shape{10}, kHandGrad));
  CHECK(q.encode(w).codes == c.codes);
  expect_on_lattice("hand weights", q, w, r.out);
  const float den = static_cast<float>(q.grid().denominator);
  const std::vector<float> dx = r.dx.to_vector();
  double dalpha = 0.0;
  for (size_t i = 0; i < kHandWeights.size(); ++i) {
    const float u = kHandWeights[i] / 2.0f / c.alpha;
    const float qv = static_cast<float>(c.codes[i]) / den;
    const float g = kHandGrad[i];
    const bool clipped = std::abs(u) > 1.0f;
    dalpha += g * (clipped ? (u > 0 ? 1.0 : -1.0) : double{qv} - u);
    float expected = g / 2.0f;
    if (!clipped && est.kind == EstimatorKind::kEwgs) {
      const float sign = g > 0 ? 1.0f : -1.0f;
      expected = g * (1.0f + est.ewgs_delta * sign * (u - qv)) / 2.0f;
    }
    if (!clipped && (est.kind == EstimatorKind::kDsq || est.kind == EstimatorKind::kDaq))
      expected = bitgrad::quant::estimator_grad(est, u, qv, 1.0f, g) / 2.0f;
    INFO("element " << i << ": u " << u << ", q " << qv << ", g " << g);
    CHECK(dx[i] == Approx(expected).epsilon(1e-6).margin(1e-7));
  }
  CHECK(r.dalpha == Approx(dalpha).epsilon(1e-6).margin(1e-6));
}

const std::vector<WeightCase> kWeightCases{
    // 3-bit: ±{0, 1, 2, 4}/4. alpha 1.25: u = ±1.2 (clipped), ±.8 (-> 1), ±.4 (-> .5), 0.
    {3, true, 1.25f, {4, -4, 4, -4, 4, -4, 2, -2, 0, 0}},
    // alpha 1: u = ±1.5 (clipped), ±1 (the clip point itself: in range, q - u = 0), ±.5 (at a
    // level).
    {3, true, 1.0f, {4, -4, 4, -4, 4, -4, 2, -2, 0, 0}},
    // alpha 2.5: u = ±.6 (-> .5), ±.4 (-> .5), ±.2 (-> .25): between levels.
    {3, false, 2.5f, {2, -2, 2, -2, 2, -2, 1, -1, 0, 0}},
    // 4-bit APoT ±{0,1,2,3,4,6,8,10}/10: u = ±.6, ±.4, ±.2 all at levels; alpha 1.25: ±.8, ±.4.
    {4, true, 2.5f, {6, -6, 4, -4, 4, -4, 2, -2, 0, 0}},
    {4, true, 1.25f, {10, -10, 8, -8, 8, -8, 4, -4, 0, 0}},
    // 4-bit PoT ±{0,1,2,4,...,64}/64: .6 -> .5, .4 -> .5 (above .375), .2 -> .25 (above .1875).
    {4, false, 2.5f, {32, -32, 32, -32, 32, -32, 16, -16, 0, 0}},
    // 2-bit ternary: .6 -> 1, .4 and .2 -> 0; alpha 1: ±1.5 clipped, ±1 -> 1, ±.5 a tie -> 0.
    {2, true, 2.5f, {1, -1, 0, 0, 0, 0, 0, 0, 0, 0}},
    {2, false, 1.0f, {1, -1, 1, -1, 1, -1, 0, 0, 0, 0}},
};

// alpha 2 (so v = x / 2 exactly).
const std::vector<float> kHandActs{-0.5f, 0.0f, 0.34f, 0.8f, 1.0f, 1.3f, 1.9f, 2.0f, 2.5f, 7.0f};
const std::vector<float> kHandActGrad{0.5f,  -0.4f, 0.7f,  -1.2f, 0.3f,
                                      -0.6f, 1.4f,  -0.9f, 0.8f,  -0.2f};

struct ActCase {
  int bits;
  bool additive;
  std::vector<int32_t> codes;
};

// dL/dx = g * 1[v <= 1]; dL/dalpha = sum g * (1 if v > 1 else q - v).
void check_act_case(const ActCase& c, const Estimator& est) {
  INFO("activation bits " << c.bits << " " << mode_name(c.additive));
  ApotQuantizer q(Role::kActivation, c.bits, c.additive, 2.0f);
  q.set_estimator(est);
  const Tensor x = Tensor::from(Shape{10}, kHandActs);
  const Run r = run(q, x, Tensor::from(Shape{10}, kHandActGrad));
  CHECK(q.encode(x).codes == c.codes);
  expect_on_lattice("hand activations", q, x, r.out);
  const float den = static_cast<float>(q.grid().denominator);
  const std::vector<float> dx = r.dx.to_vector();
  double dalpha = 0.0;
  for (size_t i = 0; i < kHandActs.size(); ++i) {
    const float v = kHandActs[i] / 2.0f;
    const float qv = static_cast<float>(c.codes[i]) / den;
    const float g = kHandActGrad[i];
    dalpha += v > 1.0f ? double{g} : g * (double{qv} - v);
    float expected = v > 1.0f ? 0.0f : g;
    if (v <= 1.0f && est.kind == EstimatorKind::kEwgs) {
      const float position = std::max(v, 0.0f);  // the clamped position c
      const float sign = g > 0 ? 1.0f : -1.0f;
      expected = g * (1.0f + est.ewgs_delta * sign * (position - qv));
    }
    INFO("element " << i << ": v " << v << ", q " << qv << ", g " << g);
    CHECK(dx[i] == Approx(expected).epsilon(1e-6).margin(1e-7));
  }
  CHECK(r.dalpha == Approx(dalpha).epsilon(1e-6).margin(1e-6));
}

// v = -.25, 0, .17, .4, .5, .65, .95, 1 (the clip point), 1.25, 3.5.
const std::vector<ActCase> kActCases{
    // {0,1,2,3,4,6,8,10}/10: .17 -> .2, .4 at a level, .5 a tie -> .4, .65 -> .6, .95 -> 1.
    {3, true, {0, 0, 2, 4, 4, 6, 10, 10, 10, 10}},
    // {0,1,2,4}/4: .17 -> .25, .4 -> .5 (above .375), .5 at a level, .65 -> .5, .95 -> 1.
    {2, true, {0, 0, 1, 2, 2, 2, 4, 4, 4, 4}},
    // PoT {0,1,2,4,8,16,32,64}/64: .17 -> .125 (below .1875), .4 -> .5, .65 -> .5, .95 -> 1.
    {3, false, {0, 0, 8, 32, 32, 32, 64, 64, 64, 64}},
};

}  // namespace

TEST_CASE("apot: STE pseudo-gradients of weights and activations on hand-picked elements",
          "[quant][apot]") {
  for (const WeightCase& c : kWeightCases) check_weight_case(c, Estimator{});
  for (const ActCase& c : kActCases) check_act_case(c, Estimator{});
}

TEST_CASE("apot: EWGS backward is g * (1 + delta * sign(g) * (x - x_q)) inside the clip range",
          "[quant][apot]") {
  Estimator ewgs;
  ewgs.kind = EstimatorKind::kEwgs;
  ewgs.ewgs_delta = 0.5f;
  for (const WeightCase& c : kWeightCases) check_weight_case(c, ewgs);
  for (const ActCase& c : kActCases) check_act_case(c, ewgs);

  // The scaling really changes in-range gradients, leaves clipped ones and dalpha alone, and
  // delta = 0 is the STE.
  ApotQuantizer q(Role::kActivation, 3, true, 2.0f);
  const Tensor x = Tensor::from(Shape{10}, kHandActs);
  const Tensor g = Tensor::from(Shape{10}, kHandActGrad);
  const Run ste = run(q, x, g);
  q.set_estimator(ewgs);
  const Run scaled = run(q, x, g);
  ewgs.ewgs_delta = 0.0f;
  q.set_estimator(ewgs);
  const Run zero = run(q, x, g);
  CHECK(scaled.dx.at({2}) != ste.dx.at({2}));  // v = .17, q = .2: scaled by 1 + .5 * (-.03)
  CHECK(scaled.dx.at({9}) == 0.0f);
  CHECK(scaled.dalpha == ste.dalpha);
  CHECK(bitgrad::core::max_abs_diff(zero.dx, ste.dx) == 0.0f);
  // The base class's buffer route (Hessian updates, checkpoints) lands in the same estimator.
  q.set_ewgs_delta(0.5f);
  CHECK(q.estimator().ewgs_delta == 0.5f);
  const Run again = run(q, x, g);
  CHECK(bitgrad::core::max_abs_diff(again.dx, scaled.dx) == 0.0f);
  CHECK_THROWS_AS(q.set_ewgs_delta(-1.0f), bitgrad::Error);
}

TEST_CASE("apot: DSQ and DAQ only on the ternary (uniform) 2-bit weight grid", "[quant][apot]") {
  for (EstimatorKind kind : {EstimatorKind::kDsq, EstimatorKind::kDaq}) {
    Estimator est;
    est.kind = kind;
    const std::string name = kind == EstimatorKind::kDsq ? "dsq" : "daq";
    for (const WeightCase& c : kWeightCases)
      if (c.bits == 2) check_weight_case(c, est);
    ApotQuantizer w3(Role::kWeight, 3, true, 3.0f);
    const std::string m = error_message([&] { w3.set_estimator(est); });
    CHECK(m.find("ApotQuantizer") != std::string::npos);
    CHECK(m.find(name) != std::string::npos);
    CHECK(m.find("uniform") != std::string::npos);
    ApotQuantizer a2(Role::kActivation, 2, true, 8.0f);
    CHECK_THROWS_AS(a2.set_estimator(est), bitgrad::Error);
    CHECK(a2.estimator().kind == EstimatorKind::kSte);  // unchanged after the refusal
  }
  Estimator bad;
  bad.kind = EstimatorKind::kDsq;
  bad.dsq_alpha = 1.5f;
  ApotQuantizer w2(Role::kWeight, 2, true, 3.0f);
  CHECK_THROWS_AS(w2.set_estimator(bad), bitgrad::Error);
}

// ---- the contract on larger tensors -------------------------------------------------------------

TEST_CASE("apot: fake_quant equals scale * encode codes on large tensors (parallel chunks)",
          "[quant][apot]") {
  // Deterministic pseudo-random values (a linear congruential generator).
  const int64_t n = 3 * 16384 + 123;
  std::vector<float> xs(static_cast<size_t>(n));
  std::vector<float> gs(static_cast<size_t>(n));
  uint32_t state = 12345;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f;  // [0, 1)
  };
  for (int64_t i = 0; i < n; ++i) {
    xs[static_cast<size_t>(i)] = 10.0f * next() - 1.0f;
    gs[static_cast<size_t>(i)] = 2.0f * next() - 1.0f;
  }
  const Tensor x = Tensor::from(Shape{n}, xs);
  const Tensor g = Tensor::from(Shape{n}, gs);
  for (Role role : {Role::kWeight, Role::kActivation}) {
    for (bool additive : {true, false}) {
      for (int bits : {2, 3, 4}) {
        INFO((role == Role::kWeight ? "weight " : "activation ") << mode_name(additive) << bits);
        ApotQuantizer q(role, bits, additive, role == Role::kWeight ? 1.3f : 6.0f);
        const Run r = run(q, x, g);
        expect_on_lattice("large", q, x, r.out);
        // dalpha against a serial double sum of the formula.
        const Encoded enc = q.encode(x);
        const float alpha = q.alpha().item();
        const apot::WeightStats stats = apot::weight_stats(xs);
        double dalpha = 0.0;
        for (size_t i = 0; i < xs.size(); ++i) {
          const float qv =
              static_cast<float>(enc.codes[i]) / static_cast<float>(q.grid().denominator);
          if (role == Role::kWeight) {
            const float u = apot::weight_position(xs[i], stats, alpha);
            dalpha += gs[i] * (std::abs(u) > 1.0f ? (u > 0 ? 1.0 : -1.0) : double{qv} - u);
          } else {
            const float v = xs[i] / alpha;
            dalpha += v > 1.0f ? double{gs[i]} : gs[i] * (double{qv} - v);
          }
        }
        CHECK(r.dalpha == Approx(dalpha).epsilon(1e-6).margin(1e-4));
      }
    }
  }
  // The chunked alpha gradient does not depend on the thread count (bit for bit).
  ApotQuantizer q(Role::kActivation, 3, true, 6.0f);
  const Run many = run(q, x, g);
  const int threads = bitgrad::core::num_threads();
  bitgrad::core::set_num_threads(1);
  const Run one = run(q, x, g);
  bitgrad::core::set_num_threads(threads);
  CHECK(one.dalpha == many.dalpha);
  CHECK(bitgrad::core::max_abs_diff(one.dx, many.dx) == 0.0f);
}

// ---- bad options --------------------------------------------------------------------------------

TEST_CASE("apot: bad options and bad inputs throw one-line Errors", "[quant][apot]") {
  auto one_line = [](const std::string& m, const std::string& who) {
    INFO(m);
    CHECK(m.find('\n') == std::string::npos);
    CHECK(m.rfind(who, 0) == 0);
  };
  for (int bits : {0, 1, 5, 8}) {
    const std::string m = error_message([&] { ApotQuantizer q(Role::kWeight, bits, true, 3.0f); });
    one_line(m, "ApotQuantizer");
    CHECK(m.find("bits 2, 3 or 4, got " + std::to_string(bits)) != std::string::npos);
  }
  for (float alpha : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                      std::numeric_limits<float>::infinity()}) {
    const std::string m =
        error_message([&] { ApotQuantizer q(Role::kActivation, 2, true, alpha); });
    one_line(m, "ApotQuantizer");
    CHECK(m.find("alpha_init") != std::string::npos);
  }
  ApotQuantizer a(Role::kActivation, 3, true, 8.0f);
  Estimator ewgs;
  ewgs.kind = EstimatorKind::kEwgs;
  ewgs.ewgs_delta = -0.1f;
  one_line(error_message([&] { a.set_estimator(ewgs); }), "ApotQuantizer");
  ewgs.ewgs_delta = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(a.set_estimator(ewgs), bitgrad::Error);

  // A learned alpha gone bad is reported, not silently used.
  set_alpha(a, std::numeric_limits<float>::quiet_NaN());
  const Tensor x = Tensor::from(Shape{3}, {0.1f, 0.2f, 0.3f});
  one_line(error_message([&] { a.fake_quant(Variable(x, true)); }), "ApotQuantizer (activation)");
  CHECK_THROWS_AS(a.encode(x), bitgrad::Error);
  set_alpha(a, -2.0f);
  CHECK_THROWS_AS(a.fake_quant(Variable(x, true)), bitgrad::Error);
  set_alpha(a, 2.0f);
  const Tensor nan_x =
      Tensor::from(Shape{3}, {0.1f, std::numeric_limits<float>::quiet_NaN(), 0.3f});
  one_line(error_message([&] { a.fake_quant(Variable(nan_x, true)); }),
           "ApotQuantizer (activation)");

  ApotQuantizer w(Role::kWeight, 3, true, 3.0f);
  one_line(error_message([&] {
             w.fake_quant(Variable(Tensor::full(Shape{4, 4}, 0.5f), true));
           }),
           "ApotQuantizer (weight)");
  one_line(error_message([&] { w.fake_quant(Variable(Tensor::full(Shape{1}, 0.5f), true)); }),
           "ApotQuantizer (weight)");
  CHECK_THROWS_AS(w.encode(Tensor::full(Shape{4}, 0.5f)), bitgrad::Error);

  Int8MaxQuantizer i8;
  Estimator est;
  est.kind = EstimatorKind::kEwgs;
  const std::string m = error_message([&] { i8.set_estimator(est); });
  one_line(m, "Int8MaxQuantizer");
  CHECK(m.find("ewgs") != std::string::npos);
  i8.set_estimator(Estimator{});
  one_line(error_message([&] {
             i8.fake_quant(Variable(Tensor::from(Shape{2}, {-1.0f, -0.5f}), true));
           }),
           "Int8MaxQuantizer");
  CHECK_THROWS_AS(i8.encode(Tensor::from(Shape{2}, {0.0f, 0.0f})), bitgrad::Error);
  CHECK_THROWS_AS(i8.encode(Tensor::from(Shape{2}, {1.0f, std::numeric_limits<float>::infinity()})),
                  bitgrad::Error);
}
