// module_test.cpp: Module registration and names, train/eval propagation, parameter groups and
// counts, initialisers, BatchNorm buffers and input statistics, Sequential, ResNet feature taps,
// and state dicts (file round trip, strict-load errors, aliases).
#include "nn/module.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/tensor_ops.hpp"
#include "nn/activation.hpp"
#include "nn/batch_norm.hpp"
#include "nn/conv2d.hpp"
#include "nn/init.hpp"
#include "nn/linear.hpp"
#include "nn/resnet_cifar.hpp"
#include "nn/sequential.hpp"
#include "nn/state_dict.hpp"

namespace {

using bitgrad::Error;
using bitgrad::autograd::Variable;
using bitgrad::core::Rng;
using bitgrad::core::Shape;
using bitgrad::core::Tensor;
namespace nn = bitgrad::nn;
using Catch::Matchers::Contains;

// A two-level model written the way users write models: members + registration + forward.
class TinyNet final : public nn::Module {
 public:
  explicit TinyNet(Rng& rng)
      : Module("TinyNet"),
        conv_({.in_channels = 2, .out_channels = 4, .kernel = 3, .padding = 1}, rng),
        bn_(4),
        fc_({.in_features = 4, .out_features = 3}, rng) {
    register_module("conv", conv_);
    register_module("bn", bn_);
    head_.emplace_back<nn::ReLU>();
    head_.emplace_back<nn::GlobalAvgPool2d>();
    register_module("head", head_);
    register_module("fc", fc_);
  }
  Variable forward(const Variable& x) {
    return fc_.forward(head_.forward(bn_.forward(conv_.forward(x))));
  }
  // Exposes the protected registration calls for the error tests.
  void register_again(const std::string& name) {
    register_parameter(name, extra_, nn::ParamKind::kBias);
  }

 private:
  nn::Conv2d conv_;
  nn::BatchNorm2d bn_;
  nn::Sequential head_;
  nn::Linear fc_;
  Variable extra_{Tensor::zeros(Shape{1}), true};
};

std::vector<std::string> names_of(const std::vector<nn::NamedParameter>& ps) {
  std::vector<std::string> out;
  for (const auto& p : ps) out.push_back(p.name);
  return out;
}

std::string temp_path(const std::string& stem) {
  const auto tick = std::chrono::steady_clock::now().time_since_epoch().count();
  return (std::filesystem::temp_directory_path() /
          ("bitgrad_nn_" + stem + "_" + std::to_string(tick) + ".safetensors"))
      .string();
}

bool same_values(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to_vector() == b.to_vector();
}

}  // namespace

TEST_CASE("module: registration gives dotted PyTorch names in registration order", "[nn]") {
  Rng rng(1);
  TinyNet net(rng);
  CHECK(names_of(net.named_parameters()) == std::vector<std::string>{"conv.weight", "conv.bias",
                                                                     "bn.weight", "bn.bias",
                                                                     "fc.weight", "fc.bias"});
  const auto buffers = net.named_buffers();
  REQUIRE(buffers.size() == 2);
  CHECK(buffers[0].name == "bn.running_mean");
  CHECK(buffers[1].name == "bn.running_var");
  const auto counters = net.named_counters();
  REQUIRE(counters.size() == 1);
  CHECK(counters[0].name == "bn.num_batches_tracked");
  const auto children = net.named_children();
  REQUIRE(children.size() == 4);
  CHECK(children[2].name == "head");
  CHECK(children[2].module->type_name() == "Sequential");
  std::vector<std::string> modules;
  for (const auto& m : net.named_modules()) modules.push_back(m.name);
  CHECK(modules == std::vector<std::string>{"", "conv", "bn", "head", "head.0", "head.1", "fc"});
  // Handles share the parameter: a value change through the listing is seen by the layer.
  Variable w = net.named_parameters()[0].variable;
  CHECK(w.impl() == net.parameters()[0].impl());
  CHECK(net.num_parameters() == 4 * 2 * 9 + 4 + 4 + 4 + 3 * 4 + 3);
}

TEST_CASE("module: bad registrations throw", "[nn]") {
  Rng rng(1);
  TinyNet net(rng);
  CHECK_THROWS_WITH(net.register_again("conv"), Contains("already registered"));
  CHECK_THROWS_WITH(net.register_again("a.b"), Contains("contain no '.'"));
  CHECK_THROWS_WITH(net.register_again(""), Contains("non-empty"));
  net.register_again("extra");
  CHECK(net.named_parameters()[0].name == "extra");
}

