// smoke_test.cpp: end-to-end training smoke tests. A small Sequential CNN and a ResNet-8 (option A)
// learn a synthetic, separable 4-class image problem with plain SGD (w -= lr * g written here), and
// the loss must fall by a stated factor while accuracy rises (llm.c's "expected losses" habit).
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "autograd/ops.hpp"
#include "core/rng.hpp"
#include "core/tensor_ops.hpp"
#include "nn/activation.hpp"
#include "nn/batch_norm.hpp"
#include "nn/conv2d.hpp"
#include "nn/linear.hpp"
#include "nn/resnet_cifar.hpp"
#include "nn/sequential.hpp"

namespace {

using bitgrad::autograd::Variable;
using bitgrad::core::Rng;
using bitgrad::core::Shape;
using bitgrad::core::Tensor;
namespace nn = bitgrad::nn;
namespace ag = bitgrad::autograd;

constexpr int64_t kClasses = 4;
constexpr int64_t kSide = 8;

// Class k = a bright 3x3 patch in quadrant k (at a random offset inside it) on N(0, 0.3) noise.
struct Batch {
  Tensor images;  // [N, 1, 8, 8]
  std::vector<int64_t> labels;
};

Batch make_batch(int64_t n, Rng& rng) {
  Batch b{rng.normal_tensor(Shape{n, 1, kSide, kSide}, 0.0f, 0.3f), {}};
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<int64_t>(rng.below(kClasses));
    b.labels.push_back(k);
    const int64_t r0 = (k / 2) * 4 + static_cast<int64_t>(rng.below(2));
    const int64_t c0 = (k % 2) * 4 + static_cast<int64_t>(rng.below(2));
    for (int64_t r = r0; r < r0 + 3; ++r)
      for (int64_t c = c0; c < c0 + 3; ++c)
        b.images.set({i, 0, r, c}, b.images.at({i, 0, r, c}) + 1.5f);
  }
  return b;
}

double accuracy(const Tensor& logits, const std::vector<int64_t>& labels) {
  int64_t correct = 0;
  for (int64_t i = 0; i < logits.dim(0); ++i) {
    int64_t best = 0;
    for (int64_t k = 1; k < logits.dim(1); ++k)
      if (logits.at({i, k}) > logits.at({i, best})) best = k;
    correct += best == labels[static_cast<size_t>(i)] ? 1 : 0;
  }
  return static_cast<double>(correct) / static_cast<double>(logits.dim(0));
}

void sgd_step(const std::vector<Variable>& params, float lr) {
  for (Variable p : params) {
    if (!p.grad().defined()) continue;
    Tensor w = p.value();
    bitgrad::core::axpy_(w, -lr, p.grad());
    p.zero_grad();
  }
}

struct Result {
  double first_loss, last_loss, first_acc, last_acc;
};

// Trains for `steps` SGD steps on fresh batches of 32. "first" is the first batch (before any
// update), "last" the average over the last 5 steps (training mode).
template <typename Model>
Result train(Model& model, int steps, float lr, Rng& rng) {
  std::vector<double> losses, accs;
  const std::vector<Variable> params = model.parameters();
  for (int s = 0; s < steps; ++s) {
    const Batch b = make_batch(32, rng);
    const Variable logits = model.forward(Variable(b.images));
    const Variable loss = ag::cross_entropy(logits, b.labels);
    losses.push_back(loss.item());
    accs.push_back(accuracy(logits.value(), b.labels));
    loss.backward();
    sgd_step(params, lr);
  }
  auto avg = [](const std::vector<double>& v, size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += v[i];
    return s / static_cast<double>(to - from);
  };
  const size_t n = losses.size();
  return {losses[0], avg(losses, n - 5, n), accs[0], avg(accs, n - 5, n)};
}

}  // namespace

TEST_CASE("smoke: a small Sequential CNN learns a separable 4-class problem", "[nn][smoke]") {
  Rng rng(2024);
  nn::Sequential net;
  net.emplace_back<nn::Conv2d>(
      nn::Conv2dConfig{.in_channels = 1, .out_channels = 8, .kernel = 3, .padding = 1}, rng);
  net.emplace_back<nn::BatchNorm2d>(8);
  net.emplace_back<nn::ReLU>();
  net.emplace_back<nn::MaxPool2d>(2, 2);
  net.emplace_back<nn::Conv2d>(
      nn::Conv2dConfig{.in_channels = 8, .out_channels = 16, .kernel = 3, .padding = 1}, rng);
  net.emplace_back<nn::BatchNorm2d>(16);
  net.emplace_back<nn::ReLU>();
  net.emplace_back<nn::GlobalAvgPool2d>();
  net.emplace_back<nn::Linear>(nn::LinearConfig{.in_features = 16, .out_features = kClasses}, rng);
  const Result r = train(net, 80, 0.3f, rng);
  INFO("loss " << r.first_loss << " -> " << r.last_loss << ", accuracy " << r.first_acc << " -> "
               << r.last_acc);
  CHECK(r.last_loss < 0.3 * r.first_loss);
  CHECK(r.first_acc < 0.6);
  CHECK(r.last_acc > 0.9);
  // Eval mode on fresh data agrees (the running statistics were learned too).
  net.eval();
  const Batch test = make_batch(128, rng);
  bitgrad::autograd::NoGradGuard no_grad;
  CHECK(accuracy(net.forward(Variable(test.images)).value(), test.labels) > 0.9);
}

TEST_CASE("smoke: ResNet-8 (option A, 1 channel) learns the same problem", "[nn][smoke]") {
  Rng rng(7);
  auto model = nn::resnet_cifar(8, kClasses, 1, nn::Shortcut::kA, rng);
  const Result r = train(model, 40, 0.05f, rng);
  INFO("loss " << r.first_loss << " -> " << r.last_loss << ", accuracy " << r.first_acc << " -> "
               << r.last_acc);
  CHECK(r.last_loss < 0.3 * r.first_loss);
  CHECK(r.first_acc < 0.6);
  CHECK(r.last_acc > 0.9);
  model.eval();
  const Batch test = make_batch(128, rng);
  bitgrad::autograd::NoGradGuard no_grad;
  CHECK(accuracy(model.forward(Variable(test.images)).value(), test.labels) > 0.9);
}
