// model_io.hpp: how the CLI names models and rebuilds a trained one from its file: the metadata keys
// bitgrad train writes ("model", "shortcut", "num_classes", "in_channels", "dataset", "quant") and the
// loading of a model file or checkpoint (FP32 or QAT) into a ready ResNet. Shared by train, eval,
// export, verify and demo.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "core/safetensors.hpp"
#include "datasets/loader.hpp"
#include "kernels/runtime/packed_runtime.hpp"
#include "nn/metrics.hpp"
#include "nn/resnet_cifar.hpp"
#include "quant/policy.hpp"

namespace bitgrad::apps {

// What is needed to rebuild a model from a checkpoint's metadata.
struct ModelSpec {
  int depth = 20;
  nn::Shortcut shortcut = nn::Shortcut::kA;
  int64_t classes = 10;
  int64_t channels = 1;
};

// "resnet20" -> 20 (resnet20/32/44/56/110); Error naming the accepted names.
int parse_depth(const std::string& model);
// "A" / "B" (either case).
nn::Shortcut parse_shortcut(const std::string& s);
// The metadata keys describing `spec`.
std::map<std::string, std::string> spec_metadata(const ModelSpec& spec);
// m[key], or Error naming the file and the missing key.
std::string meta(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path);
ModelSpec spec_from_metadata(const std::map<std::string, std::string>& m, const std::string& path);
// The model's entries of a checkpoint: without the optimizer state ("optim.*") and generator states
// ("rng.*") that nn::save_checkpoint adds, so that the model loads strictly.
core::SafetensorsFile without_training_state(core::SafetensorsFile file);

// A model rebuilt from its file: architecture from the metadata, the QAT policy applied when the
// file has one ("quant"), every parameter and buffer loaded strictly, EWGS state restored.
struct LoadedModel {
  ModelSpec spec;
  std::optional<quant::QuantPolicy> policy;
  std::string dataset;  // the "dataset" metadata ("" when absent)
  std::unique_ptr<nn::ResNetCifar> model;
};
LoadedModel load_trained_model(const std::string& path);

// Top-1/top-5/per-class metrics of one pass over the loader: the model in eval mode under
// NoGradGuard (its mode is restored), or the packed runtime.
nn::ClassificationMetrics evaluate(nn::ResNetCifar& model, datasets::Loader& loader, int64_t classes);
nn::ClassificationMetrics evaluate(kernels::PackedRuntime& runtime, datasets::Loader& loader);

}  // namespace bitgrad::apps