TEST_CASE("module: train/eval propagates to every descendant", "[nn]") {
  Rng rng(2);
  auto model = nn::resnet_cifar(20, 10, 3, nn::Shortcut::kB, rng);
  auto all_modes = [&](bool expected) {
    for (const auto& m : model.named_modules())
      if (m.module->is_training() != expected) return false;
    return true;
  };
  CHECK(all_modes(true));
  model.eval();
  CHECK(all_modes(false));
  model.train();
  CHECK(all_modes(true));
  model.block(2, 0).train(false);  // a subtree alone
  CHECK_FALSE(model.block(2, 0).shortcut_bn()->is_training());
  CHECK(model.block(2, 1).bn1().is_training());
  // A child appended to an eval-mode Sequential takes its mode.
  nn::Sequential seq;
  seq.eval();
  auto& bn = seq.emplace_back<nn::BatchNorm2d>(3);
  CHECK_FALSE(bn.is_training());
}

TEST_CASE("module: parameter groups split decay from no_decay", "[nn]") {
  Rng rng(3);
  auto model = nn::resnet_cifar(20, 10, 3, nn::Shortcut::kA, rng);
  const nn::ParameterGroups groups = model.parameter_groups();
  // 19 convs + linear.weight decay; 19 BNs x (gamma, beta) + linear.bias do not.
  CHECK(groups.decay.size() == 20);
  CHECK(groups.no_decay.size() == 39);
  int64_t total = 0;
  for (const auto& p : groups.decay) {
    CHECK(p.kind == nn::ParamKind::kWeight);
    CHECK((p.variable.rank() == 4 || p.name == "linear.weight"));
    total += p.variable.numel();
  }
  for (const auto& p : groups.no_decay) {
    CHECK(p.variable.rank() == 1);
    CHECK(p.kind != nn::ParamKind::kWeight);
    total += p.variable.numel();
  }
  CHECK(total == model.num_parameters());
  const auto named = model.named_parameters();
  CHECK(named[1].name == "bn1.weight");
  CHECK(named[1].kind == nn::ParamKind::kNormScale);
  CHECK(named[2].kind == nn::ParamKind::kNormShift);
  CHECK(named.back().name == "linear.bias");
  CHECK(named.back().kind == nn::ParamKind::kBias);
}

TEST_CASE("resnet_cifar: parameter counts match ALGORITHMS.md section 9", "[nn]") {
  struct Row {
    int depth;
    nn::Shortcut shortcut;
    int64_t classes;
    int64_t expected;
  };
  const std::vector<Row> rows = {
      {20, nn::Shortcut::kA, 10, 269722},  {20, nn::Shortcut::kB, 10, 272474},
      {20, nn::Shortcut::kA, 100, 275572}, {20, nn::Shortcut::kB, 100, 278324},
      {32, nn::Shortcut::kA, 10, 464154},  {32, nn::Shortcut::kB, 10, 466906},
      {32, nn::Shortcut::kA, 100, 470004}, {32, nn::Shortcut::kB, 100, 472756},
      {56, nn::Shortcut::kA, 10, 853018},  {56, nn::Shortcut::kB, 10, 855770},
      {56, nn::Shortcut::kA, 100, 858868}, {56, nn::Shortcut::kB, 100, 861620},
  };
  for (const Row& r : rows) {
    Rng rng(4);
    auto model = nn::resnet_cifar(r.depth, r.classes, 3, r.shortcut, rng);
    INFO("depth " << r.depth << " classes " << r.classes << " option "
                  << (r.shortcut == nn::Shortcut::kA ? "A" : "B"));
    CHECK(model.num_parameters() == r.expected);
  }
  Rng rng(4);
  // One input channel removes 2 x 16 x 9 stem weights.
  CHECK(nn::resnet_cifar(20, 10, 1, nn::Shortcut::kA, rng).num_parameters() == 269722 - 2 * 16 * 9);
  CHECK_THROWS_WITH(nn::resnet_cifar(21, 10, 3, nn::Shortcut::kA, rng), Contains("6n+2"));
  CHECK_THROWS_WITH(nn::resnet_cifar(2, 10, 3, nn::Shortcut::kA, rng), Contains("got 2"));
  CHECK_THROWS_WITH(nn::resnet_cifar(20, 0, 3, nn::Shortcut::kA, rng), Contains("num_classes"));
}

