// losses_test.cpp: the distillation losses of distill/losses.hpp: values and student gradients
// against the PyTorch fixture (tests/golden/make_golden_distill.py, float64 references) [golden];
// central finite differences of every loss [grad]; the teacher side carries no gradient; kd_loss of
// identical logits is exactly 0 with a zero gradient; bad shapes and temperatures throw
// bitgrad::Error. Golden tolerance: |got - ref| <= 1e-5 * max|ref| per element (the worst observed
// is printed with BITGRAD_GOLDEN_VERBOSE=1).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/safetensors.hpp"
#include "distill/losses.hpp"
#include "student_gradcheck.hpp"

namespace {

using bitgrad::autograd::Variable;
using bitgrad::core::Rng;
using bitgrad::core::Shape;
using bitgrad::core::Tensor;
namespace distill = bitgrad::distill;
using Catch::Contains;
using bitgrad::distill::test::gradcheck;

constexpr double kGoldenTol = 1e-5;

const bitgrad::core::SafetensorsFile& fixture() {
  static const bitgrad::core::SafetensorsFile f =
      bitgrad::core::read_safetensors(std::string(BITGRAD_GOLDEN_DIR) + "/distill.safetensors");
  return f;
}

bool verbose() {
  const char* v = std::getenv("BITGRAD_GOLDEN_VERBOSE");
  return v != nullptr && std::string(v) == "1";
}

// A loss as the fixture names it: kind (metadata) and its T / tau parameter.
Variable run_loss(const std::string& kind, float param, const Variable& s, const Tensor& t) {
  if (kind == "kd") return distill::kd_loss(s, t, param);
  if (kind == "feature_mse") return distill::feature_mse_loss(s, t);
  if (kind == "attention_transfer") return distill::attention_transfer_loss(s, t);
  if (kind == "contrastive") return distill::contrastive_loss(s, t, param);
  if (kind == "channel_attention") return distill::channel_attention_loss(s, t);
  FAIL("unknown loss kind " << kind);
  return {};
}

// max|got - ref| / max|ref|.
double relative_error(const Tensor& got, const Tensor& ref) {
  REQUIRE(got.shape().numel() == ref.shape().numel());
  const std::vector<float> g = got.to_vector(), r = ref.to_vector();
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < g.size(); ++i) {
    diff = std::max(diff, std::fabs(double(g[i]) - r[i]));
    scale = std::max(scale, std::fabs(double(r[i])));
  }
  return diff / std::max(scale, 1e-30);
}

std::vector<std::string> split(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

}  // namespace

TEST_CASE("distill losses: values and student gradients equal PyTorch's", "[distill][golden]") {
  const auto& fx = fixture();
  const std::vector<std::string> cases = split(fx.metadata.at("cases"));
  REQUIRE(cases.size() == 13);
  double worst_value = 0.0, worst_grad = 0.0;
  for (const std::string& name : cases) {
    INFO("case " << name << " (" << fx.metadata.at(name) << ")");
    const std::vector<std::string> words = split(fx.metadata.at(name));  // kind=... param=...
    REQUIRE(words.size() == 2);
    const std::string kind = words[0].substr(5);
    const float param = std::stof(words[1].substr(6));
    Variable s(fx.tensor(name + ".student"), true);
    const Tensor t = fx.tensor(name + ".teacher");
    const Variable loss = run_loss(kind, param, s, t);
    REQUIRE(loss.numel() == 1);
    loss.backward();
    const double value_err = relative_error(loss.value(), fx.tensor(name + ".loss"));
    const double grad_err = relative_error(s.grad(), fx.tensor(name + ".dstudent"));
    CHECK(s.grad().shape() == s.shape());
    CHECK(value_err <= kGoldenTol);
    CHECK(grad_err <= kGoldenTol);
    worst_value = std::max(worst_value, value_err);
    worst_grad = std::max(worst_grad, grad_err);
    if (verbose())
      std::printf("distill golden %-18s value %.2e grad %.2e\n", name.c_str(), value_err, grad_err);
  }
  if (verbose())
    std::printf("distill golden worst: value %.2e, grad %.2e\n", worst_value, worst_grad);
}

