// distiller.hpp: the teacher side of `bitgrad train` / `bitgrad distill` (--teacher, --method): the
// distillation options, each method's loss per step and QKD's phases, TAKD's teacher assistant.
//   kd      CE + KD(teacher) every epoch
//   va-qkd  CE + KD(teacher) + KD(virtual anchor) every epoch
//   qkd     self-studying epochs (CE only, no teacher), co-studying epochs (the student as kd;
//           the teacher trained alongside on CE + KD(student) at --teacher-lr-scale × the
//           student's lr, BN in train mode), tutoring (the co-studied teacher frozen, as kd);
//           ALGORITHMS.md §3: these details are ours
//   takd    a teacher assistant (the student's quantizer at --ta-bits) distilled from the teacher
//           with kd for the same epochs first, then the student distilled from the assistant
// "KD" is the --loss variant's distance (distill/objective.hpp: logit, feature or contrastive).
// Not here: the student's training loop (apps/train.cpp), the losses (distill/).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "apps/args.hpp"
#include "apps/model_io.hpp"
#include "autograd/variable.hpp"
#include "core/json.hpp"
#include "distill/objective.hpp"
#include "nn/feature_taps.hpp"
#include "nn/optim.hpp"

namespace bitgrad::apps {

// Declares --teacher, --method, --loss and the other distillation options on `args`.
void declare_distill_options(Args& args);

class Distiller {
 public:
  // From the parsed train options; nullptr without --method (Error when another distillation option
  // is given then). `assistant` is takd's teacher assistant (prepare_teacher_assistant), taught by
  // --teacher; the student learns from it. Errors name the option: unknown method or loss, a
  // teacher of other classes or channels, --resume with qkd, a weight out of range.
  static std::unique_ptr<Distiller> from_args(const Args& args, const ModelSpec& spec,
                                              int64_t epochs, float weight_decay,
                                              const std::string& assistant);

  // The features the student's forward must tap (nn::FeatureTaps' wanted names).
  std::vector<std::string> student_taps(const nn::ResNetCifar& student) const;
  // The loss of one training step of epoch `epoch` at learning rate `lr`, from the student's logits
  // and taps. Runs the teacher (without a graph, except while co-studying, when it also takes the
  // teacher's optimizer step).
  autograd::Variable loss(const autograd::Variable& logits, const nn::FeatureTaps& taps,
                          std::span<const int64_t> labels, const core::Tensor& images,
                          int64_t epoch, float lr);
  // The recipe entry ("distill") and the one-line description printed at the start.
  core::Json recipe() const;
  std::string describe() const;

 private:
  enum class Phase { kSelfStudy, kCoStudy, kTutor };
  Phase phase(int64_t epoch) const;

  std::string method_, teacher_path_, assistant_path_;
  std::unique_ptr<nn::ResNetCifar> teacher_;
  std::unique_ptr<nn::Optimizer> teacher_optimizer_;  // qkd's co-studying
  distill::DistillConfig config_;
  std::vector<std::string> teacher_taps_;
  int64_t self_study_epochs_ = 0, co_study_epochs_ = 0;
  float teacher_lr_scale_ = 0.1f;
  int ta_bits_ = 0;
};

// takd: trains the teacher assistant (bitgrad train with --method kd, the student's options at
// --ta-bits, output <out stem>.ta.safetensors) unless --ta names one, and returns the
// assistant's path; "" for other methods. `argv` is the train command line the assistant's is derived from.
// `out` is the student's output path.
std::string prepare_teacher_assistant(const Args& args, const std::vector<std::string>& argv,
                                      const std::string& out);

}  // namespace bitgrad::apps