TEST_CASE("resnet_cifar: names follow akamaster's layout", "[nn]") {
  Rng rng(5);
  auto a = nn::resnet_cifar(20, 10, 3, nn::Shortcut::kA, rng);
  auto b = nn::resnet_cifar(20, 10, 3, nn::Shortcut::kB, rng);
  std::set<std::string> names_a, names_b;
  for (const auto& [name, t] : nn::state_dict(a).tensors) names_a.insert(name);
  for (const auto& [name, t] : nn::state_dict(b).tensors) names_b.insert(name);
  for (const char* n :
       {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
        "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer2.0.bn2.running_var",
        "layer3.2.conv2.weight", "linear.weight", "linear.bias"}) {
    CHECK(names_a.count(n) == 1);
    CHECK(names_b.count(n) == 1);
  }
  // 19 convs + 19 BNs x 5 entries + 2 linear for A; B adds 2 x (conv + 5 BN entries).
  CHECK(names_a.size() == 19 + 19 * 5 + 2);
  CHECK(names_b.size() == names_a.size() + 2 * 6);
  for (const char* n :
       {"layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.weight",
        "layer3.0.shortcut.1.running_var", "layer3.0.shortcut.1.num_batches_tracked"}) {
    CHECK(names_b.count(n) == 1);
    CHECK(names_a.count(n) == 0);
  }
  CHECK(names_b.count("layer1.0.shortcut.0.weight") == 0);
}

TEST_CASE("init: kaiming, default and constant initialisers", "[nn]") {
  Rng rng(6);
  Variable w(Tensor(Shape{64, 32, 3, 3}), true);
  nn::kaiming_normal_(w, nn::FanMode::kFanOut, rng);
  const std::vector<float> v = w.value().to_vector();
  double sum = 0, sq = 0;
  for (float x : v) {
    sum += x;
    sq += static_cast<double>(x) * x;
  }
  const double mean = sum / static_cast<double>(v.size());
  const double stddev = std::sqrt(sq / static_cast<double>(v.size()) - mean * mean);
  CHECK(std::abs(mean) < 0.005);
  CHECK(stddev == Approx(std::sqrt(2.0 / (64 * 9))).epsilon(0.03));
  CHECK(nn::fan_in(w.shape()) == 32 * 9);
  CHECK(nn::fan_out(w.shape()) == 64 * 9);
  CHECK_THROWS_WITH(nn::fan_in(Shape{5}), Contains("rank >= 2"));

  // PyTorch's default: weight and bias within 1/sqrt(fan_in), and actually spread over that range.
  Variable lw(Tensor(Shape{50, 40}), true), lb(Tensor(Shape{50}), true);
  nn::default_init_(lw, &lb, rng);
  const float bound = 1.0f / std::sqrt(40.0f);
  float max_w = 0, max_b = 0;
  for (float x : lw.value().to_vector()) max_w = std::max(max_w, std::abs(x));
  for (float x : lb.value().to_vector()) max_b = std::max(max_b, std::abs(x));
  CHECK(max_w <= bound);
  CHECK(max_w > 0.95f * bound);
  CHECK(max_b <= bound);
  CHECK(max_b > 0.8f * bound);

  // In place: another handle to the value sees the new numbers.
  Tensor alias = lw.value();
  nn::ones_(lw);
  CHECK(alias.at({3, 7}) == 1.0f);
  nn::zeros_(lw);
  CHECK(alias.at({3, 7}) == 0.0f);

  // Same seed, same model.
  Rng r1(42), r2(42);
  auto m1 = nn::resnet_cifar(8, 10, 3, nn::Shortcut::kB, r1);
  auto m2 = nn::resnet_cifar(8, 10, 3, nn::Shortcut::kB, r2);
  const auto p1 = m1.named_parameters(), p2 = m2.named_parameters();
  for (size_t i = 0; i < p1.size(); ++i)
    CHECK(same_values(p1[i].variable.value(), p2[i].variable.value()));
  // ResNet convs use fan_out Kaiming: stage-3 weights have std sqrt(2 / (64 * 9)).
  const std::vector<float> c = m1.block(3, 0).conv2().weight().value().to_vector();
  double s2 = 0;
  for (float x : c) s2 += static_cast<double>(x) * x;
  CHECK(std::sqrt(s2 / static_cast<double>(c.size())) ==
        Approx(std::sqrt(2.0 / 576)).epsilon(0.05));
  CHECK(m1.bn1().weight().value().to_vector() == std::vector<float>(16, 1.0f));
}

