// args.hpp: the command line of one bitgrad subcommand: declared options with defaults and help,
// `--name value` or `--name=value`, boolean switches, positional arguments. Unknown options, missing
// values and values of the wrong type raise bitgrad::Error with one line saying what was expected.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bitgrad::apps {

class Args {
 public:
  explicit Args(std::string command) : command_(std::move(command)) {}

  // Declarations (before parse). `value_name` is shown in help, e.g. "N" or "DIR".
  Args& option(const std::string& name, const std::string& default_value, const std::string& value_name,
               const std::string& help);
  Args& flag(const std::string& name, const std::string& help);

  // Parses argv-style arguments (without the program and subcommand names).
  void parse(const std::vector<std::string>& argv);

  std::string str(const std::string& name) const;
  int64_t integer(const std::string& name, int64_t min, int64_t max) const;
  double number(const std::string& name, double min, double max) const;
  bool on(const std::string& name) const;
  // True when the option (or flag) appeared on the command line, rather than taking its default.
  bool given(const std::string& name) const { return values_.count(name) != 0; }
  const std::vector<std::string>& positional() const { return positional_; }
  std::string help() const;

 private:
  struct Spec {
    std::string default_value, value_name, help;
    bool is_flag = false;
  };
  std::string command_;
  std::map<std::string, Spec> specs_;
  std::vector<std::string> order_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace bitgrad::apps
