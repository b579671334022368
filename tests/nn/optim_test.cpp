// optim_test.cpp: SGD and Adam / AdamW against torch.optim (hand-computed two-step cases and the
// golden trajectories of tests/golden/make_golden_optim.py: 5 steps, parameters and final state),
// parameter groups, skipped parameters, state export / import, and refused options.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/safetensors.hpp"
#include "core/tensor_ops.hpp"
#include "nn/optim.hpp"
#include "nn/resnet_cifar.hpp"
#include "test_util.hpp"

namespace bitgrad::nn {
namespace {

using autograd::Variable;
using core::Shape;
using core::Tensor;

// One parameter w = 1 with a constant gradient 0.5, two steps.
std::pair<float, float> two_steps(const SgdOptions& options, float group_decay) {
  Variable w(Tensor::full(Shape{1}, 1.0f), true);
  Sgd sgd({ParamGroup{{w}, group_decay, 1.0f}}, options);
  std::pair<float, float> out;
  for (int step = 0; step < 2; ++step) {
    sgd.zero_grad();
    w.mutable_grad() = Tensor::full(Shape{1}, 0.5f);
    sgd.step();
    (step == 0 ? out.first : out.second) = w.value().item();
  }
  return out;
}

TEST_CASE("Sgd: plain, momentum, Nesterov and weight decay follow torch.optim.SGD") {
  // Plain: w -= lr * g.
  auto [a1, a2] = two_steps(SgdOptions{0.1f, 0.0f, 0.0f, false}, 0.0f);
  CHECK(a1 == Approx(0.95f));
  CHECK(a2 == Approx(0.90f));
  // Momentum 0.9, decay 0.1: d1 = 0.5 + 0.1 = 0.6, b1 = 0.6, w1 = 0.94;
  // d2 = 0.5 + 0.094 = 0.594, b2 = 0.54 + 0.594 = 1.134, w2 = 0.94 - 0.1134 = 0.8266.
  auto [b1, b2] = two_steps(SgdOptions{0.1f, 0.9f, 0.0f, false}, 0.1f);
  CHECK(b1 == Approx(0.94f));
  CHECK(b2 == Approx(0.8266f));
  // Nesterov: update = d + mu * b. Step 1: 0.6 + 0.54 = 1.14, w1 = 0.886;
  // d2 = 0.5 + 0.0886 = 0.5886, b2 = 0.54 + 0.5886 = 1.1286, update 0.5886 + 1.01574, w2 =
  // 0.725566.
  auto [c1, c2] = two_steps(SgdOptions{0.1f, 0.9f, 0.0f, true}, 0.1f);
  CHECK(c1 == Approx(0.886f));
  CHECK(c2 == Approx(0.725566f));
}

TEST_CASE("Adam: the first step moves every coordinate by lr against the gradient's sign") {
  // With m and v bias-corrected, step 1 is lr * g / (|g| + eps) per coordinate.
  Variable w(Tensor::from(Shape{3}, {1.0f, -2.0f, 0.5f}), true);
  Adam adam({w}, AdamOptions{.lr = 0.01f});
  w.mutable_grad() = Tensor::from(Shape{3}, {3.0f, -0.25f, 1e-3f});
  adam.step();
  CHECK(w.value().at({0}) == Approx(0.99f).epsilon(1e-6));
  CHECK(w.value().at({1}) == Approx(-1.99f).epsilon(1e-6));
  CHECK(w.value().at({2}) == Approx(0.49f).epsilon(1e-4));  // eps 1e-8 vs |g| 1e-3
  CHECK(adam.steps() == 1);
  CHECK(adam.state().params[0][0].steps == 1);
}

TEST_CASE("clip_grad_norm: scales all gradients to the joint L2 norm, like clip_grad_norm_") {
  Variable a(Tensor::from(Shape{2}, {0.0f, 0.0f}), true);
  Variable b(Tensor::from(Shape{1}, {0.0f}), true);
  Variable none(Tensor::from(Shape{1}, {0.0f}), true);  // no gradient: skipped
  const Tensor shared = Tensor::from(Shape{2}, {3.0f, 0.0f});
  a.mutable_grad() = shared;
  b.mutable_grad() = Tensor::from(Shape{1}, {4.0f});
  // Joint norm 5: above 10 nothing changes.
  CHECK(clip_grad_norm({a, b, none}, 10.0) == Approx(5.0));
  CHECK(a.grad().at({0}) == 3.0f);
  // max_norm 1: every gradient times 1 / (5 + 1e-6); a tensor another owner holds is not modified.
  CHECK(clip_grad_norm({a, b, none}, 1.0) == Approx(5.0));
  CHECK(a.grad().at({0}) == Approx(0.6f).epsilon(1e-5));
  CHECK(b.grad().at({0}) == Approx(0.8f).epsilon(1e-5));
  CHECK(shared.at({0}) == 3.0f);
  CHECK_FALSE(none.grad().defined());
  CHECK(clip_grad_norm({a, b}, 10.0) == Approx(1.0).epsilon(1e-5));
  CHECK_THROWS_WITH(clip_grad_norm({a}, 0.0), Catch::Contains("positive, finite max_norm"));
}

TEST_CASE("Sgd / Adam: parameters without a gradient are left alone; bad options are refused") {
  Variable w(Tensor::full(Shape{2}, 3.0f), true);
  Sgd sgd({w}, SgdOptions{0.1f, 0.9f, 0.0f, false});
  sgd.step();
  CHECK(w.value().at({0}) == 3.0f);
  CHECK(sgd.state().params[0][0].steps == 0);
  CHECK_FALSE(sgd.state().params[0][0].buffers[0].defined());
  CHECK_THROWS_AS(Sgd({w}, SgdOptions{0.1f, 0.0f, 0.0f, true}), bitgrad::Error);
  CHECK_THROWS_AS(Sgd({w}, SgdOptions{-1.0f, 0.0f, 0.0f, false}), bitgrad::Error);
  CHECK_THROWS_AS(Sgd({w}, SgdOptions{0.1f, -0.5f, 0.0f, false}), bitgrad::Error);
  CHECK_THROWS_AS(Sgd({ParamGroup{{w}, -1.0f, 1.0f}}, SgdOptions{}), bitgrad::Error);
  CHECK_THROWS_AS(Sgd({ParamGroup{{Variable()}, 0.0f, 1.0f}}, SgdOptions{}), bitgrad::Error);
  CHECK_THROWS_AS(Adam({w}, AdamOptions{.beta1 = 1.0}), bitgrad::Error);
  CHECK_THROWS_AS(Adam({w}, AdamOptions{.beta2 = -0.1}), bitgrad::Error);
  CHECK_THROWS_AS(Adam({w}, AdamOptions{.eps = -1.0f}), bitgrad::Error);
  const std::string msg = test::error_message([&] { sgd.set_lr(-0.5f); });
  CHECK(msg.find("lr >= 0") != std::string::npos);
  CHECK_THROWS_AS(sgd.set_lr(std::nanf("")), bitgrad::Error);
  sgd.set_lr(0.25f);
  CHECK(sgd.lr() == 0.25f);
}

TEST_CASE("decay_groups: weights decay, BN parameters and biases do not") {
  core::Rng rng(3);
  ResNetCifar model(ResNetCifarConfig{8, 10, 1, Shortcut::kA}, rng);
  const std::vector<ParamGroup> groups = decay_groups(model, 5e-4f);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 5e-4f);
  CHECK(groups[1].weight_decay == 0.0f);
  // ResNet-8: conv1 + 2 convs per block x 3 blocks + linear weight = 8 decayed tensors.
  CHECK(groups[0].params.size() == 8);
  CHECK(groups[0].params.size() + groups[1].params.size() == model.parameters().size());
}

// ---- golden trajectories (tests/golden/make_golden_optim.py) ------------------------------------

// Observed worst relative error (float32 here vs float64 PyTorch) is printed with
// BITGRAD_GOLDEN_VERBOSE=1; the bound is the brief's ~1e-6.
constexpr double kTol = 1e-6;

const core::SafetensorsFile& fixture() {
  static const core::SafetensorsFile file =
      core::read_safetensors(std::string(BITGRAD_GOLDEN_DIR) + "/optim.safetensors");
  return file;
}

void expect_close(const std::string& what, const Tensor& got, const Tensor& ref) {
  INFO(what);
  REQUIRE(got.shape() == ref.shape());
  double scale = 0;
  for (float v : ref.to_vector()) scale = std::max(scale, std::abs(static_cast<double>(v)));
  const double rel = core::max_abs_diff(got, ref) / std::max(scale, 1e-30);
  if (const char* v = std::getenv("BITGRAD_GOLDEN_VERBOSE"); v != nullptr && std::string(v) == "1")
    std::printf("golden %-36s rel %.3e\n", what.c_str(), rel);
  INFO("relative error " << rel << ", tolerance " << kTol);
  CHECK(rel <= kTol);
}

struct GoldenCase {
  const char* key;
  bool adam;
  SgdOptions sgd;
  AdamOptions adam_options;
  bool two_groups = false;  // p1 in its own group with lr_scale1 / decay1
  float lr_scale1 = 1.0f;
  float decay1 = 0.0f;
  bool skip = false;  // p1 has no gradient at steps 1 and 3
};

// Mirrors OPT_CASES in make_golden_optim.py (PyTorch group lrs become lr_scale = group lr / lr).
const GoldenCase kCases[] = {
    {"sgd_plain", false, {0.1f, 0.0f, 0.0f, false}, {}},
    {"sgd_momentum", false, {0.1f, 0.9f, 0.0f, false}, {}},
    {"sgd_nesterov", false, {0.1f, 0.9f, 0.05f, true}, {}},
    {"sgd_decay", false, {0.1f, 0.9f, 0.1f, false}, {}},
    {"sgd_groups", false, {0.1f, 0.9f, 0.05f, false}, {}, true, 0.2f, 0.0f},
    {"sgd_skip", false, {0.1f, 0.9f, 0.0f, false}, {}, false, 1.0f, 0.0f, true},
    {"adam", true, {}, {.lr = 0.01f}},
    {"adam_decay",
     true,
     {},
     {.lr = 0.01f, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6f, .weight_decay = 0.1f}},
    {"adam_groups", true, {}, {.lr = 0.01f, .weight_decay = 0.1f}, true, 0.5f, 0.0f},
    {"adam_skip", true, {}, {.lr = 0.01f}, false, 1.0f, 0.0f, true},
    {"adamw", true, {}, {.lr = 0.01f, .weight_decay = 0.1f, .decoupled_weight_decay = true}},
    {"adamw_groups",
     true,
     {},
     {.lr = 0.01f, .weight_decay = 0.1f, .decoupled_weight_decay = true},
     true,
     5.0f,
     0.0f},
};

std::unique_ptr<Optimizer> make_optimizer(const GoldenCase& c, const Variable& p0,
                                          const Variable& p1) {
  const float decay = c.adam ? c.adam_options.weight_decay : c.sgd.weight_decay;
  std::vector<ParamGroup> groups;
  if (c.two_groups)
    groups = {ParamGroup{{p0}, decay, 1.0f}, ParamGroup{{p1}, c.decay1, c.lr_scale1}};
  else
    groups = {ParamGroup{{p0, p1}, decay, 1.0f}};
  if (c.adam) return std::make_unique<Adam>(std::move(groups), c.adam_options);
  return std::make_unique<Sgd>(std::move(groups), c.sgd);
}

// The parameters' state in the optimizer's [group][index] layout.
const ParamState& state_of(const OptimizerState& s, const GoldenCase& c, int param) {
  return c.two_groups ? s.params[static_cast<size_t>(param)][0]
                      : s.params[0][static_cast<size_t>(param)];
}

TEST_CASE("optimizers: 5-step trajectories match torch.optim (golden)", "[golden]") {
  const core::SafetensorsFile& f = fixture();
  const int steps = std::stoi(f.metadata.at("steps"));
  for (const GoldenCase& c : kCases) {
    SECTION(c.key) {
      const std::string key = c.key;
      Variable p0(f.tensor("init.p0"), true), p1(f.tensor("init.p1"), true);
      std::unique_ptr<Optimizer> opt = make_optimizer(c, p0, p1);
      for (int s = 0; s < steps; ++s) {
        opt->zero_grad();
        const std::string g = "grad" + std::to_string(s) + ".";
        p0.mutable_grad() = f.tensor(g + "p0");
        if (!(c.skip && (s == 1 || s == 3))) p1.mutable_grad() = f.tensor(g + "p1");
        opt->step();
        const std::string at = key + ".step" + std::to_string(s) + ".";
        expect_close(at + "p0", p0.value(), f.tensor(at + "p0"));
        expect_close(at + "p1", p1.value(), f.tensor(at + "p1"));
      }
      const OptimizerState st = opt->state();
      CHECK(st.steps == steps);
      const std::vector<std::string> buffers = opt->buffer_names();
      for (int param = 0; param < 2; ++param) {
        const std::string pname = "p" + std::to_string(param);
        const ParamState& ps = state_of(st, c, param);
        const std::string steps_key = key + ".state.steps." + pname;
        CHECK(ps.steps == static_cast<int64_t>(f.tensor(steps_key).item()));
        size_t compared = 0;
        for (size_t b = 0; b < buffers.size(); ++b) {
          const std::string ref = key + ".state." + buffers[b] + "." + pname;
          REQUIRE(f.contains(ref));
          expect_close(ref, ps.buffers[b], f.tensor(ref));
          ++compared;
        }
        // Every state tensor PyTorch keeps has a counterpart here (none without momentum).
        size_t in_file = 0;
        for (const char* b : {"momentum", "exp_avg", "exp_avg_sq"})
          in_file += f.contains(key + ".state." + b + "." + pname) ? 1 : 0;
        CHECK(compared == in_file);
      }
    }
  }
}

// ---- state export / import ---------------------------------------------------------------------

// Two optimizers of the same kind: the second is loaded from the first's state after 2 of 5 steps,
// and both continue; the parameters must stay bit-identical.
template <typename Opt, typename Options>
void check_resume(const Options& options) {
  const core::SafetensorsFile& f = fixture();
  Variable a0(f.tensor("init.p0"), true), a1(f.tensor("init.p1"), true);
  Opt first(std::vector<ParamGroup>{{{a0}, 0.01f, 1.0f}, {{a1}, 0.0f, 0.5f}}, options);
  Variable b0, b1;
  std::unique_ptr<Opt> second;
  for (int s = 0; s < 5; ++s) {
    if (s == 2) {
      b0 = Variable(a0.value().clone(), true);
      b1 = Variable(a1.value().clone(), true);
      second = std::make_unique<Opt>(
          std::vector<ParamGroup>{{{b0}, 0.01f, 1.0f}, {{b1}, 0.0f, 0.5f}}, options);
      second->load_state(first.state());
      CHECK(second->steps() == 2);
    }
    const std::string g = "grad" + std::to_string(s) + ".";
    first.zero_grad();
    a0.mutable_grad() = f.tensor(g + "p0");
    a1.mutable_grad() = f.tensor(g + "p1");
    first.set_lr(0.1f / static_cast<float>(s + 1));
    first.step();
    if (second) {
      second->zero_grad();
      b0.mutable_grad() = f.tensor(g + "p0");
      b1.mutable_grad() = f.tensor(g + "p1");
      second->set_lr(0.1f / static_cast<float>(s + 1));
      second->step();
    }
  }
  CHECK(a0.value().to_vector() == b0.value().to_vector());
  CHECK(a1.value().to_vector() == b1.value().to_vector());
}

TEST_CASE("Optimizer::state / load_state: a restored optimizer continues bit-identically") {
  check_resume<Sgd>(SgdOptions{0.1f, 0.9f, 0.0f, true});
  check_resume<Adam>(AdamOptions{.lr = 0.01f});
  check_resume<Adam>(AdamOptions{.lr = 0.01f, .decoupled_weight_decay = true});
}

TEST_CASE("Optimizer::state is a copy; load_state refuses a state of another layout") {
  Variable w(Tensor::full(Shape{2, 2}, 1.0f), true);
  Adam adam({w}, AdamOptions{});
  w.mutable_grad() = Tensor::full(Shape{2, 2}, 0.5f);
  adam.step();
  OptimizerState s = adam.state();
  REQUIRE(s.params.size() == 1);
  REQUIRE(s.params[0].size() == 1);
  REQUIRE(s.params[0][0].buffers.size() == 2);
  s.params[0][0].buffers[0].set({0, 0}, 123.0f);  // must not reach the optimizer
  CHECK(adam.state().params[0][0].buffers[0].at({0, 0}) != 123.0f);

  OptimizerState bad = adam.state();
  bad.params[0][0].buffers[1] = Tensor(Shape{4});
  std::string msg = test::error_message([&] { adam.load_state(bad); });
  CHECK(msg.find("exp_avg_sq expects [2, 2], got [4]") != std::string::npos);

  bad = adam.state();
  bad.params[0][0].buffers[0] = Tensor();
  msg = test::error_message([&] { adam.load_state(bad); });
  CHECK(msg.find("no buffer exp_avg") != std::string::npos);

  bad = adam.state();
  bad.params.push_back({});
  msg = test::error_message([&] { adam.load_state(bad); });
  CHECK(msg.find("expected 1 groups, got 2") != std::string::npos);

  Sgd sgd({w}, SgdOptions{0.1f, 0.9f, 0.0f, false});  // one buffer, Adam's state has two
  msg = test::error_message([&] { sgd.load_state(adam.state()); });
  CHECK(msg.find("expects 1 buffers, got 2") != std::string::npos);
  // Nothing was loaded by the failed calls.
  CHECK(sgd.steps() == 0);
  CHECK(adam.steps() == 1);
}

TEST_CASE("Optimizer: kind, buffer names and options describe the optimizer") {
  Variable w(Tensor::full(Shape{1}, 1.0f), true);
  const Sgd plain({w}, SgdOptions{0.1f, 0.0f, 0.0f, false});
  const Sgd momentum({w}, SgdOptions{0.1f, 0.9f, 5e-4f, true});
  const Adam adamw({w}, AdamOptions{.weight_decay = 0.01f, .decoupled_weight_decay = true});
  CHECK(plain.kind() == "sgd");
  CHECK(plain.buffer_names().empty());
  CHECK(momentum.buffer_names() == std::vector<std::string>{"momentum"});
  CHECK(momentum.options()["nesterov"].as_bool());
  CHECK(momentum.options()["momentum"].as_number() == Approx(0.9));
  CHECK(adamw.kind() == "adam");
  CHECK(adamw.buffer_names() == std::vector<std::string>{"exp_avg", "exp_avg_sq"});
  CHECK(adamw.options()["decoupled_weight_decay"].as_bool());
  CHECK(adamw.options()["beta2"].as_number() == Approx(0.999));
}

}  // namespace
}  // namespace bitgrad::nn