TEST_CASE("distill losses: finite-difference gradients", "[distill][grad]") {
  Rng rng(7);
  SECTION("kd_loss T = 1 and T = 4") {
    const Tensor s = rng.uniform_tensor(Shape{3, 7}, -2.0f, 2.0f);
    const Tensor t = rng.uniform_tensor(Shape{3, 7}, -2.0f, 2.0f);
    gradcheck("kd T=1", s, [&](const Variable& v) { return distill::kd_loss(v, t, 1.0f); });
    gradcheck("kd T=4", s, [&](const Variable& v) { return distill::kd_loss(v, t, 4.0f); });
  }
  SECTION("feature_mse_loss") {
    const Tensor s = rng.uniform_tensor(Shape{2, 5, 3, 4}, -1.0f, 1.0f);
    const Tensor t = rng.uniform_tensor(Shape{2, 5, 3, 4}, -1.0f, 1.0f);
    gradcheck("mse", s, [&](const Variable& v) { return distill::feature_mse_loss(v, t); });
  }
  SECTION("attention_transfer_loss, C' != C") {
    const Tensor s = rng.uniform_tensor(Shape{2, 5, 3, 4}, -1.0f, 1.0f);
    const Tensor t = rng.uniform_tensor(Shape{2, 8, 3, 4}, -1.0f, 1.0f);
    gradcheck("at", s, [&](const Variable& v) { return distill::attention_transfer_loss(v, t); });
  }
  SECTION("contrastive_loss tau = 0.5 and tau = 0.1") {
    const Tensor s = rng.uniform_tensor(Shape{4, 6}, -1.0f, 1.0f);
    const Tensor t = rng.uniform_tensor(Shape{4, 6}, -1.0f, 1.0f);
    gradcheck("con 0.5", s,
              [&](const Variable& v) { return distill::contrastive_loss(v, t, 0.5f); });
    gradcheck(
        "con 0.1", s, [&](const Variable& v) { return distill::contrastive_loss(v, t, 0.1f); },
        1e-3f, 2e-2, 2e-3);
  }
  SECTION("channel_attention_loss") {
    const Tensor s = rng.uniform_tensor(Shape{2, 5, 3, 4}, -1.0f, 1.0f);
    const Tensor t = rng.uniform_tensor(Shape{2, 5, 2, 2}, -1.0f, 1.0f);
    gradcheck("ca", s, [&](const Variable& v) { return distill::channel_attention_loss(v, t); });
  }
  SECTION("l2_normalize_rows, weighted sum") {
    const Tensor x = rng.uniform_tensor(Shape{3, 5}, -1.0f, 1.0f);
    const Tensor r = rng.uniform_tensor(Shape{3, 5}, -1.0f, 1.0f);
    gradcheck("l2n", x, [&](const Variable& v) {
      return bitgrad::autograd::sum(distill::l2_normalize_rows(v) * Variable(r, false));
    });
  }
}

TEST_CASE("distill losses: the teacher carries no gradient", "[distill][grad]") {
  Rng rng(11);
  // The teacher enters as a Tensor; even the value of a grad-requiring Variable gets none.
  struct Case {
    std::string name;
    Shape student, teacher;
    std::function<Variable(const Variable&, const Tensor&)> f;
  };
  const std::vector<Case> cases = {
      {"kd", Shape{3, 7}, Shape{3, 7},
       [](const Variable& s, const Tensor& t) { return distill::kd_loss(s, t, 4.0f); }},
      {"mse", Shape{2, 3, 2, 2}, Shape{2, 3, 2, 2},
       [](const Variable& s, const Tensor& t) { return distill::feature_mse_loss(s, t); }},
      {"at", Shape{2, 3, 2, 2}, Shape{2, 4, 2, 2},
       [](const Variable& s, const Tensor& t) { return distill::attention_transfer_loss(s, t); }},
      {"con", Shape{3, 4}, Shape{3, 4},
       [](const Variable& s, const Tensor& t) { return distill::contrastive_loss(s, t, 0.2f); }},
      {"ca", Shape{2, 3, 2, 2}, Shape{2, 3, 2, 2},
       [](const Variable& s, const Tensor& t) { return distill::channel_attention_loss(s, t); }},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Variable s(rng.uniform_tensor(c.student, -1.0f, 1.0f), true);
    Variable teacher(rng.uniform_tensor(c.teacher, -1.0f, 1.0f), true);
    const std::vector<float> teacher_before = teacher.value().to_vector();
    const Variable loss = c.f(s, teacher.value());
    CHECK(loss.requires_grad());
    loss.backward();
    CHECK(s.grad().defined());
    CHECK_FALSE(teacher.grad().defined());
    CHECK(teacher.value().to_vector() == teacher_before);
    // Without a grad-requiring student no graph is built at all.
    const Variable frozen = c.f(Variable(s.value(), false), teacher.value());
    CHECK_FALSE(frozen.requires_grad());
    CHECK(frozen.item() == loss.item());
  }
}

