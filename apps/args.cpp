// args.cpp: parsing and typed access for Args.
#include "apps/args.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "core/error.hpp"

namespace bitgrad::apps {

Args& Args::option(const std::string& name, const std::string& default_value,
                   const std::string& value_name, const std::string& help) {
  specs_[name] = Spec{default_value, value_name, help, false};
  order_.push_back(name);
  return *this;
}

Args& Args::flag(const std::string& name, const std::string& help) {
  specs_[name] = Spec{"", "", help, true};
  order_.push_back(name);
  return *this;
}

void Args::parse(const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    bool has_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const auto it = specs_.find(name);
    check_lazy(it != specs_.end(), [&] {
      return command_ + ": unknown option '--" + name + "' (see bitgrad " + command_ +
             " --help)";
    });
    if (it->second.is_flag) {
      check_lazy(!has_value, [&] {
        return command_ + ": option '--" + name + "' takes no value, got '" + value + "'";
      });
      values_[name] = "1";
      continue;
    }
    if (!has_value) {
      check_lazy(i + 1 < argv.size(), [&] {
        return command_ + ": option '--" + name + "' expects a value (" +
               it->second.value_name + ")";
      });
      value = argv[++i];
    }
    values_[name] = value;
  }
}

std::string Args::str(const std::string& name) const {
  const auto v = values_.find(name);
  if (v != values_.end()) return v->second;
  const auto s = specs_.find(name);
  check_lazy(s != specs_.end(), [&] { return "Args: option '" + name + "' was never declared"; });
  return s->second.default_value;
}

int64_t Args::integer(const std::string& name, int64_t min, int64_t max) const {
  const std::string v = str(name);
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  check_lazy(!v.empty() && end != nullptr && *end == '\0' && errno == 0 && x >= min && x <= max, [&] {
    return command_ + ": --" + name + " expects an integer in [" + std::to_string(min) +
           ", " + std::to_string(max) + "], got '" + v + "'";
  });
  return x;
}

double Args::number(const std::string& name, double min, double max) const {
  const std::string v = str(name);
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  check_lazy(!v.empty() && end != nullptr && *end == '\0' && std::isfinite(x) && x >= min && x <= max,
             [&] {
               return command_ + ": --" + name + " expects a number in [" +
                      std::to_string(min) + ", " + std::to_string(max) + "], got '" + v + "'";
             });
  return x;
}

bool Args::on(const std::string& name) const { return values_.count(name) != 0; }

std::string Args::help() const {
  std::string h;
  for (const std::string& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  --" + name + (s.is_flag ? "" : " " + s.value_name);
    if (left.size() < 28) left.resize(28, ' ');
    else left += "  ";
    h += left + s.help;
    if (!s.is_flag && !s.default_value.empty()) h += " (default: " + s.default_value + ")";
    h += "\n";
  }
  return h;
}

}  // namespace bitgrad::apps
