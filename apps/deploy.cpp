// deploy.cpp: `bitgrad export` (QAT checkpoint -> packed .bgpk model, with the size / BOPs report),
// `bitgrad verify` (QAT model vs packed model on the same images, layer by layer, zero tolerance) and
// `bitgrad infer` (accuracy or one image's prediction with the packed runtime). Wiring only: export is
// quant/export.hpp, the runtime kernels/runtime/, the report apps/deploy_report.hpp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "apps/args.hpp"
#include "apps/commands.hpp"
#include "apps/deploy_report.hpp"
#include "apps/model_io.hpp"
#include "apps/speed.hpp"
#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/threads.hpp"
#include "datasets/dataset.hpp"
#include "datasets/loader.hpp"
#include "kernels/runtime/packed_model.hpp"
#include "kernels/runtime/packed_runtime.hpp"
#include "nn/layer_quantizer.hpp"
#include "nn/metrics.hpp"
#include "quant/export.hpp"

namespace bitgrad::apps {

namespace {

using core::Json;
using core::Tensor;

void set_threads(const Args& args) {
  if (const int64_t t = args.integer("threads", 0, 1024); t > 0) core::set_num_threads(static_cast<int>(t));
}

// The options infer and verify share: where the images come from, how many, and how the packed
// runtime runs them.
void packed_run_options(Args& args, const char* n_default, const char* n_help, const char* batch_default) {
  args.option("dataset", "", "NAME", "data set (default: the one the packed model was exported for)")
      .option("data", "", "DIR", "data directory (default: the data set's standard location)")
      .option("split", "test", "SPLIT", "test or train")
      .option("n", n_default, "N", n_help)
      .option("batch-size", batch_default, "B", "images per batch")
      .option("family", "auto", "NAME", "kernel family: auto (fastest per layer)|bitserial|int8|shift")
      .option("tier", "auto", "NAME", "highest ISA tier: auto|scalar|avx2|avx512")
      .option("threads", "0", "T", "worker threads (0 = BITGRAD_THREADS or all cores)")
      .flag("json", "print the result as one JSON object on the last line")
      .flag("help", "show this help");
}

kernels::RuntimeOptions runtime_options(const Args& args) {
  kernels::RuntimeOptions o;
  if (const std::string f = args.str("family"); f != "auto") o.family = kernels::parse_family(f);
  if (const std::string t = args.str("tier"); t != "auto") o.tier = kernels::parse_tier(t);
  return o;
}

// The data set a packed model was exported for (its "dataset" in source), unless --dataset says.
std::string packed_dataset(const kernels::PackedResNet& m, const Args& args, const std::string& path) {
  if (!args.str("dataset").empty()) return args.str("dataset");
  const Json* d = m.source.find("dataset");
  check_lazy(d != nullptr && d->is_string(), [&] {
    return "'" + path + "' does not name its data set: pass --dataset";
  });
  return d->as_string();
}

void check_images(const kernels::PackedResNet& m, const datasets::Dataset& data) {
  check_lazy(data.channels == m.in_channels && data.height == m.height && data.width == m.width &&
                 data.classes == m.num_classes,
             [&] {
               return "the packed model takes " + std::to_string(m.in_channels) + "x" + std::to_string(m.height) +
                      "x" + std::to_string(m.width) + " images in " + std::to_string(m.num_classes) +
                      " classes, but " + data.name + " has " + std::to_string(data.channels) + "x" +
                      std::to_string(data.height) + "x" + std::to_string(data.width) + " images in " +
                      std::to_string(data.classes) + " classes";
             });
}

}  // namespace

int run_export(const std::vector<std::string>& argv) {
  Args args("export");
  args.option("out", "", "FILE", "the packed model to write (.bgpk)")
      .option("dataset", "", "NAME", "data set whose image size and normalisation the model takes "
                                     "(default: the one it was trained on)")
      .option("data", "", "DIR", "data directory (default: the data set's standard location)")
      .flag("json", "print the report as one JSON object on the last line")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad export QAT.safetensors --out MODEL.bgpk [options]\n%s", args.help().c_str());
    return 0;
  }
  check_lazy(args.positional().size() == 1, [&] {
    return "export: expected one QAT.safetensors argument, got " + std::to_string(args.positional().size());
  });
  check(!args.str("out").empty(), "export: expected --out MODEL.bgpk");
  const std::string path = args.positional()[0];
  LoadedModel loaded = load_trained_model(path);
  check_lazy(loaded.policy.has_value(), [&] {
    return "export: '" + path + "' is an FP32 model; export takes a QAT model (bitgrad train --quant ...)";
  });
  const std::string dataset_name = args.str("dataset").empty() ? loaded.dataset : args.str("dataset");
  check(!dataset_name.empty(), "export: the model does not name its data set: pass --dataset");
  const datasets::Dataset data = datasets::load_dataset(dataset_name, args.str("data"), datasets::Split::kTest);
  const auto start = std::chrono::steady_clock::now();
  kernels::PackedResNet packed = quant::export_resnet(*loaded.model, *loaded.policy, data.height, data.width);
  packed.source.set("dataset", dataset_name);
  packed.source.set("checkpoint", std::filesystem::path(path).filename().string());
  Json mean = Json::array(), stddev = Json::array();
  for (size_t c = 0; c < data.mean.size(); ++c) {
    mean.push_back(static_cast<double>(data.mean[c]));
    stddev.push_back(static_cast<double>(data.stddev[c]));
  }
  packed.source.set("mean", mean).set("stddev", stddev);
  kernels::save_packed(args.str("out"), packed, path);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Json report = size_report(packed, args.str("out"));
  std::printf("exported %s -> %s in %.1f s\n", path.c_str(), args.str("out").c_str(), secs);
  print_size_report(report);
  if (args.on("json")) std::printf("%s\n", report.dump().c_str());
  return 0;
}

