// train.cpp: `bitgrad train` (FP32 training of a CIFAR ResNet on a real data set, with checkpoints,
// resume, progress, a JSON-lines log) and `bitgrad eval` (top-1, top-5 and per-class accuracy of a saved
// model). Wiring only: data sets, models, optimizers, schedules and checkpoints are library calls.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "apps/args.hpp"
#include "apps/commands.hpp"
#include "apps/distiller.hpp"
#include "apps/model_io.hpp"
#include "apps/progress.hpp"
#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/memory.hpp"
#include "core/rng.hpp"
#include "core/safetensors.hpp"
#include "core/threads.hpp"
#include "datasets/dataset.hpp"
#include "datasets/loader.hpp"
#include "nn/checkpoint.hpp"
#include "nn/metrics.hpp"
#include "nn/optim.hpp"
#include "nn/resnet_cifar.hpp"
#include "nn/schedule.hpp"
#include "nn/state_dict.hpp"
#include "quant/hessian.hpp"
#include "quant/policy.hpp"

namespace bitgrad::apps {

namespace {

using autograd::Variable;
using core::Json;
using core::Tensor;

// The QAT policy from the train options, or nullopt for FP32 training (no --quant).
std::optional<quant::QuantPolicy> policy_from_args(const Args& args) {
  if (args.str("quant").empty()) {
    for (const char* name : {"grad", "edge", "ewgs-delta", "ewgs-update-every", "wbits", "abits"})
      check_lazy(!args.given(name), [&] {
        return std::string("--") + name + ": only meaningful with --quant (FP32 training has no quantizers)";
      });
    return std::nullopt;
  }
  quant::QuantPolicy p;
  p.method = quant::parse_method(args.str("quant"));
  p.weight_bits = static_cast<int>(args.integer("wbits", 1, 32));
  p.act_bits = static_cast<int>(args.integer("abits", 1, 32));
  p.edge = args.str("edge").empty() ? quant::default_edge(p.method) : quant::parse_edge(args.str("edge"));
  p.estimator.kind = quant::parse_estimator(args.str("grad"));
  p.estimator.ewgs_delta = static_cast<float>(args.number("ewgs-delta", 0.0, 1e6));
  quant::validate(p);
  return p;
}

// Loads the weights of an FP32 model file or checkpoint of the same architecture into `model` (which
// has no quantizers yet): every parameter and buffer must be present with its shape.
void load_init(const std::string& path, const ModelSpec& spec, nn::ResNetCifar& model) {
  core::SafetensorsFile file = core::read_safetensors(path);
  const ModelSpec found = spec_from_metadata(file.metadata, path);
  check_lazy(found.depth == spec.depth && found.shortcut == spec.shortcut && found.classes == spec.classes &&
                 found.channels == spec.channels,
             [&] {
               const auto describe = [](const ModelSpec& m) {
                 return "resnet" + std::to_string(m.depth) + " shortcut " +
                        (m.shortcut == nn::Shortcut::kA ? "A" : "B") + ", " + std::to_string(m.classes) +
                        " classes, " + std::to_string(m.channels) + " channels";
               };
               return "--init '" + path + "': expected a model of " + describe(spec) + ", found " +
                      describe(found);
             });
  check_lazy(file.metadata.count("quant") == 0, [&] {
    return "--init '" + path + "': expected an FP32 model, found a quantized one (" + file.metadata.at("quant") + ")";
  });
  nn::load_state_dict(model, without_training_state(std::move(file)), /*strict=*/true);
}

// The optimizer's groups: conv/linear weights with weight decay; BN, biases without; quantizer
// parameters (names with ".quant.": clipping values, steps, output scales) without decay and with
// their own learning-rate multiplier (EWGS trains them 100x slower than the weights).
std::vector<nn::ParamGroup> training_groups(const nn::Module& model, float wd, float quant_lr_scale) {
  const nn::ParameterGroups named = model.parameter_groups();
  std::vector<nn::ParamGroup> groups(2);
  groups[0].weight_decay = wd;
  for (const nn::NamedParameter& p : named.decay) groups[0].params.push_back(p.variable);
  nn::ParamGroup quantizers;
  quantizers.lr_scale = quant_lr_scale;
  for (const nn::NamedParameter& p : named.no_decay)
    (p.name.find(".quant.") != std::string::npos ? quantizers : groups[1]).params.push_back(p.variable);
  if (!quantizers.params.empty()) groups.push_back(std::move(quantizers));
  return groups;
}


// "runs/model.safetensors" -> "runs/model.best.safetensors" (and likewise ".log.jsonl").
std::string sibling(const std::string& path, const std::string& suffix) {
  std::filesystem::path p(path);
  std::string stem = p.stem().string();
  return (p.parent_path() / (stem + suffix)).string();
}

}  // namespace

int run_train(const std::vector<std::string>& argv) {
  Args args("train");
  args.option("model", "resnet20", "NAME", "resnet20|resnet32|resnet44|resnet56|resnet110")
      .option("shortcut", "A", "A|B", "residual shortcut when the shape changes")
      .option("dataset", "fashion-mnist", "NAME", "fashion-mnist|mnist|cifar10|cifar100|synthetic")
      .option("data", "", "DIR", "data directory (default: the data set's standard location)")
      .option("epochs", "15", "N", "training epochs")
      .option("batch-size", "128", "B", "mini-batch size (the last partial batch is dropped)")
      .option("optimizer", "sgd", "NAME", "sgd (momentum 0.9, Nesterov) or adam")
      .option("lr", "0.1", "LR", "base learning rate")
      .option("wd", "5e-4", "WD", "weight decay on conv/linear weights (BN and biases: none)")
      .option("schedule", "cosine+per-step", "SPEC",
              "cosine[:FLOOR] | multistep:M1,M2[:GAMMA] | constant, +warmup:E[:F], +per-step")
      .option("seed", "1", "S", "random seed (initialisation, order, augmentation)")
      .option("threads", "0", "T", "worker threads (0 = BITGRAD_THREADS or all cores)")
      .option("train-limit", "0", "N", "use only the first N training images (0 = all)")
      .option("out", "", "FILE", "checkpoint path (default runs/<model>-<dataset>.safetensors)")
      .option("resume", "", "FILE", "continue the run saved in this checkpoint")
      .option("quant", "", "METHOD", "quantization-aware training: minmax|lsq|pact|lint|pot|apot")
      .option("wbits", "2", "B", "weight bits with --quant (pot/apot: 2..4, others 2..8)")
      .option("abits", "2", "B", "activation bits with --quant")
      .option("grad", "ste", "EST", "rounding gradient estimator: ste|ewgs|dsq|daq")
      .option("edge", "", "RULE", "first/last layer: fp|int8|same (default: the method's own)")
      .option("ewgs-delta", "0", "D", "EWGS scaling factor delta (initial; fixed unless updated)")
      .option("ewgs-update-every", "0", "E", "with --grad ewgs: re-estimate delta from the Hessian trace at "
              "the start of every E-th epoch (not the first; 0 = keep delta fixed)")
      .option("ewgs-batches", "3", "K", "training batches per Hessian-trace estimate")
      .option("quant-lr-scale", "", "F", "learning-rate multiplier of the quantizer parameters "
              "(default: 0.01 for lint, as EWGS's 1e-5 vs 1e-3; 1 otherwise)")
      .option("init", "", "FILE", "start from the weights of this FP32 model (same architecture)")
      .option("clip-grad-norm", "0", "N", "clip the joint L2 norm of the gradients to N before each step "
              "(0 = no clipping)");
  declare_distill_options(args);
  args.option("log-steps", "0", "N", "also log the mean training loss of every N steps to <out>.steps.jsonl")
      .option("stop-after", "0", "E", "stop after epoch E as if interrupted (0 = run to the end)")
      .flag("no-augment", "train without random crop / flip")
      .flag("json", "print the final metrics as one JSON object on the last line")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad train [options]\n%s", args.help().c_str());
    return 0;
  }
  check(args.positional().empty(), "train: unexpected argument '" +
                                       (args.positional().empty() ? "" : args.positional()[0]) + "'");
  if (const int64_t t = args.integer("threads", 0, 1024); t > 0) core::set_num_threads(static_cast<int>(t));
  const std::string dataset_name = args.str("dataset");
  const int64_t epochs = args.integer("epochs", 1, 100000);
  const int64_t batch_size = args.integer("batch-size", 1, 65536);
  const float lr = static_cast<float>(args.number("lr", 0.0, 100.0));
  const float wd = static_cast<float>(args.number("wd", 0.0, 1.0));
  const uint64_t seed = static_cast<uint64_t>(args.integer("seed", 0, INT64_MAX));
  const int64_t limit = args.integer("train-limit", 0, INT64_MAX);
  const std::string optimizer_name = args.str("optimizer");
  check(optimizer_name == "sgd" || optimizer_name == "adam",
        "--optimizer: expected sgd or adam, got '" + optimizer_name + "'");
  const nn::ScheduleConfig schedule_config = nn::parse_schedule(args.str("schedule"));
  const std::string out = args.str("out").empty()
                              ? "runs/" + args.str("model") + "-" + dataset_name + ".safetensors"
                              : args.str("out");
  const bool json = args.on("json");
  const int64_t stop_after = args.integer("stop-after", 0, epochs);

