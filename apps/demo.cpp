// demo.cpp: `bitgrad demo`, the project's main job (scripts/demo.sh) on real Fashion-MNIST, in under 10
// minutes on 2 cores:
//   1. train a ResNet-20 FP32 teacher briefly (bitgrad train);
//   2. train its W2A2 student from the teacher's weights with VA-QKD (bitgrad distill --method va-qkd:
//      cross-entropy + KD from the teacher + KD from its virtual anchor; --quant lint: learned-interval
//      weights and activations at 2 bits, the EWGS/DAQ quantizer);
//   3. export the student to the packed format (bitgrad export);
//   4. verify the packed model against the QAT model layer by layer on 1000 test images (bitgrad
//      verify: every code and accumulator must match exactly);
//   5. evaluate teacher, QAT student and packed student on the 10,000 test images, time them
//      (bitgrad bench) and print one table: accuracy, size, latency and speed-up per kernel tier.
// Each step is the library call its subcommand makes; the files land in --dir (runs/demo).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "apps/args.hpp"
#include "apps/commands.hpp"
#include "apps/deploy_report.hpp"
#include "apps/model_io.hpp"
#include "apps/speed.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "datasets/dataset.hpp"
#include "datasets/loader.hpp"
#include "kernels/runtime/packed_runtime.hpp"

namespace bitgrad::apps {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int run_demo(const std::vector<std::string>& argv) {
  Args args("demo");
  args.option("dir", "runs/demo", "DIR", "where the models and logs go")
      .option("data", "", "DIR", "Fashion-MNIST directory (default: Debian's dataset-fashion-mnist)")
      .option("teacher-epochs", "6", "N", "FP32 teacher epochs")
      .option("student-epochs", "5", "N", "W2A2 student epochs")
      .option("train-limit", "10000", "N", "training images per epoch (the first N)")
      .option("quant", "lint", "METHOD", "the student's quantizer (bitgrad train --quant)")
      .option("method", "va-qkd", "NAME",
              "the student's distillation: va-qkd, kd, qkd or takd (bitgrad distill --method)")
      .option("seed", "1", "S", "random seed")
      .flag("no-pytorch", "do not time PyTorch")
      .flag("json", "print the summary as one JSON object on the last line")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad demo [options]\n%s", args.help().c_str());
    return 0;
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string dir = args.str("dir");
  std::filesystem::create_directories(dir);
  const std::string teacher = dir + "/teacher-fp32.safetensors";
  const std::string student = dir + "/student-w2a2.safetensors";
  const std::string packed_path = dir + "/student-w2a2.bgpk";
  const std::string limit = std::to_string(args.integer("train-limit", 1, 60000));
  const std::string seed = std::to_string(args.integer("seed", 0, 1 << 30));
  std::vector<std::string> data;
  if (!args.str("data").empty()) data = {"--data", args.str("data")};

  std::printf("== bitgrad demo 1/5: FP32 teacher (ResNet-20, Fashion-MNIST) ==\n");
  std::vector<std::string> t_args = {"--dataset", "fashion-mnist", "--model", "resnet20", "--epochs",
                                     std::to_string(args.integer("teacher-epochs", 1, 1000)), "--train-limit",
                                     limit, "--seed", seed, "--out", teacher};
  t_args.insert(t_args.end(), data.begin(), data.end());
  if (const int rc = run_train(t_args); rc != 0) return rc;

  std::printf("== bitgrad demo 2/5: W2A2 student, quantization-aware training with VA-QKD from the teacher ==\n");
  std::vector<std::string> s_args = {"--dataset", "fashion-mnist", "--model", "resnet20", "--init", teacher,
                                     "--teacher", teacher, "--method", args.str("method"),
                                     "--quant", args.str("quant"), "--wbits", "2", "--abits", "2", "--epochs",
                                     std::to_string(args.integer("student-epochs", 1, 1000)), "--train-limit",
                                     limit, "--lr", "0.01", "--wd", "3e-5", "--seed", seed, "--out", student};
  s_args.insert(s_args.end(), data.begin(), data.end());
  if (const int rc = run_distill(s_args); rc != 0) return rc;

  std::printf("== bitgrad demo 3/5: export to the packed format ==\n");
  std::vector<std::string> e_args = {student, "--out", packed_path};
  e_args.insert(e_args.end(), data.begin(), data.end());
  if (const int rc = run_export(e_args); rc != 0) return rc;

  std::printf("== bitgrad demo 4/5: verify packed against QAT, layer by layer (1000 test images) ==\n");
  std::vector<std::string> v_args = {student, packed_path, "--n", "1000"};
  v_args.insert(v_args.end(), data.begin(), data.end());
  const int verify_rc = run_verify(v_args);

