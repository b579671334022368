// main.cpp: a program outside the bitgrad tree, built against the *installed* package
// (find_package(bitgrad) + bitgrad::bitgrad). It trains a ResNet-8 for a few steps on random data,
// saves and reloads it as safetensors, and checks that the reloaded model gives the same logits.
#include <bitgrad/autograd/ops.hpp>
#include <bitgrad/core/error.hpp>
#include <bitgrad/core/rng.hpp>
#include <bitgrad/core/tensor_ops.hpp>
#include <bitgrad/nn/optim.hpp>
#include <bitgrad/nn/resnet_cifar.hpp>
#include <bitgrad/nn/state_dict.hpp>

#include <cstdio>
#include <filesystem>

int main() {
  using namespace bitgrad;
  core::Rng rng(7);
  nn::ResNetCifar model(nn::ResNetCifarConfig{8, 10, 3, nn::Shortcut::kA}, rng);
  nn::Sgd sgd(nn::decay_groups(model, 5e-4f), nn::SgdOptions{0.05f, 0.9f, 0.0f, false});
  const core::Tensor x = rng.normal_tensor(core::Shape{8, 3, 16, 16});
  const std::vector<int64_t> labels{0, 1, 2, 3, 4, 5, 6, 7};
  float first = 0.0f, last = 0.0f;
  for (int step = 0; step < 20; ++step) {
    const autograd::Variable loss = autograd::cross_entropy(model.forward(autograd::Variable(x)), labels);
    if (step == 0) first = loss.item();
    last = loss.item();
    sgd.zero_grad();
    loss.backward();
    sgd.step();
  }
  const std::string path = (std::filesystem::temp_directory_path() / "bitgrad_consumer.safetensors").string();
  nn::save_model(path, model, {{"architecture", "resnet8"}});
  core::Rng other(8);
  nn::ResNetCifar reloaded(nn::ResNetCifarConfig{8, 10, 3, nn::Shortcut::kA}, other);
  nn::load_model(path, reloaded);
  std::filesystem::remove(path);
  model.eval();
  reloaded.eval();
  autograd::NoGradGuard no_grad;
  const float diff = core::max_abs_diff(model.forward(autograd::Variable(x)).value(),
                                        reloaded.forward(autograd::Variable(x)).value());
  std::printf("consumer: loss %.4f -> %.4f over 20 steps; reloaded logits differ by %g\n", first, last,
              diff);
  if (!(last < first) || diff != 0.0f) {
    std::fprintf(stderr, "consumer: FAILED (expected a falling loss and identical reloaded logits)\n");
    return 1;
  }
  try {
    nn::load_model("/nonexistent/model.safetensors", reloaded);
    std::fprintf(stderr, "consumer: FAILED (loading a missing file did not throw)\n");
    return 1;
  } catch (const Error& e) {
    std::printf("consumer: missing file rejected: %s\n", e.what());
  }
  return 0;
}