  const datasets::Dataset train = datasets::load_dataset(dataset_name, args.str("data"), datasets::Split::kTrain);
  const datasets::Dataset test = datasets::load_dataset(dataset_name, args.str("data"), datasets::Split::kTest);
  const ModelSpec spec{parse_depth(args.str("model")), parse_shortcut(args.str("shortcut")), train.classes,
                       train.channels};

  core::Rng init_rng(seed);
  nn::ResNetCifar model(nn::ResNetCifarConfig{spec.depth, spec.classes, spec.channels, spec.shortcut},
                        init_rng);
  const std::optional<quant::QuantPolicy> policy = policy_from_args(args);
  const std::string assistant = prepare_teacher_assistant(args, argv, out);
  const std::unique_ptr<Distiller> distill = Distiller::from_args(args, spec, epochs, wd, assistant);
  if (!args.str("init").empty()) load_init(args.str("init"), spec, model);
  if (policy) quant::quantize_model(model, *policy);
  const float quant_lr_scale = static_cast<float>(
      args.str("quant-lr-scale").empty()
          ? (policy && policy->method == quant::QuantMethod::kLint ? 0.01 : 1.0)
          : args.number("quant-lr-scale", 0.0, 1e6));
  check(policy || !args.given("quant-lr-scale"), "--quant-lr-scale: only meaningful with --quant");
  const std::vector<nn::ParamGroup> groups = training_groups(model, wd, quant_lr_scale);
  std::unique_ptr<nn::Optimizer> optimizer;
  if (optimizer_name == "sgd")
    optimizer = std::make_unique<nn::Sgd>(groups, nn::SgdOptions{lr, 0.9f, 0.0f, true});
  else {
    nn::AdamOptions adam;  // betas (0.9, 0.999), eps 1e-8: PyTorch's defaults
    adam.lr = lr;
    optimizer = std::make_unique<nn::Adam>(groups, adam);
  }
  const nn::Schedule schedule(schedule_config, lr, epochs);
  const double clip_norm = args.number("clip-grad-norm", 0.0, 1e9);
  const std::vector<Variable> params = model.parameters();