int run_infer(const std::vector<std::string>& argv) {
  Args args("infer");
  args.option("image", "", "INDEX", "predict one image of the split (its index) and print its scores");
  packed_run_options(args, "0", "use only the first N images (0: all)", "256");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad infer MODEL.bgpk [options]\n%s", args.help().c_str());
    return 0;
  }
  check_lazy(args.positional().size() == 1, [&] {
    return "infer: expected one MODEL.bgpk argument, got " + std::to_string(args.positional().size());
  });
  set_threads(args);
  const std::string path = args.positional()[0];
  kernels::PackedRuntime runtime(kernels::load_packed(path), runtime_options(args));
  const kernels::PackedResNet& m = runtime.model();
  const std::string dataset_name = packed_dataset(m, args, path);
  const datasets::Dataset data =
      datasets::load_dataset(dataset_name, args.str("data"), datasets::parse_split(args.str("split")));
  check_images(m, data);
  Json j = Json::object();
  j.set("model", path).set("dataset", dataset_name).set("split", args.str("split"));
  if (!args.str("image").empty()) {
    const int64_t index = args.integer("image", 0, data.count - 1);
    datasets::LoaderOptions lo;
    lo.batch_size = 1;
    lo.shuffle = false;
    datasets::Dataset one = data;
    one.count = 1;
    one.pixels.assign(data.image(index).begin(), data.image(index).end());
    one.labels = {data.labels[static_cast<size_t>(index)]};
    datasets::Loader loader(one, lo);
    loader.start_epoch(0);
    const std::optional<datasets::Batch> batch = loader.next();
    const Tensor logits = runtime.forward(batch->images);
    int64_t best = 0;
    for (int64_t k = 1; k < m.num_classes; ++k)
      if (logits.data()[k] > logits.data()[best]) best = k;
    const int64_t label = one.labels[0];
    std::printf("%s image %lld: predicted %s (class %lld), label %s\n", dataset_name.c_str(),
                static_cast<long long>(index), data.class_names[static_cast<size_t>(best)].c_str(),
                static_cast<long long>(best), data.class_names[static_cast<size_t>(label)].c_str());
    Json scores = Json::array();
    for (int64_t k = 0; k < m.num_classes; ++k) {
      std::printf("  %-14s %9.4f%s\n", data.class_names[static_cast<size_t>(k)].c_str(),
                  static_cast<double>(logits.data()[k]), k == best ? "  <-" : "");
      scores.push_back(static_cast<double>(logits.data()[k]));
    }
    j.set("image", index).set("predicted", best).set("label", label).set("logits", scores);
    if (args.on("json")) std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  datasets::LoaderOptions lo;
  lo.batch_size = args.integer("batch-size", 1, 65536);
  lo.shuffle = false;
  if (const int64_t n = args.integer("n", 0, data.count); n > 0) lo.limit = n;
  datasets::Loader loader(data, lo);
  nn::ClassificationMetrics metrics(m.num_classes);
  loader.start_epoch(0);
  double compute = 0.0;
  while (auto batch = loader.next()) {
    const auto start = std::chrono::steady_clock::now();
    const Tensor logits = runtime.forward(batch->images);
    compute += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics.add(logits, batch->labels);
  }
  const double ips = static_cast<double>(metrics.count()) / std::max(compute, 1e-9);
  std::printf("%s on %s/%s: %lld images, top-1 %.2f%%, top-5 %.2f%% (packed runtime, %.0f img/s at batch %lld)\n",
              path.c_str(), dataset_name.c_str(), args.str("split").c_str(),
              static_cast<long long>(metrics.count()), metrics.top1(), metrics.top5(), ips,
              static_cast<long long>(lo.batch_size));
  Json kernels_used = Json::array();
  for (const std::string& k : runtime.kernel_names(lo.batch_size)) kernels_used.push_back(k);
  j.set("images", metrics.count()).set("top1", metrics.top1()).set("top5", metrics.top5());
  j.set("images_per_second", ips).set("batch_size", lo.batch_size).set("kernels", kernels_used);
  if (args.on("json")) std::printf("%s\n", j.dump().c_str());
  return 0;
}

