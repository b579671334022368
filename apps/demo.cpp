// demo.cpp: `bitgrad demo`, the end-to-end job of scripts/demo.sh: train a CIFAR-style ResNet on real
// Fashion-MNIST with the engine, evaluate it on the test set, save it as safetensors and check that the
// saved file reloads to the same accuracy. Later issues grow this into train -> quantize -> deploy.
#include <cmath>
#include <cstdio>
#include <numbers>
#include <string>

#include "apps/args.hpp"
#include "apps/commands.hpp"
#include "apps/progress.hpp"
#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/threads.hpp"
#include "datasets/idx.hpp"
#include "nn/optim.hpp"
#include "nn/resnet_cifar.hpp"
#include "nn/state_dict.hpp"

namespace bitgrad::apps {

namespace {

using autograd::Variable;
using core::Tensor;

// Fashion-MNIST's per-pixel mean and standard deviation over the training set.
constexpr float kMean = 0.2860f;
constexpr float kStd = 0.3530f;

// Images [first, first + count) of `order` gathered into a normalised batch [count, 1, H, W].
Tensor gather(const datasets::ImageSet& set, const std::vector<int64_t>& order, int64_t first,
              int64_t count, std::vector<int64_t>& labels) {
  const int64_t per = set.images.numel() / set.images.dim(0);
  Tensor batch(core::Shape{count, set.images.dim(1), set.images.dim(2), set.images.dim(3)});
  labels.resize(static_cast<size_t>(count));
  const float* src = set.images.data();
  float* dst = batch.data();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t idx = order[static_cast<size_t>(first + i)];
    labels[static_cast<size_t>(i)] = set.labels[static_cast<size_t>(idx)];
    for (int64_t k = 0; k < per; ++k) dst[i * per + k] = (src[idx * per + k] - kMean) / kStd;
  }
  return batch;
}

int64_t count_correct(const Tensor& logits, const std::vector<int64_t>& labels) {
  int64_t correct = 0;
  const int64_t k = logits.dim(1);
  for (int64_t i = 0; i < logits.dim(0); ++i) {
    const float* row = logits.data() + i * k;
    int64_t best = 0;
    for (int64_t c = 1; c < k; ++c)
      if (row[c] > row[best]) best = c;
    correct += best == labels[static_cast<size_t>(i)];
  }
  return correct;
}

double evaluate(nn::ResNetCifar& model, const datasets::ImageSet& set, int64_t batch_size) {
  autograd::NoGradGuard no_grad;
  model.eval();
  std::vector<int64_t> order(static_cast<size_t>(set.images.dim(0)));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  int64_t correct = 0;
  std::vector<int64_t> labels;
  for (int64_t first = 0; first < set.images.dim(0); first += batch_size) {
    const int64_t count = std::min(batch_size, set.images.dim(0) - first);
    const Tensor x = gather(set, order, first, count, labels);
    correct += count_correct(model.forward(Variable(x)).value(), labels);
  }
  return 100.0 * static_cast<double>(correct) / static_cast<double>(set.images.dim(0));
}

}  // namespace

