// module.cpp: registration and the recursive listings of Module.
#include "nn/module.hpp"

#include "core/error.hpp"

namespace bitgrad::nn {

bool decays(ParamKind kind) { return kind == ParamKind::kWeight; }

void Module::check_new_name(const std::string& name) const {
  check_lazy(!name.empty() && name.find('.') == std::string::npos, [&] {
    return type_name_ + ": a registered name must be non-empty and contain no '.', got \"" + name +
           "\"";
  });
  bool taken = false;
  for (const auto& e : params_) taken = taken || e.name == name;
  for (const auto& e : buffers_) taken = taken || e.name == name;
  for (const auto& e : counters_) taken = taken || e.name == name;
  for (const auto& e : children_) taken = taken || e.name == name;
  check_lazy(!taken, [&] { return type_name_ + ": name \"" + name + "\" is already registered"; });
}

void Module::register_parameter(std::string name, Variable& parameter, ParamKind kind) {
  check_new_name(name);
  check_lazy(parameter.defined(), [&] {
    return type_name_ + ": parameter \"" + name + "\" must be defined before registration";
  });
  params_.push_back({std::move(name), &parameter, kind});
}

void Module::register_buffer(std::string name, Tensor& buffer) {
  check_new_name(name);
  buffers_.push_back({std::move(name), &buffer});
}

void Module::register_counter(std::string name, int64_t& counter) {
  check_new_name(name);
  counters_.push_back({std::move(name), &counter});
}

void Module::register_module(std::string name, Module& child) {
  check_new_name(name);
  check(&child != this, type_name_ + ": a module cannot be its own child");
  child.train(training_);
  children_.push_back({std::move(name), &child});
}

void Module::add_load_alias(std::string alias, std::string canonical) {
  check(!alias.empty() && !canonical.empty() && alias != canonical,
        type_name_ + ": a load alias needs two different non-empty prefixes");
  aliases_.push_back({std::move(alias), std::move(canonical)});
}

void Module::collect_parameters(const std::string& prefix, std::vector<NamedParameter>& out) const {
  for (const auto& e : params_) out.push_back({prefix + e.name, *e.variable, e.kind});
  for (const auto& c : children_) c.module->collect_parameters(prefix + c.name + ".", out);
}

void Module::collect_buffers(const std::string& prefix, std::vector<NamedBuffer>& out) const {
  for (const auto& e : buffers_) out.push_back({prefix + e.name, e.tensor});
  for (const auto& c : children_) c.module->collect_buffers(prefix + c.name + ".", out);
}

void Module::collect_counters(const std::string& prefix, std::vector<NamedCounter>& out) const {
  for (const auto& e : counters_) out.push_back({prefix + e.name, e.value});
  for (const auto& c : children_) c.module->collect_counters(prefix + c.name + ".", out);
}

void Module::collect_modules(const std::string& prefix, std::vector<NamedModule>& out) const {
  for (const auto& c : children_) {
    out.push_back({prefix + c.name, c.module});
    c.module->collect_modules(prefix + c.name + ".", out);
  }
}

void Module::collect_aliases(const std::string& prefix, std::vector<LoadAlias>& out) const {
  for (const auto& a : aliases_) out.push_back({prefix + a.alias, prefix + a.canonical});
  for (const auto& c : children_) c.module->collect_aliases(prefix + c.name + ".", out);
}

std::vector<NamedParameter> Module::named_parameters() const {
  std::vector<NamedParameter> out;
  collect_parameters("", out);
  return out;
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& p : named_parameters()) out.push_back(std::move(p.variable));
  return out;
}

std::vector<NamedBuffer> Module::named_buffers() const {
  std::vector<NamedBuffer> out;
  collect_buffers("", out);
  return out;
}

std::vector<NamedCounter> Module::named_counters() const {
  std::vector<NamedCounter> out;
  collect_counters("", out);
  return out;
}

std::vector<NamedModule> Module::named_children() const {
  std::vector<NamedModule> out;
  for (const auto& c : children_) out.push_back({c.name, c.module});
  return out;
}

std::vector<NamedModule> Module::named_modules() {
  std::vector<NamedModule> out{{"", this}};
  collect_modules("", out);
  return out;
}

std::vector<LoadAlias> Module::load_aliases() const {
  std::vector<LoadAlias> out;
  collect_aliases("", out);
  return out;
}

ParameterGroups Module::parameter_groups() const {
  ParameterGroups groups;
  for (auto& p : named_parameters()) (decays(p.kind) ? groups.decay : groups.no_decay).push_back(p);
  return groups;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.module->train(on);
}

void Module::zero_grad() {
  for (auto& p : named_parameters()) p.variable.zero_grad();
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : named_parameters()) n += p.variable.numel();
  return n;
}

}  // namespace bitgrad::nn