TEST_CASE("batch_norm layer: running stats, counter, eval mode and recorded input stats", "[nn]") {
  Rng rng(7);
  nn::BatchNorm2d bn(3);
  Tensor x_t = rng.normal_tensor(Shape{4, 3, 5, 5}, 0.5f, 2.0f);
  const Variable x(x_t);
  bn.set_record_input_stats(true);
  const Variable y = bn.forward(x);
  CHECK(bn.num_batches_tracked() == 1);
  const nn::BatchNormInputStats& stats = bn.last_input_stats();
  REQUIRE(stats.mean.defined());
  REQUIRE(stats.mean.shape() == Shape{3});
  REQUIRE(stats.var.shape() == Shape{3});
  for (int64_t c = 0; c < 3; ++c) {
    double s = 0, sq = 0;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t h = 0; h < 5; ++h)
        for (int64_t w = 0; w < 5; ++w) {
          const double v = x_t.at({n, c, h, w});
          s += v;
          sq += v * v;
        }
    const double mean = s / 100, var = sq / 100 - mean * mean;
    CHECK(stats.mean.value().at({c}) == Approx(mean).margin(1e-5));
    CHECK(stats.var.value().at({c}) == Approx(var).epsilon(1e-4));
    // running = 0.9 * init + 0.1 * batch (unbiased variance, n = 100).
    CHECK(bn.running_mean().at({c}) == Approx(0.1 * mean).margin(1e-5));
    CHECK(bn.running_var().at({c}) == Approx(0.9 + 0.1 * var * 100 / 99).epsilon(1e-4));
    // Training output is normalised per channel.
    double ys = 0;
    for (int64_t n = 0; n < 4; ++n)
      for (int64_t h = 0; h < 5; ++h)
        for (int64_t w = 0; w < 5; ++w) ys += y.value().at({n, c, h, w});
    CHECK(ys / 100 == Approx(0.0).margin(1e-5));
  }
  // Eval: running statistics used, nothing updated or counted.
  bn.eval();
  const Tensor rm = bn.running_mean().clone();
  const Variable ye = bn.forward(x);
  CHECK(bn.num_batches_tracked() == 1);
  CHECK(same_values(rm, bn.running_mean()));
  const float expected =
      (x_t.at({1, 2, 3, 4}) - rm.at({2})) / std::sqrt(bn.running_var().at({2}) + 1e-5f);
  CHECK(ye.value().at({1, 2, 3, 4}) == Approx(expected).epsilon(1e-5));
  bn.set_record_input_stats(false);
  CHECK_FALSE(bn.last_input_stats().mean.defined());
  CHECK_THROWS_WITH(bn.forward(Variable(Tensor(Shape{4, 3}))), Contains("[N, 3, H, W]"));
  nn::BatchNorm1d bn1(5);
  CHECK(bn1.forward(Variable(rng.normal_tensor(Shape{8, 5}))).shape() == Shape{8, 5});
  CHECK_THROWS_WITH(bn1.forward(Variable(Tensor(Shape{8, 4}))), Contains("BatchNorm1d"));
}

