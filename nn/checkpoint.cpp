// checkpoint.cpp: make_checkpoint / apply_checkpoint / save_checkpoint / load_checkpoint. Loading
// checks the optimizer and rng entries first, then the model (load_state_dict validates before it
// copies), and only then writes anything, so a failed load leaves every object as it was.
#include "nn/checkpoint.hpp"

#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <system_error>
#include <type_traits>

#include "core/error.hpp"
#include "core/json.hpp"
#include "nn/state_dict.hpp"

namespace bitgrad::nn {

namespace {

constexpr std::string_view kFormat = "bitgrad.checkpoint";
constexpr std::string_view kFormatVersion = "1";
const std::string kOptimPrefix = "optim.";
const std::string kStepPrefix = "optim.step.";
const std::string kRngPrefix = "rng.";
constexpr int64_t kRngWords = 6;  // 4 xoshiro words, has_spare, spare's bits
constexpr std::array<std::string_view, 13> kReserved = {
    "format",          "format_version", "architecture",  "dataset",   "recipe",
    "epoch",           "global_step",    "best_accuracy", "optimizer", "optimizer_options",
    "optimizer_steps", "optimizer_lr",   "rngs"};

bool is_reserved(const std::string& key) {
  for (std::string_view r : kReserved)
    if (key == r) return true;
  return false;
}

using ParamNames = std::map<const autograd::VariableImpl*, std::string>;

ParamNames parameter_names(const Module& model) {
  ParamNames names;
  for (const NamedParameter& p : model.named_parameters()) names[p.variable.impl().get()] = p.name;
  return names;
}

// The model name of every optimizer parameter, [group][index]; throws for strangers and repeats.
std::vector<std::vector<std::string>> optimizer_names(const Optimizer& optimizer,
                                                      const Module& model, std::string_view what) {
  const ParamNames names = parameter_names(model);
  std::set<std::string> seen;
  std::vector<std::vector<std::string>> out(optimizer.groups().size());
  for (size_t gi = 0; gi < optimizer.groups().size(); ++gi) {
    for (size_t pi = 0; pi < optimizer.groups()[gi].params.size(); ++pi) {
      const autograd::Variable& p = optimizer.groups()[gi].params[pi];
      const auto it = names.find(p.impl().get());
      check_lazy(it != names.end(), [&] {
        return std::string(what) + ": optimizer group " + std::to_string(gi) + " parameter " +
               std::to_string(pi) + " (" + p.shape().to_string() +
               ") is not a parameter of the model (" + model.type_name() + ")";
      });
      check_lazy(seen.insert(it->second).second, [&] {
        return std::string(what) + ": parameter " + it->second +
               " appears twice in the optimizer's groups";
      });
      out[gi].push_back(it->second);
    }
  }
  return out;
}

std::string shape_text(const std::vector<int64_t>& dims) { return core::Shape(dims).to_string(); }

std::string double_text(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 64 characters always suffice for the shortest round-trip form of a double
  return std::string(buf, end);
}

core::StoredTensor i64_tensor(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  return core::StoredTensor::from_i64(std::move(shape), values);
}

// Element i of an I64 tensor (little-endian bytes, independent of the host's byte order).
int64_t i64_at(const core::StoredTensor& t, size_t i) {
  uint64_t v = 0;
  for (int b = 7; b >= 0; --b) v = (v << 8) | t.bytes.at(8 * i + static_cast<size_t>(b));
  return static_cast<int64_t>(v);
}

std::string list_text(const std::vector<std::string>& names) {
  constexpr size_t kShown = 12;
  std::string s = "[";
  for (size_t i = 0; i < names.size() && i < kShown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kShown) s += ", ... (" + std::to_string(names.size() - kShown) + " more)";
  return s + "]";
}

// Reads numeric metadata; records a problem when present but unparsable.
template <typename T>
T metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key,
                  T fallback, std::vector<std::string>& problems) {
  const auto it = metadata.find(key);
  if (it == metadata.end()) return fallback;
  const std::string& text = it->second;
  T value{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    problems.push_back("metadata " + key + " is '" + text + "', expected " +
                       (std::is_integral_v<T> ? "an integer" : "a number"));
    return fallback;
  }
  return value;
}

}  // namespace

