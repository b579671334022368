// objective.cpp: distill_loss and its tap names (distill/objective.hpp).
#include "distill/objective.hpp"

#include <string>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "distill/anchor.hpp"
#include "distill/contrastive.hpp"
#include "distill/feature.hpp"
#include "distill/kd.hpp"

namespace bitgrad::distill {

using autograd::Variable;
using core::Tensor;

DistillLoss parse_distill_loss(std::string_view name) {
  if (name == "logit") return DistillLoss::kLogit;
  if (name == "feature") return DistillLoss::kFeature;
  if (name == "contrastive") return DistillLoss::kContrastive;
  throw Error("distillation loss: expected logit, feature or contrastive, got '" +
              std::string(name) + "'");
}

std::string_view to_string(DistillLoss loss) {
  switch (loss) {
    case DistillLoss::kLogit:
      return "logit";
    case DistillLoss::kFeature:
      return "feature";
    case DistillLoss::kContrastive:
      return "contrastive";
  }
  return "?";
}

std::vector<std::string> distill_tap_names(DistillLoss loss, const nn::ResNetCifar& model) {
  switch (loss) {
    case DistillLoss::kLogit:
      return {};
    case DistillLoss::kFeature: {
      const std::string last = std::to_string((model.config().depth - 2) / 6 - 1);
      return {"layer1." + last + ".out", "layer2." + last + ".out", "layer3." + last + ".out"};
    }
    case DistillLoss::kContrastive:
      return {"pool"};
  }
  return {};
}

namespace {

// D(student, target) of the variant (the target a teacher output or its anchor).
Variable distance(const Variable& student_logits, std::span<const Variable> student_features,
                  const Tensor& target_logits, std::span<const Tensor> target_features,
                  const DistillConfig& config) {
  switch (config.loss) {
    case DistillLoss::kLogit:
      return kd_loss(student_logits, target_logits, config.temperature);
    case DistillLoss::kFeature: {
      Variable sum = feature_mse_loss(student_features[0], target_features[0]);
      for (size_t l = 1; l < student_features.size(); ++l)
        sum = sum + feature_mse_loss(student_features[l], target_features[l]);
      return autograd::scale(sum, 1.0f / static_cast<float>(student_features.size()));
    }
    case DistillLoss::kContrastive:
      return contrastive_loss(student_features[0], target_features[0], config.tau);
  }
  throw Error("distill_loss: unknown loss variant");
}

}  // namespace

Variable distill_loss(const Variable& student_logits, std::span<const Variable> student_features,
                      const Tensor& teacher_logits, std::span<const Tensor> teacher_features,
                      std::span<const int64_t> labels, const DistillConfig& config) {
  const size_t expected = config.loss == DistillLoss::kLogit     ? 0
                          : config.loss == DistillLoss::kFeature ? 3
                                                                 : 1;
  check_lazy(student_features.size() == expected && teacher_features.size() == expected, [&] {
    return "distill_loss (" + std::string(to_string(config.loss)) + "): expected " +
           std::to_string(expected) + " student and teacher features, got " +
           std::to_string(student_features.size()) + " and " +
           std::to_string(teacher_features.size());
  });
  Variable loss =
      autograd::scale(autograd::cross_entropy(student_logits, labels), config.ce) +
      autograd::scale(distance(student_logits, student_features, teacher_logits, teacher_features, config),
                      config.kd);
  if (config.anchor > 0.0f) {
    std::vector<Tensor> anchor_features;
    for (const Tensor& f : teacher_features)
      anchor_features.push_back(feature_anchor(f, config.anchor_bits));
    const Tensor anchor_logits = config.loss == DistillLoss::kLogit
                                     ? virtual_anchor(teacher_logits, config.anchor_bits)
                                     : teacher_logits;
    loss = loss + autograd::scale(distance(student_logits, student_features, anchor_logits,
                                           anchor_features, config),
                                  config.anchor);
  }
  return loss;
}

}  // namespace bitgrad::distill
