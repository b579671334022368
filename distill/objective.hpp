// objective.hpp: the student's loss of KD, QKD, TAKD and VA-QKD (SEEDS.md §1) in the three variants
// the VA-QKD paper compares, one formula with a distance D chosen by the variant:
//   L = ce · CE(z_S, labels) + kd · D(S, T) + anchor · D(S, A(T))
//   logit:        D = kd_loss on the logits at temperature T (T² · batchmean KL, distill/kd.hpp);
//                 A = virtual_anchor(z_T, b) (distill/anchor.hpp)
//   feature:      D = mean over the tapped feature maps of feature_mse_loss (FitNet,
//                 distill/feature.hpp) on the output of the last block of each stage;
//                 A = feature_anchor(F_T, b)
//   contrastive:  D = contrastive_loss (in-batch InfoNCE at temperature tau,
//                 distill/contrastive.hpp) on the pooled embeddings ("pool");
//                 A = feature_anchor(e_T, b)
// The anchor term only when `anchor` > 0 (VA-QKD); KD / QKD / TAKD are the same call with anchor =
// 0. The teacher side is Tensors (no gradient). The feature and contrastive forms, the anchors A
// and the tap choice are our design choices (the paper leaves them open; docs/distill.md). Used by
// `bitgrad distill` and the step-cost benchmark. Not here: running the teacher, QKD's phases
// (apps/).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/variable.hpp"
#include "nn/resnet_cifar.hpp"

namespace bitgrad::distill {

enum class DistillLoss { kLogit, kFeature, kContrastive };

// "logit" | "feature" | "contrastive"; Error naming the accepted names otherwise.
DistillLoss parse_distill_loss(std::string_view name);
std::string_view to_string(DistillLoss loss);

struct DistillConfig {
  DistillLoss loss = DistillLoss::kLogit;
  float ce = 1.0f;           // weight of the cross-entropy on the labels
  float kd = 1.0f;           // weight of D(student, teacher)
  float anchor = 0.0f;       // weight of D(student, anchor); 0: no anchor computed
  float temperature = 4.0f;  // logit KD temperature T > 0
  float tau = 0.1f;          // contrastive temperature > 0
  int anchor_bits = 2;       // b in 1..8
};

// The features the variant reads from a ResNetCifar's taps, in order (pass them to nn::FeatureTaps
// as the wanted names): logit none; feature "layerS.(n-1).out" for S = 1..3 (n blocks per stage);
// contrastive "pool". Student and teacher may differ in depth: each names its own.
std::vector<std::string> distill_tap_names(DistillLoss loss, const nn::ResNetCifar& model);

// student_logits [B, C], student_features the Variables of distill_tap_names (empty for logit);
// teacher_logits [B, C], teacher_features the teacher's Tensors in the same order and shapes;
// labels [B]. Throws bitgrad::Error when the feature counts or shapes do not match, and as the
// parts do.
autograd::Variable distill_loss(const autograd::Variable& student_logits,
                                std::span<const autograd::Variable> student_features,
                                const core::Tensor& teacher_logits,
                                std::span<const core::Tensor> teacher_features,
                                std::span<const int64_t> labels, const DistillConfig& config);

}  // namespace bitgrad::distill