  datasets::LoaderOptions train_options;
  train_options.batch_size = batch_size;
  train_options.drop_last = true;
  train_options.seed = seed;
  train_options.augment = args.on("no-augment") ? datasets::Augment{} : datasets::default_augment(dataset_name);
  if (limit > 0) train_options.limit = limit;
  datasets::Loader train_loader(train, train_options);
  datasets::LoaderOptions test_options;
  test_options.batch_size = 256;
  test_options.shuffle = false;
  datasets::Loader test_loader(test, test_options);
  check_lazy(train_loader.batches_per_epoch() > 0, [&] {
    return "train: " + std::to_string(train_loader.size()) +
           " training images make no full batch of " + std::to_string(batch_size);
  });

  Json recipe = Json::object();
  recipe.set("optimizer", optimizer->options()).set("optimizer_kind", std::string(optimizer->kind()));
  recipe.set("schedule", nn::to_string(schedule_config)).set("epochs", epochs).set("batch_size", batch_size);
  recipe.set("seed", static_cast<int64_t>(seed)).set("train_images", train_loader.size());
  recipe.set("augment_crop_padding", train_options.augment.crop_padding).set("augment_flip", train_options.augment.flip);
  if (distill) recipe.set("distill", distill->recipe());
  if (clip_norm > 0.0) recipe.set("clip_grad_norm", clip_norm);
  recipe.set("threads", core::num_threads());

