// commands.hpp: the subcommands of the bitgrad tool. Each takes the arguments after its name, returns
// the process exit code, and throws bitgrad::Error for bad input (main prints it as one line).
#pragma once

#include <string>
#include <vector>

namespace bitgrad::apps {

int run_demo(const std::vector<std::string>& argv);
int run_train(const std::vector<std::string>& argv);
int run_distill(const std::vector<std::string>& argv);
int run_eval(const std::vector<std::string>& argv);
int run_export(const std::vector<std::string>& argv);
int run_verify(const std::vector<std::string>& argv);
int run_infer(const std::vector<std::string>& argv);
int run_bench(const std::vector<std::string>& argv);

}  // namespace bitgrad::apps