int run_verify(const std::vector<std::string>& argv) {
  Args args("verify");
  packed_run_options(args, "1000", "compare on the first N images (0: all)", "100");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad verify QAT.safetensors MODEL.bgpk [options]\n%s", args.help().c_str());
    return 0;
  }
  check_lazy(args.positional().size() == 2, [&] {
    return "verify: expected QAT.safetensors and MODEL.bgpk, got " + std::to_string(args.positional().size()) +
           " arguments";
  });
  set_threads(args);
  const std::string qat_path = args.positional()[0], packed_path = args.positional()[1];
  LoadedModel loaded = load_trained_model(qat_path);
  check_lazy(loaded.policy.has_value(), [&] {
    return "verify: '" + qat_path + "' is an FP32 model; verify compares a QAT model with its packed export";
  });
  nn::ResNetCifar& model = *loaded.model;
  model.eval();
  kernels::PackedRuntime runtime(kernels::load_packed(packed_path), runtime_options(args));
  const kernels::PackedResNet& m = runtime.model();
  check_lazy(m.depth == loaded.spec.depth && m.num_classes == loaded.spec.classes &&
                 m.in_channels == loaded.spec.channels,
             [&] {
               return "verify: '" + packed_path + "' is a ResNet-" + std::to_string(m.depth) + " with " +
                      std::to_string(m.num_classes) + " classes, '" + qat_path + "' a ResNet-" +
                      std::to_string(loaded.spec.depth) + " with " + std::to_string(loaded.spec.classes);
             });
  const std::string dataset_name = packed_dataset(m, args, packed_path);
  const datasets::Dataset data =
      datasets::load_dataset(dataset_name, args.str("data"), datasets::parse_split(args.str("split")));
  check_images(m, data);
  datasets::LoaderOptions lo;
  lo.batch_size = args.integer("batch-size", 1, 65536);
  lo.shuffle = false;
  if (const int64_t n = args.integer("n", 0, data.count); n > 0) lo.limit = n;
  datasets::Loader loader(data, lo);
  loader.start_epoch(0);

  VerifyReport report(m);
  while (auto batch = loader.next()) {
    std::vector<nn::IntegerTraceEntry> qat_trace;
    Tensor qat_logits;
    {
      autograd::NoGradGuard no_grad;
      nn::IntegerTraceScope scope(qat_trace);
      qat_logits = model.forward(autograd::Variable(batch->images)).value();
    }
    std::vector<kernels::LayerTrace> trace;
    const Tensor logits = runtime.forward(batch->images, &trace);
    report.add_batch(qat_trace, qat_logits, trace, logits, batch->indices);
  }
  report.set_kernels(runtime.kernel_names(lo.batch_size));
  const Json j = report.print();
  if (args.on("json")) std::printf("%s\n", j.dump().c_str());
  return report.exact() ? 0 : 1;
}

int run_bench(const std::vector<std::string>& argv) {
  Args args("bench");
  args.option("model", "", "FILE", "the packed model (.bgpk) to time")
      .option("batch-size", "64", "B", "the throughput batch")
      .option("min-time", "1", "S", "seconds per case and repetition")
      .option("repetitions", "3", "R", "timed runs per case; the best is kept")
      .option("threads", "0", "T", "worker threads (0 = BITGRAD_THREADS or all cores)")
      .flag("scalar", "also time the scalar reference kernels (slow)")
      .flag("no-pytorch", "do not time PyTorch")
      .flag("json", "print the results as one JSON object on the last line")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad bench --model MODEL.bgpk [options]\n%s", args.help().c_str());
    return 0;
  }
  check(!args.str("model").empty(), "bench: expected --model MODEL.bgpk");
  check_lazy(args.positional().empty(), [&] {
    return "bench: unexpected argument '" + args.positional()[0] + "' (the model goes after --model)";
  });
  set_threads(args);
  const std::string path = args.str("model");
  const kernels::PackedResNet model = kernels::load_packed(path);
  const Json size = size_report(model, path);
  print_size_report(size);
  SpeedOptions o;
  o.batch = args.integer("batch-size", 1, 4096);
  o.min_time = args.number("min-time", 0.01, 600);
  o.repetitions = static_cast<int>(args.integer("repetitions", 1, 100));
  o.pytorch = !args.on("no-pytorch");
  o.scalar = args.on("scalar");
  const Json speed = print_speed_table(measure_speed(model, o));
  if (args.on("json")) {
    Json j = Json::object();
    j.set("model", path).set("size", size).set("speed", speed);
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace bitgrad::apps