  core::Rng hessian_rng(seed ^ 0x4855544348494e53ULL);  // Hutchinson probes ("HUTCHINS")
  nn::TrainingState state{&model, optimizer.get(), {{"init", &init_rng}, {"hessian", &hessian_rng}}};
  const int64_t ewgs_every = args.integer("ewgs-update-every", 0, 1000000);
  const int64_t ewgs_batches = args.integer("ewgs-batches", 1, 1000);
  check(ewgs_every == 0 || (policy && policy->estimator.kind == quant::EstimatorKind::kEwgs),
        "--ewgs-update-every: only meaningful with --grad ewgs");
  nn::CheckpointInfo info;
  info.architecture = "resnet" + std::to_string(spec.depth) + " shortcut " +
                      (spec.shortcut == nn::Shortcut::kA ? "A" : "B") + ", " +
                      std::to_string(spec.classes) + " classes, " + std::to_string(spec.channels) + " channels";
  info.dataset = dataset_name;
  info.recipe = recipe.dump();
  info.extra = spec_metadata(spec);
  if (policy) {
    info.extra["quant"] = quant::to_json(*policy).dump();
    info.architecture += ", " + quant::to_string(policy->method) + " W" + std::to_string(policy->weight_bits) +
                         "A" + std::to_string(policy->act_bits) + " (" + quant::to_string(policy->estimator.kind) + ")";
  }
  if (!args.str("init").empty()) info.extra["init"] = args.str("init");
  int64_t first_epoch = 0;
  if (!args.str("resume").empty()) {
    const nn::CheckpointInfo resumed = nn::load_checkpoint(args.str("resume"), state);
    check_lazy(resumed.architecture == info.architecture && resumed.dataset == dataset_name, [&] {
      return "--resume '" + args.str("resume") + "': expected a checkpoint of " + info.architecture +
             " on " + dataset_name + ", found " + resumed.architecture + " on " + resumed.dataset;
    });
    if (policy) quant::load_estimator_state(model);
    first_epoch = resumed.epoch;
    info.best_accuracy = resumed.best_accuracy;
    info.global_step = resumed.global_step;
  }
  if (const auto dir = std::filesystem::path(out).parent_path(); !dir.empty())
    std::filesystem::create_directories(dir);
  const std::string best_path = sibling(out, ".best.safetensors");
  const std::string log_path = sibling(out, ".log.jsonl");
  std::ofstream log(log_path, first_epoch > 0 ? std::ios::app : std::ios::trunc);
  check(static_cast<bool>(log), "train: cannot write the log '" + log_path + "'");
  const int64_t log_steps = args.integer("log-steps", 0, 1000000);
  std::ofstream steps_log;
  if (log_steps > 0) {
    const std::string steps_path = sibling(out, ".steps.jsonl");
    steps_log.open(steps_path, first_epoch > 0 ? std::ios::app : std::ios::trunc);
    check(static_cast<bool>(steps_log), "train: cannot write the step log '" + steps_path + "'");
  }

