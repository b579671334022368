// state_dict.cpp: state_dict / load_state_dict / save_model / load_model. Loading validates the
// whole file against the module before copying anything, so a failed load leaves the module
// unchanged.
#include "nn/state_dict.hpp"

#include <cmath>
#include <cstdint>
#include <map>
#include <vector>

#include "core/error.hpp"

namespace bitgrad::nn {

namespace {

struct Slot {
  std::vector<int64_t> shape;
  Variable parameter;  // exactly one of these three is set
  Tensor* buffer = nullptr;
  int64_t* counter = nullptr;
};

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// "[a, b, c]" with at most 12 names, then "... (k more)".
std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 12;
  std::string s = "[";
  for (size_t i = 0; i < names.size() && i < kShown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kShown) s += ", ... (" + std::to_string(names.size() - kShown) + " more)";
  return s + "]";
}

int64_t read_counter(const core::StoredTensor& stored) {
  if (stored.dtype == core::DType::kI64) {
    uint64_t v = 0;  // little-endian bytes, independent of the host's byte order
    for (int i = 7; i >= 0; --i) v = (v << 8) | stored.bytes.at(static_cast<size_t>(i));
    return static_cast<int64_t>(v);
  }
  return static_cast<int64_t>(std::llround(stored.to_tensor().item()));
}

}  // namespace

core::SafetensorsFile state_dict(const Module& module) {
  core::SafetensorsFile file;
  for (const NamedParameter& p : module.named_parameters())
    file.tensors[p.name] = core::StoredTensor::from_tensor(p.variable.value());
  for (const NamedBuffer& b : module.named_buffers())
    file.tensors[b.name] = core::StoredTensor::from_tensor(*b.tensor);
  for (const NamedCounter& c : module.named_counters()) {
    const int64_t value = *c.value;
    file.tensors[c.name] = core::StoredTensor::from_i64({}, std::span<const int64_t>(&value, 1));
  }
  return file;
}

void load_state_dict(Module& module, const core::SafetensorsFile& file, bool strict) {
  std::vector<std::string> order;  // the module's names, in module order
  std::map<std::string, Slot> slots;
  for (const NamedParameter& p : module.named_parameters()) {
    order.push_back(p.name);
    slots[p.name] = Slot{p.variable.shape().to_vector(), p.variable, nullptr, nullptr};
  }
  for (const NamedBuffer& b : module.named_buffers()) {
    order.push_back(b.name);
    slots[b.name] = Slot{b.tensor->shape().to_vector(), Variable(), b.tensor, nullptr};
  }
  for (const NamedCounter& c : module.named_counters()) {
    order.push_back(c.name);
    slots[c.name] = Slot{{}, Variable(), nullptr, c.value};
  }
  const std::vector<LoadAlias> aliases = module.load_aliases();

  std::map<std::string, std::string> source;  // module name -> file name
  std::vector<std::string> unexpected, problems;
  for (const auto& [name, stored] : file.tensors) {
    std::string target = name;
    if (slots.count(name) == 0) {
      for (const LoadAlias& a : aliases) {
        if (name.rfind(a.alias, 0) != 0) continue;
        const std::string candidate = a.canonical + name.substr(a.alias.size());
        if (slots.count(candidate) != 0) {
          target = candidate;
          break;
        }
      }
    }
    auto slot = slots.find(target);
    if (slot == slots.end()) {
      unexpected.push_back(name);
      continue;
    }
    if (auto seen = source.find(target); seen != source.end()) {
      problems.push_back("both " + seen->second + " and " + name + " give " + target);
      continue;
    }
    source[target] = name;
    const bool shape_ok = slot->second.counter != nullptr
                              ? (stored.shape.empty() || stored.shape == std::vector<int64_t>{1})
                              : stored.shape == slot->second.shape;
    if (!shape_ok)
      problems.push_back("shape mismatch: " + target + " expects " +
                         shape_string(slot->second.shape) + ", file has " +
                         shape_string(stored.shape));
  }
  std::vector<std::string> missing;
  for (const std::string& name : order)
    if (source.count(name) == 0) missing.push_back(name);

  std::string message;
  const auto append = [&](const std::string& part) {
    message += (message.empty() ? "" : "; ") + part;
  };
  if (strict && !missing.empty())
    append(std::to_string(missing.size()) + " missing: " + name_list(missing));
  if (strict && !unexpected.empty())
    append(std::to_string(unexpected.size()) + " unexpected: " + name_list(unexpected));
  for (const std::string& p : problems) append(p);
  check_lazy(message.empty(),
             [&] { return "load_state_dict (" + module.type_name() + "): " + message; });

  for (const auto& [target, name] : source) {
    const Slot& slot = slots.at(target);
    const core::StoredTensor& stored = file.tensors.at(name);
    if (slot.counter != nullptr) {
      *slot.counter = read_counter(stored);
      continue;
    }
    const Tensor values = stored.to_tensor().reshape(core::Shape(slot.shape));
    Tensor destination = slot.buffer != nullptr ? *slot.buffer : slot.parameter.value();
    destination.copy_(values);
  }
}

void save_model(const std::string& path, const Module& module,
                const std::map<std::string, std::string>& metadata) {
  core::SafetensorsFile file = state_dict(module);
  file.metadata = metadata;
  core::write_safetensors(path, file);
}

std::map<std::string, std::string> load_model(const std::string& path, Module& module,
                                              bool strict) {
  const core::SafetensorsFile file = core::read_safetensors(path);
  load_state_dict(module, file, strict);
  return file.metadata;
}

}  // namespace bitgrad::nn
