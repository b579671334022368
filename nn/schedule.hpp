// schedule.hpp: learning-rate schedules as pure functions of the training position:
// lr(epoch, step_in_epoch, steps_per_epoch). No hidden counter, so resuming from a checkpoint needs
// only the epoch. Kinds: constant, cosine annealing to a floor, multi-step decay; each optionally
// preceded by a linear warm-up. Parsed from CLI strings ("cosine+warmup:5",
// "multistep:100,150:0.2"). Matches PyTorch's CosineAnnealingLR, MultiStepLR and LinearLR +
// SequentialLR (golden-tested). Not here: setting the optimizer's lr (the trainer calls
// Optimizer::set_lr), plateau-based or cyclic schedules, per-group schedules (groups scale the one
// lr by ParamGroup::lr_scale).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bitgrad::nn {

enum class ScheduleKind { kConstant, kCosine, kMultiStep };

// How often the lr changes. kEpoch (the DEFAULT, as PyTorch CIFAR recipes step their scheduler once
// per epoch): the lr is constant within an epoch. kStep: the same curve evaluated at the fractional
// epoch epoch + step_in_epoch / steps_per_epoch, so it changes every optimizer step.
enum class ScheduleUnit { kEpoch, kStep };

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::kConstant;
  float min_lr = 0.0f;  // cosine: the floor reached at the last epoch (PyTorch eta_min)
  // multistep: the epochs (absolute, >= 1, strictly increasing) at which lr is multiplied by gamma.
  std::vector<int64_t> milestones;
  float gamma = 0.1f;                // multistep
  int64_t warmup_epochs = 0;         // 0: no warm-up
  float warmup_start_factor = 0.1f;  // warm-up starts at base_lr * this
  ScheduleUnit unit = ScheduleUnit::kEpoch;

  friend bool operator==(const ScheduleConfig&, const ScheduleConfig&) = default;
};

// Parses a schedule spec. Grammar (whitespace not allowed):
//   spec     := main ("+" modifier)*
//   main     := "constant" | "cosine" [":" FLOOR] | "multistep:" M1 ["," M2 ...] [":" GAMMA]
//   modifier := "warmup:" EPOCHS [":" START_FACTOR] | "per-step"
// e.g. "cosine", "cosine:1e-4+warmup:5", "multistep:100,150" (gamma 0.1), "multistep:100,150:0.2",
// "constant+warmup:2:0.01", "cosine+per-step". Defaults: floor 0, gamma 0.1, start factor 0.1, unit
// epoch. Throws Error naming the bad part and listing the valid forms on anything else (unknown
// names, bad numbers, non-increasing milestones, a repeated modifier).
ScheduleConfig parse_schedule(std::string_view spec);

// The canonical spec of `config`; parse_schedule(to_string(c)) == c (floats print exactly).
std::string to_string(const ScheduleConfig& config);

// A schedule bound to a base lr and a run length. With t the position in epochs (kEpoch: t = epoch;
// kStep: t = epoch + step_in_epoch / steps_per_epoch) and W = warmup_epochs:
//   t < W (warm-up):   base * (s + (1 - s) * t / W),  s = warmup_start_factor
//   otherwise:
//     constant:        base
//     multistep:       base * gamma^(number of milestones m with m <= epoch)   (absolute epochs)
//     cosine:          floor + (base - floor) * (1 + cos(pi * p)) / 2,
//                      p = (t - W) / (total_epochs - W), clamped to [0, 1]
// so cosine anneals over the epochs after the warm-up (PyTorch: SequentialLR of LinearLR(s,
// total_iters=W) and CosineAnnealingLR(T_max=total_epochs - W)); for multistep the PyTorch
// equivalent uses milestones shifted by W. Past total_epochs the cosine stays at the floor.
// Immutable after construction; lr() is thread-safe.
class Schedule {
 public:
  // Throws Error unless base_lr >= 0 and finite, total_epochs >= 1, min_lr >= 0, gamma > 0,
  // milestones >= 1 and strictly increasing, warmup_epochs >= 0, warmup_start_factor in [0, 1], and
  // (cosine) warmup_epochs < total_epochs.
  Schedule(const ScheduleConfig& config, float base_lr, int64_t total_epochs);

  // The lr to use for step `step_in_epoch` of epoch `epoch` (both counted from 0). Throws Error
  // unless epoch >= 0, steps_per_epoch >= 1 and 0 <= step_in_epoch < steps_per_epoch.
  float lr(int64_t epoch, int64_t step_in_epoch = 0, int64_t steps_per_epoch = 1) const;

  const ScheduleConfig& config() const { return config_; }
  float base_lr() const { return base_lr_; }
  int64_t total_epochs() const { return total_epochs_; }

 private:
  ScheduleConfig config_;
  float base_lr_;
  int64_t total_epochs_;
};

}  // namespace bitgrad::nn