core::SafetensorsFile make_checkpoint(const TrainingState& state, const CheckpointInfo& info) {
  constexpr std::string_view kWhat = "make_checkpoint";
  check(state.model != nullptr, "make_checkpoint: expected a model, got null");
  core::SafetensorsFile file = state_dict(*state.model);
  for (const auto& [name, stored] : file.tensors)
    check_lazy(!name.starts_with(kOptimPrefix) && !name.starts_with(kRngPrefix), [&] {
      return "make_checkpoint: model entry " + name +
             " uses a prefix reserved for optimizer / rng state (optim., rng.)";
    });

  std::map<std::string, std::string>& meta = file.metadata;
  for (const auto& [key, value] : info.extra) {
    check_lazy(!is_reserved(key),
               [&] { return "make_checkpoint: extra metadata key '" + key + "' is reserved"; });
    meta[key] = value;
  }
  try {
    (void)core::Json::parse(info.recipe);
  } catch (const Error& e) {
    throw Error("make_checkpoint: the recipe is not valid JSON: " + std::string(e.what()));
  }
  meta["format"] = kFormat;
  meta["format_version"] = kFormatVersion;
  meta["architecture"] = info.architecture;
  meta["dataset"] = info.dataset;
  meta["recipe"] = info.recipe;
  meta["epoch"] = std::to_string(info.epoch);
  meta["global_step"] = std::to_string(info.global_step);
  meta["best_accuracy"] = double_text(info.best_accuracy);

  if (state.optimizer != nullptr) {
    const Optimizer& opt = *state.optimizer;
    const auto names = optimizer_names(opt, *state.model, kWhat);
    const std::vector<std::string> buffers = opt.buffer_names();
    const OptimizerState os = opt.state();
    for (size_t gi = 0; gi < names.size(); ++gi) {
      for (size_t pi = 0; pi < names[gi].size(); ++pi) {
        const ParamState& ps = os.params[gi][pi];
        file.tensors[kStepPrefix + names[gi][pi]] = i64_tensor({}, {ps.steps});
        for (size_t bi = 0; bi < buffers.size(); ++bi)
          if (ps.buffers[bi].defined())
            file.tensors[kOptimPrefix + buffers[bi] + "." + names[gi][pi]] =
                core::StoredTensor::from_tensor(ps.buffers[bi]);
      }
    }
    meta["optimizer"] = std::string(opt.kind());
    meta["optimizer_options"] = opt.options().dump();
    meta["optimizer_steps"] = std::to_string(os.steps);
    meta["optimizer_lr"] = double_text(static_cast<double>(os.lr));
  }

  std::string rng_list;
  for (const NamedRng& r : state.rngs) {
    check_lazy(r.rng != nullptr, [&] { return "make_checkpoint: rng '" + r.name + "' is null"; });
    check_lazy(!r.name.empty() && r.name.find(',') == std::string::npos, [&] {
      return "make_checkpoint: expected an rng name that is non-empty and has no ',', got '" +
             r.name + "'";
    });
    const std::string key = kRngPrefix + r.name;
    check_lazy(file.tensors.count(key) == 0,
               [&] { return "make_checkpoint: rng '" + r.name + "' is listed twice"; });
    const core::RngState s = r.rng->state();
    std::vector<int64_t> words;
    for (uint64_t w : s.words) words.push_back(static_cast<int64_t>(w));
    words.push_back(s.has_spare ? 1 : 0);
    words.push_back(static_cast<int64_t>(std::bit_cast<uint32_t>(s.spare)));
    file.tensors[key] = i64_tensor({kRngWords}, words);
    rng_list += (rng_list.empty() ? "" : ",") + r.name;
  }
  meta["rngs"] = rng_list;
  return file;
}