  std::printf("== bitgrad demo 5/5: accuracy on the 10,000 test images, speed ==\n");
  const datasets::Dataset test = datasets::load_dataset("fashion-mnist", args.str("data"), datasets::Split::kTest);
  datasets::LoaderOptions lo;
  lo.batch_size = 250;
  lo.shuffle = false;
  datasets::Loader loader(test, lo);
  LoadedModel fp32 = load_trained_model(teacher);
  LoadedModel qat = load_trained_model(student);
  const double fp32_top1 = evaluate(*fp32.model, loader, test.classes).top1();
  const double qat_top1 = evaluate(*qat.model, loader, test.classes).top1();
  const kernels::PackedResNet packed = kernels::load_packed(packed_path);
  kernels::PackedRuntime runtime(packed);
  const double packed_top1 = evaluate(runtime, loader).top1();
  const core::Json size = size_report(packed, packed_path);
  SpeedOptions so;
  so.min_time = 0.5;
  so.repetitions = 2;
  so.pytorch = !args.on("no-pytorch");
  const SpeedTable speed = measure_speed(packed, so);

  const double fp32_mib = size.find("fp32_bytes")->as_number() / (1024.0 * 1024.0);
  const double packed_mib = size.find("file_bytes")->as_number() / (1024.0 * 1024.0);
  std::printf("\n== bitgrad demo: summary (ResNet-20 on Fashion-MNIST, %d threads, %.0f s in all) ==\n",
              speed.threads, seconds_since(start));
  std::printf("%-32s %10s %11s %14s %9s %16s %9s\n", "model", "test top-1", "size (MiB)", "batch 1 (ms)",
              "speed-up", ("batch " + std::to_string(speed.batch) + " img/s").c_str(), "speed-up");
  const SpeedRow* ours = nullptr;
  for (const SpeedRow& r : speed.rows)
    if (r.engine == "FP32 bitgrad") ours = &r;
  core::Json rows = core::Json::array();
  auto line = [&](const std::string& name, double top1, double mib, const SpeedRow* r) {
    char acc[16] = "-", sz[16] = "-", lat[16] = "-", lsp[16] = "-", ips[16] = "-", tsp[16] = "-";
    if (top1 >= 0) std::snprintf(acc, sizeof acc, "%.2f%%", top1);
    if (mib >= 0) std::snprintf(sz, sizeof sz, "%.3f", mib);
    if (r != nullptr) {
      std::snprintf(lat, sizeof lat, "%.3f", r->latency_ms);
      std::snprintf(ips, sizeof ips, "%.0f", r->images_per_second);
      if (ours != nullptr) {
        std::snprintf(lsp, sizeof lsp, "%.2fx", ours->latency_ms / r->latency_ms);
        std::snprintf(tsp, sizeof tsp, "%.2fx", r->images_per_second / ours->images_per_second);
      }
    }
    std::printf("%-32s %10s %11s %14s %9s %16s %9s\n", name.c_str(), acc, sz, lat, lsp, ips, tsp);
    core::Json j = core::Json::object();
    j.set("model", name).set("top1", top1).set("size_mib", mib);
    if (r != nullptr) j.set("latency_ms", r->latency_ms).set("images_per_second", r->images_per_second);
    rows.push_back(std::move(j));
  };
  line("FP32 teacher (bitgrad engine)", fp32_top1, fp32_mib, ours);
  line("W2A2 " + args.str("method") + " student (fake quant)", qat_top1, -1, nullptr);
  for (const SpeedRow& r : speed.rows) {
    if (r.tier == "-") continue;
    line("W2A2 packed, " + r.tier + " kernels", packed_top1, packed_mib, &r);
  }
  for (const SpeedRow& r : speed.rows)
    if (r.engine.starts_with("FP32 PyTorch")) line(r.engine, -1, fp32_mib, &r);
  if (!speed.pytorch_note.empty()) std::printf("  %s\n", speed.pytorch_note.c_str());
  std::printf("  packed = the QAT student exported: %s layer by layer on 1000 test images (step 4)\n",
              verify_rc == 0 ? "every code and accumulator equal to the QAT model's"
                             : "DIFFERS from the QAT model (see step 4)");
  std::printf("  files: %s, %s, %s\n", teacher.c_str(), student.c_str(), packed_path.c_str());
  if (args.on("json")) {
    core::Json j = core::Json::object();
    j.set("rows", rows).set("verify_exact", verify_rc == 0).set("seconds", seconds_since(start));
    std::printf("%s\n", j.dump().c_str());
  }
  return verify_rc;
}

}  // namespace bitgrad::apps
