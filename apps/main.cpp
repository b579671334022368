// main.cpp: the bitgrad command-line tool: dispatches to a subcommand and turns bitgrad::Error into one
// line on stderr and exit code 1 (2 for usage errors).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "apps/commands.hpp"
#include "apps/plot.hpp"
#include "core/error.hpp"
#include "core/threads.hpp"

namespace {

constexpr const char* kUsage =
    "usage: bitgrad <command> [options]\n"
    "commands:\n"
    "  train     train a CIFAR ResNet (FP32, or its QAT twin with --quant) with checkpoints and resume\n"
    "  distill   train with a teacher: KD or VA-QKD (virtual anchors) on top of train / QAT\n"
    "  eval      top-1, top-5 and per-class accuracy of a saved model\n"
    "  export    a QAT model -> packed model (.bgpk) for the integer kernels, with its size / BOPs report\n"
    "  verify    run a QAT model and its packed export side by side: layer-by-layer exact comparison\n"
    "  infer     accuracy (or one image's prediction) of a packed model with the packed runtime\n"
    "  bench     latency and throughput of a packed model per kernel tier, next to FP32 (ours, PyTorch)\n"
    "  demo      train a ResNet on Fashion-MNIST, evaluate, save and reload it\n"
    "  plot      training-curve PNGs from JSON-lines logs (bitgrad train's <out>.log.jsonl)\n"
    "  help      show this help\n"
    "Run 'bitgrad <command> --help' for a command's options.\n";

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    bitgrad::core::init_threads_from_env();
    if (command == "train") return bitgrad::apps::run_train(rest);
    if (command == "eval") return bitgrad::apps::run_eval(rest);
    if (command == "distill") return bitgrad::apps::run_distill(rest);
    if (command == "demo") return bitgrad::apps::run_demo(rest);
    if (command == "export") return bitgrad::apps::run_export(rest);
    if (command == "verify") return bitgrad::apps::run_verify(rest);
    if (command == "infer") return bitgrad::apps::run_infer(rest);
    if (command == "bench") return bitgrad::apps::run_bench(rest);
    if (command == "plot") return bitgrad::apps::run_plot(rest);
    std::fprintf(stderr, "bitgrad: unknown command '%s' (expected one of: train, distill, eval, export, verify, infer, bench, demo, plot, help)\n",
                 command.c_str());
    return 2;
  } catch (const bitgrad::Error& e) {
    std::fprintf(stderr, "bitgrad: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitgrad: internal error: %s\n", e.what());
    return 1;
  }
}
