// demo.cpp: `bitgrad demo`, the end-to-end job of scripts/demo.sh on real Fashion-MNIST: `bitgrad train`
// with a short recipe (ResNet-20, the first 10,000 training images, 2 epochs), then `bitgrad eval` of the
// saved checkpoint (its top-1 equals the last epoch's test top-1 printed by train). Later issues grow this
// into train -> quantize -> deploy. Options after `demo` are passed on to `bitgrad train`.
#include <cstdio>
#include <string>
#include <vector>

#include "apps/commands.hpp"

namespace bitgrad::apps {

int run_demo(const std::vector<std::string>& argv) {
  for (const std::string& a : argv) {
    if (a == "--help") {
      std::printf("usage: bitgrad demo [train options]\n"
                  "Runs: bitgrad train --dataset fashion-mnist --model resnet20 --epochs 2 "
                  "--train-limit 10000 --out runs/demo-fmnist-resnet20.safetensors [your options]\n"
                  "then: bitgrad eval runs/demo-fmnist-resnet20.safetensors\n");
      return 0;
    }
  }
  std::vector<std::string> train_args = {"--dataset", "fashion-mnist", "--model", "resnet20",
                                         "--epochs", "2", "--train-limit", "10000",
                                         "--out", "runs/demo-fmnist-resnet20.safetensors"};
  train_args.insert(train_args.end(), argv.begin(), argv.end());  // later options win
  std::string out = "runs/demo-fmnist-resnet20.safetensors";
  for (size_t i = 0; i + 1 < train_args.size(); ++i)
    if (train_args[i] == "--out") out = train_args[i + 1];
  std::printf("== bitgrad demo: step 1/2, training ==\n");
  if (const int rc = run_train(train_args); rc != 0) return rc;
  std::printf("== bitgrad demo: step 2/2, evaluating the saved model ==\n");
  return run_eval({out});
}

}  // namespace bitgrad::apps
