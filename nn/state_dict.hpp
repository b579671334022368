// state_dict.hpp: a module's state (parameters, buffers, counters) as a safetensors image with
// PyTorch's names, loading it back with strict name and shape checks, and file save / load.
// A checkpoint written by PyTorch for the same architecture (torch.save of the state dict converted
// with safetensors.torch.save_file) loads directly, and ours load into PyTorch.
// Not here: optimizer state, the packed deploy format (quant/ and kernels/).
#pragma once

#include <map>
#include <string>

#include "core/safetensors.hpp"
#include "nn/module.hpp"

namespace bitgrad::nn {

// Every parameter and buffer as F32, every counter (num_batches_tracked) as a 0-d I64 tensor, under
// its dotted name. No metadata. Values are copied.
core::SafetensorsFile state_dict(const Module& module);

// Copies the file's tensors into the module's parameters, buffers and counters, in place (existing
// storage is kept). Names are matched exactly or through the module's load aliases (e.g. "fc." for
// "linear."). Any float dtype converts to float32; counters read I64 (or any dtype holding an integer).
// Errors (bitgrad::Error, one message listing every problem; nothing is loaded when it throws):
//   - shape mismatch (always): "shape mismatch: <name> expects [..], file has [..]";
//   - with strict: names the module has but the file lacks ("missing: [...]") and names the file has
//     but the module lacks ("unexpected: [...]");
//   - a name present under both its spellings (canonical and alias).
// Without strict, missing entries keep their values and unexpected ones are ignored.
void load_state_dict(Module& module, const core::SafetensorsFile& file, bool strict = true);

// state_dict(module) plus `metadata`, written atomically with core::write_safetensors.
void save_model(const std::string& path, const Module& module,
                const std::map<std::string, std::string>& metadata = {});
// read_safetensors + load_state_dict; returns the file's metadata.
std::map<std::string, std::string> load_model(const std::string& path, Module& module,
                                              bool strict = true);

}  // namespace bitgrad::nn
