// model_io.cpp: see model_io.hpp.
#include "apps/model_io.hpp"

#include <iterator>
#include <utility>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/rng.hpp"
#include "nn/state_dict.hpp"

namespace bitgrad::apps {

int parse_depth(const std::string& model) {
  static const std::vector<std::pair<std::string, int>> kModels = {
      {"resnet20", 20}, {"resnet32", 32}, {"resnet44", 44}, {"resnet56", 56}, {"resnet110", 110}};
  for (const auto& [name, depth] : kModels)
    if (name == model) return depth;
  throw Error("--model: expected one of resnet20, resnet32, resnet44, resnet56, resnet110, got '" +
              model + "'");
}

nn::Shortcut parse_shortcut(const std::string& s) {
  if (s == "A" || s == "a") return nn::Shortcut::kA;
  if (s == "B" || s == "b") return nn::Shortcut::kB;
  throw Error("--shortcut: expected A or B, got '" + s + "'");
}

std::map<std::string, std::string> spec_metadata(const ModelSpec& spec) {
  return {{"model", "resnet" + std::to_string(spec.depth)},
          {"shortcut", spec.shortcut == nn::Shortcut::kA ? "A" : "B"},
          {"num_classes", std::to_string(spec.classes)},
          {"in_channels", std::to_string(spec.channels)}};
}

std::string meta(const std::map<std::string, std::string>& m, const std::string& key,
                 const std::string& path) {
  const auto it = m.find(key);
  check_lazy(it != m.end(), [&] {
    return "'" + path + "': expected __metadata__ key '" + key +
           "' (a model saved by bitgrad train), found none";
  });
  return it->second;
}

ModelSpec spec_from_metadata(const std::map<std::string, std::string>& m, const std::string& path) {
  ModelSpec spec;
  spec.depth = parse_depth(meta(m, "model", path));
  spec.shortcut = parse_shortcut(meta(m, "shortcut", path));
  spec.classes = std::stoll(meta(m, "num_classes", path));
  spec.channels = std::stoll(meta(m, "in_channels", path));
  return spec;
}


core::SafetensorsFile without_training_state(core::SafetensorsFile file) {
  for (auto it = file.tensors.begin(); it != file.tensors.end();)
    it = (it->first.starts_with("optim.") || it->first.starts_with("rng.")) ? file.tensors.erase(it) : std::next(it);
  return file;
}

LoadedModel load_trained_model(const std::string& path) {
  core::SafetensorsFile file = core::read_safetensors(path);
  LoadedModel m;
  m.spec = spec_from_metadata(file.metadata, path);
  if (const auto d = file.metadata.find("dataset"); d != file.metadata.end()) m.dataset = d->second;
  core::Rng rng(0);
  m.model = std::make_unique<nn::ResNetCifar>(
      nn::ResNetCifarConfig{m.spec.depth, m.spec.classes, m.spec.channels, m.spec.shortcut}, rng);
  if (const auto q = file.metadata.find("quant"); q != file.metadata.end()) {
    m.policy = quant::policy_from_json(core::Json::parse(q->second));
    quant::quantize_model(*m.model, *m.policy);
  }
  nn::load_state_dict(*m.model, without_training_state(std::move(file)), /*strict=*/true);
  if (m.policy) quant::load_estimator_state(*m.model);
  return m;
}

nn::ClassificationMetrics evaluate(nn::ResNetCifar& model, datasets::Loader& loader, int64_t classes) {
  autograd::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  nn::ClassificationMetrics metrics(classes);
  loader.start_epoch(0);
  while (auto batch = loader.next())
    metrics.add(model.forward(autograd::Variable(batch->images)).value(), batch->labels);
  model.train(was_training);
  return metrics;
}

nn::ClassificationMetrics evaluate(kernels::PackedRuntime& runtime, datasets::Loader& loader) {
  nn::ClassificationMetrics metrics(runtime.model().num_classes);
  loader.start_epoch(0);
  while (auto batch = loader.next()) metrics.add(runtime.forward(batch->images), batch->labels);
  return metrics;
}

}  // namespace bitgrad::apps