TEST_CASE("sequential: children named by index, applied in order", "[nn]") {
  Rng rng(8);
  nn::Sequential seq;
  auto& fc1 =
      seq.emplace_back<nn::Linear>(nn::LinearConfig{.in_features = 4, .out_features = 6}, rng);
  seq.emplace_back<nn::Tanh>();
  auto& fc2 =
      seq.emplace_back<nn::Linear>(nn::LinearConfig{.in_features = 6, .out_features = 2}, rng);
  CHECK(seq.size() == 3);
  CHECK(names_of(seq.named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  CHECK(seq[1].type_name() == "Tanh");
  const Variable x(rng.normal_tensor(Shape{3, 4}));
  const Variable y = seq.forward(x);
  const Variable expected = fc2.forward(bitgrad::autograd::tanh(fc1.forward(x)));
  CHECK(bitgrad::core::max_abs_diff(y.value(), expected.value()) == 0.0f);
  CHECK(nn::Sequential().forward(x).impl() == x.impl());
}

TEST_CASE("resnet_cifar: feature taps have the documented names and shapes", "[nn]") {
  Rng rng(9);
  auto model = nn::resnet_cifar(20, 10, 3, nn::Shortcut::kA, rng);
  nn::FeatureTaps taps;
  const Variable x(rng.normal_tensor(Shape{2, 3, 32, 32}));
  const Variable logits = model.forward(x, &taps);
  REQUIRE(logits.shape() == Shape{2, 10});
  REQUIRE(taps.size() == 1 + 2 * 9 + 1);
  CHECK(taps.entries().front().first == "stem");
  CHECK(taps.entries()[1].first == "layer1.0.pre_add");
  CHECK(taps.entries()[2].first == "layer1.0.out");
  CHECK(taps.entries().back().first == "pool");
  CHECK(taps.at("stem").shape() == Shape{2, 16, 32, 32});
  CHECK(taps.at("layer1.2.out").shape() == Shape{2, 16, 32, 32});
  CHECK(taps.at("layer2.0.pre_add").shape() == Shape{2, 32, 16, 16});
  CHECK(taps.at("layer3.2.out").shape() == Shape{2, 64, 8, 8});
  CHECK(taps.at("pool").shape() == Shape{2, 64});
  CHECK_THROWS_WITH(taps.at("layer4.0.out"), Contains("available: [stem, layer1.0.pre_add"));
  // The taps are the values the forward used: relu(out) >= 0, pool feeds linear, out = relu(pre_add
  // + x).
  const Variable again = model.linear().forward(taps.at("pool"));
  CHECK(bitgrad::core::max_abs_diff(again.value(), logits.value()) == 0.0f);
  const Tensor expected_out = bitgrad::core::map(
      bitgrad::core::add(taps.at("layer1.1.pre_add").value(), taps.at("layer1.0.out").value()),
      [](float v) { return v > 0 ? v : 0.0f; });
  CHECK(bitgrad::core::max_abs_diff(expected_out, taps.at("layer1.1.out").value()) == 0.0f);
  // Taps are part of the graph: a loss on a feature reaches the stem weights.
  bitgrad::autograd::mean(taps.at("layer2.1.out")).backward();
  CHECK(model.conv1().weight().grad().defined());
  CHECK_FALSE(model.linear().weight().grad().defined());  // not on the path to layer2.1.out
  model.zero_grad();
  for (const auto& p : model.named_parameters()) CHECK_FALSE(p.variable.grad().defined());
  // A model with 1 input channel on 28x28 (Fashion-MNIST) goes 28 -> 14 -> 7.
  auto mnist = nn::resnet_cifar(8, 10, 1, nn::Shortcut::kA, rng);
  nn::FeatureTaps t2;
  mnist.forward(Variable(rng.normal_tensor(Shape{1, 1, 28, 28})), &t2);
  CHECK(t2.at("layer3.0.out").shape() == Shape{1, 64, 7, 7});
  CHECK_THROWS_WITH(mnist.forward(Variable(Tensor(Shape{1, 3, 28, 28}))), Contains("[N, 1, H, W]"));
}

TEST_CASE("state_dict: save, load into a fresh model, same values and same outputs", "[nn]") {
  Rng rng(10);
  auto source = nn::resnet_cifar(8, 10, 3, nn::Shortcut::kB, rng);
  // One training forward moves the running stats and the counters away from their initial values.
  source.forward(Variable(rng.normal_tensor(Shape{4, 3, 16, 16})));
  const std::string path = temp_path("roundtrip");
  nn::save_model(path, source, {{"arch", "resnet8"}, {"note", "test"}});
  Rng other(11);
  auto target = nn::resnet_cifar(8, 10, 3, nn::Shortcut::kB, other);
  const auto metadata = nn::load_model(path, target);
  std::filesystem::remove(path);
  CHECK(metadata.at("arch") == "resnet8");
  CHECK(metadata.at("note") == "test");
  const auto ps = source.named_parameters(), pt = target.named_parameters();
  REQUIRE(ps.size() == pt.size());
  for (size_t i = 0; i < ps.size(); ++i) {
    INFO(ps[i].name);
    CHECK(same_values(ps[i].variable.value(), pt[i].variable.value()));
  }
  const auto bs = source.named_buffers(), bt = target.named_buffers();
  for (size_t i = 0; i < bs.size(); ++i) CHECK(same_values(*bs[i].tensor, *bt[i].tensor));
  for (const auto& c : target.named_counters()) CHECK(*c.value == 1);
  source.eval();
  target.eval();
  const Variable x(rng.normal_tensor(Shape{2, 3, 16, 16}));
  CHECK(bitgrad::core::max_abs_diff(source.forward(x).value(), target.forward(x).value()) == 0.0f);
  // The counter is stored as a 0-d I64, as PyTorch does.
  const auto file = nn::state_dict(source);
  const auto& counter = file.tensors.at("layer1.0.bn1.num_batches_tracked");
  CHECK(counter.dtype == bitgrad::core::DType::kI64);
  CHECK(counter.shape.empty());
}

TEST_CASE("state_dict: strict loading reports missing, unexpected and mis-shaped tensors", "[nn]") {
  Rng rng(12);
  auto model = nn::resnet_cifar(8, 10, 3, nn::Shortcut::kA, rng);
  const bitgrad::core::SafetensorsFile good = nn::state_dict(model);
  const Tensor before = model.conv1().weight().value().clone();

  SECTION("missing") {
    auto file = good;
    file.tensors.erase("layer2.0.bn1.running_var");
    file.tensors.erase("linear.bias");
    CHECK_THROWS_WITH(nn::load_state_dict(model, file),
                      Contains("2 missing: [linear.bias, layer2.0.bn1.running_var]"));
    CHECK_NOTHROW(nn::load_state_dict(model, file, /*strict=*/false));
  }
  SECTION("unexpected") {
    auto file = good;
    file.tensors["layer4.0.conv1.weight"] = good.tensors.at("conv1.weight");
    CHECK_THROWS_WITH(nn::load_state_dict(model, file),
                      Contains("1 unexpected: [layer4.0.conv1.weight]"));
    CHECK_NOTHROW(nn::load_state_dict(model, file, /*strict=*/false));
  }
  SECTION("wrong shape, even without strict; nothing is loaded") {
    auto file = good;
    Rng r(13);
    file.tensors["linear.bias"] =
        bitgrad::core::StoredTensor::from_tensor(r.normal_tensor(Shape{10}));
    file.tensors["conv1.weight"] =
        bitgrad::core::StoredTensor::from_tensor(r.normal_tensor(Shape{16, 1, 3, 3}));
    const Tensor bias_before = model.linear().bias().value().clone();
    for (bool strict : {true, false}) {
      CHECK_THROWS_WITH(nn::load_state_dict(model, file, strict),
                        Contains("shape mismatch: conv1.weight expects [16, 3, 3, 3], file has "
                                 "[16, 1, 3, 3]"));
      CHECK(same_values(model.linear().bias().value(), bias_before));
    }
  }
  SECTION("all problems in one message") {
    auto file = good;
    file.tensors.erase("bn1.bias");
    file.tensors["extra"] = good.tensors.at("bn1.weight");
    file.tensors["linear.weight"] =
        bitgrad::core::StoredTensor::from_tensor(Tensor(Shape{100, 64}));
    CHECK_THROWS_WITH(nn::load_state_dict(model, file),
                      Contains("missing: [bn1.bias]") && Contains("unexpected: [extra]") &&
                          Contains("linear.weight expects [10, 64], file has [100, 64]") &&
                          Contains("(ResNetCifar)"));
  }
  SECTION("a missing file names the path") {
    CHECK_THROWS_AS(nn::load_model("/nonexistent/dir/model.safetensors", model), Error);
  }
  CHECK(same_values(model.conv1().weight().value(), before));
}

TEST_CASE("state_dict: fc./downsample. spellings load as aliases", "[nn]") {
  Rng rng(14);
  auto source = nn::resnet_cifar(8, 10, 3, nn::Shortcut::kB, rng);
  auto file = nn::state_dict(source);
  bitgrad::core::SafetensorsFile renamed;
  for (const auto& [name, t] : file.tensors) {
    std::string n = name;
    if (n.rfind("linear.", 0) == 0) n = "fc." + n.substr(7);
    if (const auto at = n.find(".shortcut."); at != std::string::npos)
      n = n.substr(0, at) + ".downsample." + n.substr(at + 10);
    renamed.tensors[n] = t;
  }
  REQUIRE(renamed.contains("fc.weight"));
  REQUIRE(renamed.contains("layer2.0.downsample.0.weight"));
  Rng other(15);
  auto target = nn::resnet_cifar(8, 10, 3, nn::Shortcut::kB, other);
  nn::load_state_dict(target, renamed);
  CHECK(same_values(target.linear().weight().value(), source.linear().weight().value()));
  CHECK(same_values(target.block(2, 0).shortcut_conv()->weight().value(),
                    source.block(2, 0).shortcut_conv()->weight().value()));
  // Both spellings at once is ambiguous.
  renamed.tensors["linear.bias"] = file.tensors.at("linear.bias");
  CHECK_THROWS_WITH(nn::load_state_dict(target, renamed),
                    Contains("both fc.bias and linear.bias give linear.bias"));
}