CheckpointInfo apply_checkpoint(const core::SafetensorsFile& file, const TrainingState& state,
                                std::string_view origin) {
  const std::string what = "checkpoint '" + std::string(origin) + "'";
  check(state.model != nullptr, what + ": expected a model to load into, got null");
  const std::map<std::string, std::string>& meta = file.metadata;
  std::vector<std::string> problems;

  if (const auto it = meta.find("format_version"); it != meta.end() && it->second != kFormatVersion)
    problems.push_back("format_version is '" + it->second + "', this build reads '" +
                       std::string(kFormatVersion) + "'");

  CheckpointInfo info;
  for (const auto& [key, value] : meta)
    if (!is_reserved(key)) info.extra[key] = value;
  if (auto it = meta.find("architecture"); it != meta.end()) info.architecture = it->second;
  if (auto it = meta.find("dataset"); it != meta.end()) info.dataset = it->second;
  if (auto it = meta.find("recipe"); it != meta.end()) info.recipe = it->second;
  info.epoch = metadata_number<int64_t>(meta, "epoch", 0, problems);
  info.global_step = metadata_number<int64_t>(meta, "global_step", 0, problems);
  info.best_accuracy = metadata_number<double>(meta, "best_accuracy", 0.0, problems);

  // ---- optimizer ----
  OptimizerState os;
  if (state.optimizer != nullptr) {
    const Optimizer& opt = *state.optimizer;
    const auto kind = meta.find("optimizer");
    if (kind == meta.end()) {
      problems.push_back(
          "no optimizer state (metadata 'optimizer' is missing: a weights-only model "
          "file?), expected '" +
          std::string(opt.kind()) + "' state");
    } else if (kind->second != opt.kind()) {
      problems.push_back("optimizer: file has '" + kind->second + "', expected '" +
                         std::string(opt.kind()) + "'");
    } else {
      const auto names = optimizer_names(opt, *state.model, what);
      const std::vector<std::string> buffers = opt.buffer_names();
      std::set<std::string> expected;
      std::vector<std::string> missing;
      os.lr = metadata_number<float>(meta, "optimizer_lr", opt.lr(), problems);
      os.steps = metadata_number<int64_t>(meta, "optimizer_steps", 0, problems);
      if (!std::isfinite(os.lr) || os.lr < 0.0f)
        problems.push_back("metadata optimizer_lr is " + double_text(os.lr) + ", expected >= 0");
      if (os.steps < 0) problems.push_back("metadata optimizer_steps is negative");
      os.params.resize(names.size());
      for (size_t gi = 0; gi < names.size(); ++gi) {
        for (size_t pi = 0; pi < names[gi].size(); ++pi) {
          const std::string& name = names[gi][pi];
          const std::vector<int64_t> shape = opt.groups()[gi].params[pi].shape().to_vector();
          ParamState ps{0, std::vector<core::Tensor>(buffers.size())};
          const std::string step_key = kStepPrefix + name;
          expected.insert(step_key);
          if (const auto it = file.tensors.find(step_key); it == file.tensors.end()) {
            missing.push_back(step_key);
          } else if (it->second.dtype != core::DType::kI64 || !it->second.shape.empty()) {
            problems.push_back(step_key + ": expected I64 [], file has " +
                               std::string(core::dtype_name(it->second.dtype)) + " " +
                               shape_text(it->second.shape));
          } else {
            ps.steps = i64_at(it->second, 0);
            if (ps.steps < 0)
              problems.push_back(step_key + " is " + std::to_string(ps.steps) + ", expected >= 0");
          }
          for (size_t bi = 0; bi < buffers.size(); ++bi) {
            const std::string key = kOptimPrefix + buffers[bi] + "." + name;
            expected.insert(key);
            const auto it = file.tensors.find(key);
            if (it == file.tensors.end()) {
              if (ps.steps > 0) missing.push_back(key);
            } else if (it->second.dtype != core::DType::kF32 || it->second.shape != shape) {
              problems.push_back(key + ": expected F32 " + shape_text(shape) + ", file has " +
                                 std::string(core::dtype_name(it->second.dtype)) + " " +
                                 shape_text(it->second.shape));
            } else {
              ps.buffers[bi] = it->second.to_tensor();
            }
          }
          os.params[gi].push_back(std::move(ps));
        }
      }
      std::vector<std::string> unexpected;
      for (const auto& [name, stored] : file.tensors)
        if (name.starts_with(kOptimPrefix) && expected.count(name) == 0) unexpected.push_back(name);
      if (!missing.empty())
        problems.push_back(std::to_string(missing.size()) +
                           " missing optimizer entries: " + list_text(missing));
      if (!unexpected.empty())
        problems.push_back(
            std::to_string(unexpected.size()) +
            " unexpected optimizer entries (saved with other options or parameters?): " +
            list_text(unexpected));
    }
  }

  // ---- random generators ----
  std::vector<core::RngState> rng_states;
  for (const NamedRng& r : state.rngs) {
    check(r.rng != nullptr, what + ": rng '" + r.name + "' is null");
    const std::string key = kRngPrefix + r.name;
    core::RngState s;
    const auto it = file.tensors.find(key);
    if (it == file.tensors.end()) {
      const auto saved = meta.find("rngs");
      problems.push_back("missing " + key + " (saved rngs: [" +
                         (saved == meta.end() ? std::string() : saved->second) + "])");
    } else if (it->second.dtype != core::DType::kI64 ||
               it->second.shape != std::vector<int64_t>{kRngWords}) {
      problems.push_back(key + ": expected I64 [6], file has " +
                         std::string(core::dtype_name(it->second.dtype)) + " " +
                         shape_text(it->second.shape));
    } else {
      for (size_t i = 0; i < 4; ++i) s.words[i] = static_cast<uint64_t>(i64_at(it->second, i));
      const int64_t has_spare = i64_at(it->second, 4), spare_bits = i64_at(it->second, 5);
      if ((s.words[0] | s.words[1] | s.words[2] | s.words[3]) == 0)
        problems.push_back(key + " is corrupt: all four generator words are zero");
      else if ((has_spare != 0 && has_spare != 1) || spare_bits < 0 || spare_bits > 0xFFFFFFFF)
        problems.push_back(key + " is corrupt: has_spare " + std::to_string(has_spare) +
                           ", spare bits " + std::to_string(spare_bits));
      s.has_spare = has_spare == 1;
      s.spare = std::bit_cast<float>(static_cast<uint32_t>(spare_bits));
    }
    rng_states.push_back(s);
  }

  std::string message;
  for (const std::string& p : problems) message += (message.empty() ? "" : "; ") + p;
  check_lazy(message.empty(), [&] { return what + ": " + message; });

  // ---- model (validated in full by load_state_dict before it copies anything) ----
  core::SafetensorsFile model_part;
  for (const auto& [name, stored] : file.tensors)
    if (!name.starts_with(kOptimPrefix) && !name.starts_with(kRngPrefix))
      model_part.tensors.emplace(name, stored);
  try {
    load_state_dict(*state.model, model_part, true);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }

  if (state.optimizer != nullptr) state.optimizer->load_state(os);
  for (size_t i = 0; i < state.rngs.size(); ++i) state.rngs[i].rng->set_state(rng_states[i]);
  return info;
}

void save_checkpoint(const std::string& path, const TrainingState& state,
                     const CheckpointInfo& info) {
  core::write_safetensors(path, make_checkpoint(state, info));
}

CheckpointInfo load_checkpoint(const std::string& path, const TrainingState& state) {
  return apply_checkpoint(core::read_safetensors(path), state, path);
}

}  // namespace bitgrad::nn