TEST_CASE("kd_loss of identical logits is 0 with a zero gradient", "[distill][grad]") {
  Rng rng(3);
  const Tensor logits = rng.uniform_tensor(Shape{3, 7}, -5.0f, 5.0f);
  for (float temperature : {1.0f, 4.0f, 20.0f}) {
    Variable s(logits.clone(), true);
    const Variable loss = distill::kd_loss(s, logits, temperature);
    loss.backward();
    CHECK(loss.item() == 0.0f);
    for (float g : s.grad().to_vector()) CHECK(g == 0.0f);
  }
  // And the other losses vanish at student == teacher too.
  const Tensor f = rng.uniform_tensor(Shape{2, 3, 4, 4}, -1.0f, 1.0f);
  CHECK(distill::feature_mse_loss(Variable(f), f).item() == 0.0f);
  CHECK(distill::attention_transfer_loss(Variable(f), f).item() == 0.0f);
  CHECK(distill::channel_attention_loss(Variable(f), f).item() == 0.0f);
}

TEST_CASE("distill losses: properties of the definitions", "[distill]") {
  Rng rng(5);
  // kd_loss's T² scaling: dL/ds = (T/B)(q - p) exactly as documented.
  {
    const Tensor s0 = rng.uniform_tensor(Shape{2, 4}, -1.0f, 1.0f);
    const Tensor t = rng.uniform_tensor(Shape{2, 4}, -1.0f, 1.0f);
    const float temperature = 3.0f;
    Variable s(s0.clone(), true);
    distill::kd_loss(s, t, temperature).backward();
    const Tensor q = bitgrad::autograd::softmax(Variable(s0) * (1.0f / temperature), 1).value();
    const Tensor p = bitgrad::autograd::softmax(Variable(t) * (1.0f / temperature), 1).value();
    for (int64_t i = 0; i < s0.numel(); ++i)
      CHECK(s.grad().data()[i] ==
            Approx(temperature / 2.0f * (q.data()[i] - p.data()[i])).margin(1e-7));
  }
  // contrastive_loss depends on directions only (row scaling changes nothing); B = 1 gives 0.
  {
    const Tensor s = rng.uniform_tensor(Shape{4, 5}, -1.0f, 1.0f);
    const Tensor t = rng.uniform_tensor(Shape{4, 5}, -1.0f, 1.0f);
    const float base = distill::contrastive_loss(Variable(s), t, 0.3f).item();
    Tensor s_scaled = s.clone();
    for (int64_t j = 0; j < 5; ++j) s_scaled.data()[j] *= 7.0f;  // row 0 only
    CHECK(distill::contrastive_loss(Variable(s_scaled), t, 0.3f).item() ==
          Approx(base).epsilon(1e-5));
    CHECK(distill::contrastive_loss(Variable(s.slice(0, 0, 1).contiguous()),
                                    t.slice(0, 0, 1).contiguous(), 0.3f)
              .item() == 0.0f);
  }
  // l2_normalize_rows of a zero row: zeros forward and a finite gradient (g / eps), like
  // F.normalize.
  {
    Variable x(Tensor(Shape{2, 3}), true);
    const Variable y = distill::l2_normalize_rows(x);
    for (float v : y.value().to_vector()) CHECK(v == 0.0f);
    bitgrad::autograd::sum(y).backward();
    for (float g : x.grad().to_vector()) {
      CHECK(std::isfinite(g));
      CHECK(g == Approx(1e12f).epsilon(1e-5));
    }
  }
}