int run_demo(const std::vector<std::string>& argv) {
  Args args("demo");
  args.option("data", "/usr/share/datasets/fashion-mnist", "DIR", "Fashion-MNIST IDX files")
      .option("depth", "20", "D", "ResNet depth (6n+2)")
      .option("epochs", "2", "N", "training epochs")
      .option("train-limit", "10000", "N", "use the first N training images (0 = all 60,000)")
      .option("batch-size", "128", "B", "mini-batch size")
      .option("lr", "0.1", "LR", "peak learning rate (cosine decay to 0)")
      .option("seed", "1", "S", "random seed (initialisation and shuffling)")
      .option("threads", "0", "T", "worker threads (0 = BITGRAD_THREADS or all cores)")
      .option("out", "demo-fmnist-resnet.safetensors", "FILE", "where to save the trained model")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad demo [options]\n%s", args.help().c_str());
    return 0;
  }
  const int depth = static_cast<int>(args.integer("depth", 8, 200));
  const int64_t epochs = args.integer("epochs", 1, 1000);
  const int64_t limit = args.integer("train-limit", 0, 60000);
  const int64_t batch_size = args.integer("batch-size", 1, 4096);
  const float lr = static_cast<float>(args.number("lr", 0.0, 10.0));
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed", 0, INT64_MAX));
  if (const int64_t t = args.integer("threads", 0, 1024); t > 0) core::set_num_threads(static_cast<int>(t));
  const std::string out = args.str("out");

  datasets::ImageSet train = datasets::load_mnist_like(args.str("data"), true);
  const datasets::ImageSet test = datasets::load_mnist_like(args.str("data"), false);
  const int64_t n_train = limit > 0 ? std::min(limit, train.images.dim(0)) : train.images.dim(0);
  std::printf("bitgrad demo: ResNet-%d on Fashion-MNIST, %lld training images, %lld test images, "
              "%d threads\n",
              depth, static_cast<long long>(n_train), static_cast<long long>(test.images.dim(0)),
              core::num_threads());

  core::Rng rng(seed);
  nn::ResNetCifar model(nn::ResNetCifarConfig{depth, train.classes, 1, nn::Shortcut::kA}, rng);
  nn::Sgd sgd(nn::decay_groups(model, 5e-4f), nn::SgdOptions{lr, 0.9f, 0.0f, true});
  std::printf("model: %lld parameters; SGD momentum 0.9 (Nesterov), weight decay 5e-4 on conv/linear "
              "weights, cosine lr from %g, batch %lld\n",
              static_cast<long long>(model.num_parameters()), lr, static_cast<long long>(batch_size));

  const int64_t steps_per_epoch = n_train / batch_size;  // drop the last partial batch
  check_lazy(steps_per_epoch > 0, [&] {
    return "demo: --train-limit " + std::to_string(n_train) + " is smaller than one batch of " +
           std::to_string(batch_size);
  });
  const int64_t total_steps = steps_per_epoch * epochs;
  int64_t step = 0;
  std::vector<int64_t> labels;
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    model.train();
    const std::vector<int64_t> order = rng.permutation(n_train);
    Progress bar("epoch " + std::to_string(epoch) + "/" + std::to_string(epochs), steps_per_epoch);
    double loss_sum = 0.0;
    int64_t correct = 0, seen = 0;
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      sgd.set_lr(lr * 0.5f * (1.0f + std::cos(std::numbers::pi_v<float> * static_cast<float>(step) /
                                              static_cast<float>(total_steps))));
      const Tensor x = gather(train, order, b * batch_size, batch_size, labels);
      const Variable logits = model.forward(Variable(x));
      const Variable loss = autograd::cross_entropy(logits, labels);
      const float l = loss.item();
      check_lazy(std::isfinite(l), [&] {
        return "demo: the loss became " + std::to_string(l) + " at step " +
               std::to_string(step) + " (expected a finite value; lower --lr)";
      });
      sgd.zero_grad();
      loss.backward();
      sgd.step();
      loss_sum += l;
      correct += count_correct(logits.value(), labels);
      seen += batch_size;
      bar.update(b + 1, loss_sum / static_cast<double>(b + 1),
                 100.0 * static_cast<double>(correct) / static_cast<double>(seen), seen);
    }
    bar.finish();
    std::printf("epoch %lld: train loss %.4f, train accuracy %.2f%%, test accuracy %.2f%%\n",
                static_cast<long long>(epoch), loss_sum / static_cast<double>(steps_per_epoch),
                100.0 * static_cast<double>(correct) / static_cast<double>(seen),
                evaluate(model, test, 256));
  }

  const double accuracy = evaluate(model, test, 256);
  nn::save_model(out, model,
                 {{"architecture", "resnet" + std::to_string(depth)},
                  {"dataset", "fashion-mnist"},
                  {"epochs", std::to_string(epochs)},
                  {"train_images", std::to_string(n_train)},
                  {"test_top1", std::to_string(accuracy)}});
  core::Rng other(seed + 1);
  nn::ResNetCifar reloaded(nn::ResNetCifarConfig{depth, train.classes, 1, nn::Shortcut::kA}, other);
  nn::load_model(out, reloaded);
  const double reloaded_accuracy = evaluate(reloaded, test, 256);
  check_lazy(reloaded_accuracy == accuracy, [&] {
    return "demo: the reloaded model scores " + std::to_string(reloaded_accuracy) +
           "%, expected the trained model's " + std::to_string(accuracy) + "%";
  });
  std::printf("saved %s; reloaded it: test accuracy %.2f%% (identical)\n", out.c_str(),
              reloaded_accuracy);
  return 0;
}

}  // namespace bitgrad::apps
