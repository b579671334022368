// checkpoint.hpp: training checkpoints for resumable runs, one safetensors file holding the model
// state dict (the names of nn::state_dict), the optimizer state, random generator states and the
// run's metadata (architecture, data set, recipe JSON, epoch, best accuracy). Saving is atomic
// (temporary file + rename); loading validates everything before changing anything.
// A plain model file (nn::save_model) loads as weights only. Not here: choosing when to save,
// keeping the best / last N files, or the packed deploy format.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/rng.hpp"
#include "core/safetensors.hpp"
#include "nn/module.hpp"
#include "nn/optim.hpp"

namespace bitgrad::nn {

// Progress and provenance, stored as strings in __metadata__ (numbers print exactly).
struct CheckpointInfo {
  std::string architecture;   // e.g. "resnet20 shortcut A, 10 classes, 3 channels"
  std::string dataset;        // e.g. "cifar10"
  std::string recipe = "{}";  // the training recipe as JSON text (must parse as JSON)
  int64_t epoch = 0;          // epochs completed: a resumed run starts at this epoch
  int64_t global_step = 0;    // optimizer steps taken so far
  double best_accuracy = 0.0;
  // Anything else (e.g. "schedule", "git_commit"). Keys may not be reserved ones (listed in
  // checkpoint.cpp: "format", "epoch", "optimizer", ...). On load, every metadata key that is not
  // reserved lands here, so a plain model file's metadata is kept.
  std::map<std::string, std::string> extra;
};

struct NamedRng {
  std::string name;  // e.g. "data", "augment"; stored as "rng.<name>"
  core::Rng* rng = nullptr;
};

// The objects a checkpoint saves from and restores into. `model` is required; `optimizer` (null:
// not saved / not restored) and `rngs` (empty: none) are optional. Nothing is owned.
struct TrainingState {
  Module* model = nullptr;
  Optimizer* optimizer = nullptr;
  std::vector<NamedRng> rngs = {};
};

// File layout (tensor names):
//   <state_dict names>      the model, exactly as nn::state_dict writes it
//   optim.step.<param>      I64 0-d: that parameter's update count (ParamState::steps)
//   optim.<buffer>.<param>  F32, the parameter's shape, e.g. optim.momentum.layer1.0.conv1.weight
//                           (absent while the buffer does not exist)
//   rng.<name>              I64 [6]: xoshiro words 0..3 (bit patterns), has_spare, spare's bits
// and metadata: format "bitgrad.checkpoint", format_version "1", architecture, dataset, recipe,
// epoch, global_step, best_accuracy, optimizer (kind), optimizer_options (JSON), optimizer_steps,
// optimizer_lr, rngs (comma-separated names), plus CheckpointInfo::extra.
// Optimizer parameters are named after the model parameters they are (matched by identity).

// The checkpoint image. Throws Error when an optimizer parameter is not a parameter of the model
// (or appears twice), a model name starts with "optim." or "rng.", an rng is null or named twice,
// the recipe is not JSON, or an extra key is reserved.
core::SafetensorsFile make_checkpoint(const TrainingState& state, const CheckpointInfo& info);

// Restores from an image (`origin` names it in messages). Validates first, then changes the model,
// optimizer and rngs; on Error nothing has changed. The message starts with "checkpoint '<origin>'"
// and names every problem: missing or unexpected model entries and shape mismatches (as
// load_state_dict), a missing or different optimizer kind ("optimizer: file has 'sgd', expected
// 'adam'"; a plain model file has none), missing or unexpected optim.* entries, wrong dtypes or
// shapes, an rng.<name> that is missing or corrupt, unparsable numeric metadata, an unsupported
// format_version. Entries the caller did not ask for (optimizer state when state.optimizer is null,
// rngs not listed) are ignored.
CheckpointInfo apply_checkpoint(const core::SafetensorsFile& file, const TrainingState& state,
                                std::string_view origin);

// make_checkpoint + core::write_safetensors (atomic: temporary file + rename).
void save_checkpoint(const std::string& path, const TrainingState& state,
                     const CheckpointInfo& info);
// core::read_safetensors + apply_checkpoint.
CheckpointInfo load_checkpoint(const std::string& path, const TrainingState& state);

}  // namespace bitgrad::nn