  const int64_t steps = train_loader.batches_per_epoch();
  std::printf("train: %s on %s (%lld training images, %lld test), %lld parameters, %d threads, "
                "%s lr %g wd %g, schedule %s, batch %lld, epochs %lld%s\n",
                info.architecture.c_str(), dataset_name.c_str(), static_cast<long long>(train_loader.size()),
                static_cast<long long>(test.count), static_cast<long long>(model.num_parameters()),
                core::num_threads(), optimizer_name.c_str(), lr, wd, nn::to_string(schedule_config).c_str(),
                static_cast<long long>(batch_size), static_cast<long long>(epochs),
                first_epoch > 0 ? (" (resuming after epoch " + std::to_string(first_epoch) + ")").c_str() : "");
  if (distill) std::printf("%s\n", distill->describe().c_str());
  Json last = Json::object();
  const auto run_start = std::chrono::steady_clock::now();
  double train_seconds = 0.0;
  const int64_t end_epoch = stop_after > 0 ? std::min(stop_after, epochs) : epochs;
  if (policy && first_epoch == 0) {
    // Data-dependent quantizer initialisation on the first training batch, in train mode (EWGS's
    // init_quant_model; LSQ's step). The loader restarts epoch 0 below, so the run sees this batch again.
    train_loader.start_epoch(0);
    const std::optional<datasets::Batch> batch = train_loader.next();
    model.train();
    quant::calibrate(model, [&] { model.forward(Variable(batch->images)); });
  }
  // The features the distillation loss reads from the student (none without a teacher).
  const std::vector<std::string> student_taps =
      distill ? distill->student_taps(model) : std::vector<std::string>{};
  double window_loss = 0.0;  // training loss since the last --log-steps line
  int64_t window_steps = 0;
  for (int64_t epoch = first_epoch; epoch < end_epoch; ++epoch) {
    model.train();
    if (ewgs_every > 0 && epoch > 0 && epoch % ewgs_every == 0) {
      // EWGS's update_grad_scales: delta from the Hessian trace on the epoch's first K batches (train
      // mode; quant/hessian.hpp restores BN statistics afterwards). The epoch restarts below.
      train_loader.start_epoch(epoch);
      std::vector<datasets::Batch> probe_batches;
      while (static_cast<int64_t>(probe_batches.size()) < ewgs_batches)
        if (auto b = train_loader.next()) probe_batches.push_back(std::move(*b)); else break;
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<quant::EwgsDelta> deltas = quant::update_ewgs_deltas(
          model, static_cast<int>(probe_batches.size()),
          [&](int k) {
            const datasets::Batch& b = probe_batches[static_cast<size_t>(k)];
            return autograd::cross_entropy(model.forward(Variable(b.images)), b.labels);
          },
          hessian_rng);
      double lo = 1e30, hi = 0.0;
      for (const quant::EwgsDelta& d : deltas) {
        lo = std::min(lo, static_cast<double>(d.delta));
        hi = std::max(hi, static_cast<double>(d.delta));
      }
      std::printf("epoch %lld: EWGS delta from the Hessian trace for %zu quantizers: %.3g .. %.3g (%.1f s)\n",
                  static_cast<long long>(epoch + 1), deltas.size(), deltas.empty() ? 0.0 : lo, hi,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    train_loader.start_epoch(epoch);
    const double wait_before = train_loader.wait_seconds();
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(epochs), steps);
    nn::ClassificationMetrics train_metrics(spec.classes);
    double loss_sum = 0.0;
    int64_t step = 0;
    const auto epoch_start = std::chrono::steady_clock::now();
    while (auto batch = train_loader.next()) {
      const float step_lr = schedule.lr(epoch, step, steps);
      optimizer->set_lr(step_lr);
      nn::FeatureTaps taps(student_taps);
      const Variable logits = model.forward(Variable(batch->images), distill ? &taps : nullptr);
      const Variable loss = distill ? distill->loss(logits, taps, batch->labels, batch->images, epoch, step_lr)
                                    : autograd::cross_entropy(logits, batch->labels);
      const float l = loss.item();
      check_lazy(std::isfinite(l), [&] {
        return "train: the loss became " + std::to_string(l) + " at epoch " +
               std::to_string(epoch + 1) + " step " + std::to_string(step + 1) +
               " (expected a finite value; try a lower --lr). The last good checkpoint is '" + out + "'";
      });
      optimizer->zero_grad();
      loss.backward();
      if (clip_norm > 0.0) nn::clip_grad_norm(params, clip_norm);
      optimizer->step();
      loss_sum += l;
      train_metrics.add(logits.value(), batch->labels);
      ++step;
      ++info.global_step;
      window_loss += l;
      ++window_steps;
      if (log_steps > 0 && info.global_step % log_steps == 0) {
        Json line = Json::object();
        line.set("step", info.global_step).set("epoch", epoch + 1);
        line.set("loss", window_loss / static_cast<double>(window_steps)).set("lr", static_cast<double>(step_lr));
        steps_log << line.dump() << "\n";
        window_loss = 0.0;
        window_steps = 0;
      }
      bar.update(step, loss_sum / static_cast<double>(step), train_metrics.top1(), train_metrics.count());
    }
    bar.finish();
    const double epoch_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    train_seconds += epoch_seconds;
    const nn::ClassificationMetrics test_metrics = evaluate(model, test_loader, spec.classes);
    info.epoch = epoch + 1;
    const bool best = epoch == 0 || test_metrics.top1() > info.best_accuracy;
    if (best) info.best_accuracy = test_metrics.top1();
    info.extra["test_top1"] = std::to_string(test_metrics.top1());
    nn::save_checkpoint(out, state, info);
    if (best) nn::save_checkpoint(best_path, state, info);

    last = Json::object();
    last.set("epoch", epoch + 1).set("lr", static_cast<double>(schedule.lr(epoch, steps - 1, steps)));
    last.set("train_loss", loss_sum / static_cast<double>(step)).set("train_top1", train_metrics.top1());
    last.set("test_top1", test_metrics.top1()).set("test_top5", test_metrics.top5());
    last.set("best_top1", info.best_accuracy);
    last.set("images_per_s", static_cast<double>(train_metrics.count()) / epoch_seconds);
    last.set("epoch_seconds", epoch_seconds).set("loader_wait_seconds", train_loader.wait_seconds() - wait_before);
    last.set("peak_rss_mib", static_cast<double>(core::peak_resident_bytes()) / (1024.0 * 1024.0));
    log << last.dump() << "\n";
    log.flush();
    std::printf("epoch %lld/%lld: train loss %.4f top-1 %.2f%% | test top-1 %.2f%% top-5 %.2f%% | "
                "%.0f img/s | saved %s%s\n",
                static_cast<long long>(epoch + 1), static_cast<long long>(epochs),
                loss_sum / static_cast<double>(step), train_metrics.top1(), test_metrics.top1(),
                test_metrics.top5(), static_cast<double>(train_metrics.count()) / epoch_seconds,
                out.c_str(), best ? " (best)" : "");
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  std::printf("done: best test top-1 %.2f%% (%s), last %s, log %s, %.1f s\n", info.best_accuracy,
              best_path.c_str(), out.c_str(), log_path.c_str(), wall);
  if (json) {
    Json final_metrics = last;
    final_metrics.set("model", out).set("best_model", best_path).set("train_seconds", train_seconds);
    final_metrics.set("wall_seconds", wall);
    std::printf("%s\n", final_metrics.dump().c_str());
  }
  return 0;
}

int run_distill(const std::vector<std::string>& argv) {
  bool teacher = false, method = false, help = false;
  for (const std::string& a : argv) {
    teacher = teacher || a == "--teacher";
    method = method || a == "--method";
    help = help || a == "--help";
  }
  if (help) {
    std::printf(
        "bitgrad distill = bitgrad train with a teacher: --teacher FILE --method kd|qkd|va-qkd|takd are required;\n"
        "every train option applies (e.g. --quant lint --wbits 2 --abits 2 --init FP32.safetensors).\n"
        "  kd      CE + KD(teacher)\n"
        "  va-qkd  CE + KD(teacher) + KD(virtual anchor: the teacher's output quantized to --anchor-bits)\n"
        "  qkd     self-studying (CE only), co-studying (the teacher trains alongside), tutoring (as kd)\n"
        "  takd    a --ta-bits teacher assistant distilled from the teacher first, then the student from it\n"
        "KD is the --loss distance: logit (Hinton KD), feature (MSE on the stage outputs) or contrastive\n"
        "(InfoNCE on the pooled embeddings). docs/distill.md has the formulas.\n");
    return run_train({"--help"});
  }
  check(teacher, "distill: expected --teacher FILE (the teacher model)");
  check(method, "distill: expected --method kd|qkd|va-qkd|takd");
  return run_train(argv);
}

int run_eval(const std::vector<std::string>& argv) {
  Args args("eval");
  args.option("dataset", "", "NAME", "data set (default: the one the model was trained on)")
      .option("data", "", "DIR", "data directory (default: the data set's standard location)")
      .option("split", "test", "SPLIT", "test or train")
      .option("batch-size", "256", "B", "evaluation batch size")
      .option("threads", "0", "T", "worker threads (0 = BITGRAD_THREADS or all cores)")
      .flag("json", "print the metrics as one JSON object on the last line")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad eval MODEL.safetensors [options]\n%s", args.help().c_str());
    return 0;
  }
  check_lazy(args.positional().size() == 1, [&] {
    return "eval: expected one MODEL.safetensors argument, got " +
           std::to_string(args.positional().size());
  });
  if (const int64_t t = args.integer("threads", 0, 1024); t > 0) core::set_num_threads(static_cast<int>(t));
  const std::string path = args.positional()[0];
  LoadedModel loaded = load_trained_model(path);
  const ModelSpec& spec = loaded.spec;
  nn::ResNetCifar& model = *loaded.model;
  check_lazy(!loaded.dataset.empty() || !args.str("dataset").empty(), [&] {
    return "eval: '" + path + "' does not name its data set (no 'dataset' metadata): pass --dataset";
  });
  const std::string dataset_name = args.str("dataset").empty() ? loaded.dataset : args.str("dataset");
  const datasets::Dataset data = datasets::load_dataset(dataset_name, args.str("data"),
                                                        datasets::parse_split(args.str("split")));
  check_lazy(data.classes == spec.classes && data.channels == spec.channels, [&] {
    return "eval: the model expects " + std::to_string(spec.channels) + "-channel images in " +
           std::to_string(spec.classes) + " classes, but " + dataset_name + " has " +
           std::to_string(data.channels) + " channels and " + std::to_string(data.classes) + " classes";
  });
  datasets::LoaderOptions options;
  options.batch_size = args.integer("batch-size", 1, 65536);
  options.shuffle = false;
  datasets::Loader loader(data, options);
  const auto start = std::chrono::steady_clock::now();
  const nn::ClassificationMetrics m = evaluate(model, loader, spec.classes);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s on %s/%s: %lld images, top-1 %.2f%%, top-5 %.2f%% (%.0f img/s)\n", path.c_str(),
              dataset_name.c_str(), args.str("split").c_str(), static_cast<long long>(m.count()), m.top1(),
              m.top5(), static_cast<double>(m.count()) / secs);
  const std::vector<double> per_class = m.per_class();
  Json classes = Json::object();
  for (size_t c = 0; c < per_class.size(); ++c) {
    std::printf("  %-14s %6.2f%%\n", data.class_names[c].c_str(), per_class[c]);
    classes.set(data.class_names[c], per_class[c]);
  }
  if (args.on("json")) {
    Json j = Json::object();
    j.set("model", path).set("dataset", dataset_name).set("split", args.str("split"));
    j.set("images", m.count()).set("top1", m.top1()).set("top5", m.top5()).set("per_class", classes);
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace bitgrad::apps