TEST_CASE("distill losses: bad shapes and temperatures throw", "[distill]") {
  const Tensor a37(Shape{3, 7}), a36(Shape{3, 6}), a27(Shape{2, 7}), v7(Shape{7});
  const Variable s37(a37, true), s7(v7, true);
  const float nan = std::numeric_limits<float>::quiet_NaN();

  CHECK_THROWS_AS(distill::kd_loss(s37, a36, 2.0f), bitgrad::Error);
  CHECK_THROWS_WITH(
      distill::kd_loss(s37, a36, 2.0f),
      Contains("kd_loss") && Contains("expected teacher logits [3, 7]") && Contains("got [3, 6]"));
  CHECK_THROWS_WITH(distill::kd_loss(s7, v7, 2.0f),
                    Contains("student logits [B, C]") && Contains("[7]"));
  CHECK_THROWS_WITH(distill::kd_loss(s37, a37, 0.0f),
                    Contains("temperature T > 0") && Contains("got 0"));
  CHECK_THROWS_WITH(distill::kd_loss(s37, a37, -1.0f), Contains("T > 0") && Contains("got -1"));
  CHECK_THROWS_WITH(distill::kd_loss(s37, a37, nan), Contains("T > 0"));

  const Variable f(Tensor(Shape{2, 5, 3, 4}), true);
  CHECK_THROWS_WITH(
      distill::feature_mse_loss(f, Tensor(Shape{2, 5, 3, 5})),
      Contains("feature_mse_loss") && Contains("[2, 5, 3, 4]") && Contains("got [2, 5, 3, 5]"));
  CHECK_THROWS_WITH(
      distill::feature_mse_loss(Variable(Tensor::scalar(1.0f), true), Tensor::scalar(1.0f)),
      Contains("feature_mse_loss") && Contains("non-empty"));

  CHECK_NOTHROW(distill::attention_transfer_loss(f, Tensor(Shape{2, 9, 3, 4})));
  CHECK_THROWS_WITH(distill::attention_transfer_loss(f, Tensor(Shape{2, 5, 4, 4})),
                    Contains("attention_transfer_loss") && Contains("[2, C', 3, 4]") &&
                        Contains("got [2, 5, 4, 4]"));
  CHECK_THROWS_WITH(distill::attention_transfer_loss(f, Tensor(Shape{3, 5, 3, 4})),
                    Contains("got [3, 5, 3, 4]"));
  CHECK_THROWS_WITH(distill::attention_transfer_loss(s37, a37),
                    Contains("student feature [B, C, H, W]") && Contains("got [3, 7]"));

  CHECK_THROWS_WITH(distill::contrastive_loss(s37, a36, 0.1f),
                    Contains("contrastive_loss") &&
                        Contains("expected teacher embeddings [3, 7]") && Contains("got [3, 6]"));
  CHECK_THROWS_WITH(distill::contrastive_loss(s37, a27, 0.1f), Contains("got [2, 7]"));
  CHECK_THROWS_WITH(distill::contrastive_loss(s37, a37, 0.0f),
                    Contains("tau > 0") && Contains("got 0"));
  CHECK_THROWS_WITH(distill::contrastive_loss(s7, v7, 0.1f), Contains("[B, D]"));

  CHECK_NOTHROW(distill::channel_attention_loss(f, Tensor(Shape{2, 5, 1, 1})));
  CHECK_THROWS_WITH(distill::channel_attention_loss(f, Tensor(Shape{2, 6, 3, 4})),
                    Contains("channel_attention_loss") && Contains("[2, 5, H', W']") &&
                        Contains("got [2, 6, 3, 4]"));
  CHECK_THROWS_WITH(distill::channel_attention_loss(s37, a37), Contains("[B, C, H, W]"));

  CHECK_THROWS_WITH(distill::l2_normalize_rows(f), Contains("2-D") && Contains("[2, 5, 3, 4]"));
}
