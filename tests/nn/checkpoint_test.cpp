// checkpoint_test.cpp: training checkpoints. Rng state save / restore (with the Box-Muller spare);
// resuming a tiny CNN run from a checkpoint gives bit-identical weights, optimizer state and rng
// streams to an uninterrupted run (SGD and Adam), and restoring less does not; file layout and
// metadata; every corrupted or missing entry is an Error naming it and leaves the objects
// unchanged; plain model files load as weights only; atomic writes.
#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/json.hpp"
#include "core/rng.hpp"
#include "core/safetensors.hpp"
#include "nn/activation.hpp"
#include "nn/batch_norm.hpp"
#include "nn/checkpoint.hpp"
#include "nn/conv2d.hpp"
#include "nn/linear.hpp"
#include "nn/resnet_cifar.hpp"
#include "nn/schedule.hpp"
#include "nn/sequential.hpp"
#include "nn/state_dict.hpp"
#include "test_util.hpp"

namespace bitgrad::nn {
namespace {

using autograd::Variable;
using core::Rng;
using core::Shape;
using core::Tensor;

TEST_CASE("Rng::state / set_state: a restored generator continues the same stream") {
  Rng a(42);
  a.next_u64();
  (void)a.normal();  // leaves the second Box-Muller value cached
  const core::RngState saved = a.state();
  CHECK(saved.has_spare);
  Rng b(7);
  b.set_state(saved);
  CHECK(a.normal() == b.normal());  // the spare
  for (int i = 0; i < 5; ++i) {
    CHECK(a.normal() == b.normal());
    CHECK(a.next_u64() == b.next_u64());
    CHECK(a.uniform() == b.uniform());
  }
  CHECK(a.permutation(10) == b.permutation(10));
  // Without the spare, b would be off by one normal.
  core::RngState no_spare = saved;
  no_spare.has_spare = false;
  Rng c(7), d(7);
  c.set_state(saved);
  d.set_state(no_spare);
  CHECK(c.normal() != d.normal());
  const std::string msg = test::error_message([&] { c.set_state(core::RngState{}); });
  CHECK(msg.find("all four words zero") != std::string::npos);
}

// ---- a tiny training run ------------------------------------------------------------------------

constexpr int64_t kSamples = 24, kBatch = 8, kSide = 5, kClasses = 3;
constexpr int64_t kStepsPerEpoch = kSamples / kBatch;  // 3: odd, so a Box-Muller spare is pending

std::unique_ptr<Sequential> make_model(uint64_t seed) {
  Rng rng(seed);
  auto net = std::make_unique<Sequential>();
  net->emplace_back<Conv2d>(
      Conv2dConfig{.in_channels = 1, .out_channels = 4, .kernel = 3, .padding = 1}, rng);
  net->emplace_back<BatchNorm2d>(4);
  net->emplace_back<ReLU>();
  net->emplace_back<GlobalAvgPool2d>();
  net->emplace_back<Linear>(LinearConfig{.in_features = 4, .out_features = kClasses}, rng);
  return net;
}

struct Data {
  Tensor images;  // [24, 1, 5, 5]
  std::vector<int64_t> labels;
};

const Data& data() {
  static const Data d = [] {
    Rng rng(99);
    Data out{rng.normal_tensor(Shape{kSamples, 1, kSide, kSide}), {}};
    for (int64_t i = 0; i < kSamples; ++i) out.labels.push_back(i % kClasses);
    return out;
  }();
  return d;
}

// Everything a run owns. The optimizer is built over the model's decay groups.
struct Run {
  std::unique_ptr<Sequential> model;
  std::unique_ptr<Optimizer> optimizer;
  Rng data_rng;

  Run(uint64_t model_seed, uint64_t data_seed, bool adam)
      : model(make_model(model_seed)), data_rng(data_seed) {
    if (adam)
      optimizer = std::make_unique<Adam>(decay_groups(*model, 1e-2f), AdamOptions{.lr = 0.01f});
    else
      optimizer =
          std::make_unique<Sgd>(decay_groups(*model, 5e-4f), SgdOptions{0.1f, 0.9f, 0.0f, true});
  }
  TrainingState state() {
    return TrainingState{model.get(), optimizer.get(), {{"data", &data_rng}}};
  }
};

// One epoch: shuffle with data_rng, add N(0, 0.1) noise and a random brightness per batch, set the
// scheduled lr, step.
void train_epoch(Run& run, const Schedule& schedule, int64_t epoch) {
  const Data& d = data();
  const std::vector<int64_t> order = run.data_rng.permutation(kSamples);
  constexpr int64_t kPixels = kSide * kSide;
  for (int64_t step = 0; step < kStepsPerEpoch; ++step) {
    Tensor x = run.data_rng.normal_tensor(Shape{kBatch, 1, kSide, kSide}, 0.0f, 0.1f);
    const float brightness = 0.1f * run.data_rng.normal();  // one normal: a spare stays pending
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < kBatch; ++i) {
      const int64_t src = order[static_cast<size_t>(step * kBatch + i)];
      labels.push_back(d.labels[static_cast<size_t>(src)]);
      for (int64_t k = 0; k < kPixels; ++k)
        x.data()[i * kPixels + k] += d.images.data()[src * kPixels + k] + brightness;
    }
    const Variable loss = autograd::cross_entropy(run.model->forward(Variable(x)), labels);
    run.optimizer->zero_grad();
    loss.backward();
    run.optimizer->set_lr(schedule.lr(epoch, step, kStepsPerEpoch));
    run.optimizer->step();
  }
}

std::vector<uint8_t> image(Run& run, int64_t epoch) {
  CheckpointInfo info;
  info.epoch = epoch;
  return core::serialize_safetensors(make_checkpoint(run.state(), info));
}

TEST_CASE("checkpoint: a resumed run is bit-identical to an uninterrupted one") {
  constexpr int64_t kEpochs = 5, kResumeAt = 3;
  const bool adam = GENERATE(false, true);
  INFO((adam ? "Adam" : "SGD Nesterov"));
  const Schedule schedule(parse_schedule("cosine+warmup:1+per-step"), adam ? 0.01f : 0.1f, kEpochs);
  test::TempDir dir;
  const std::string path = dir.file("run.ckpt.safetensors");

  Run straight(1, 2, adam);
  for (int64_t e = 0; e < kEpochs; ++e) train_epoch(straight, schedule, e);

  {
    Run first(1, 2, adam);
    for (int64_t e = 0; e < kResumeAt; ++e) train_epoch(first, schedule, e);
    CHECK(first.data_rng.state().has_spare);  // the spare really is part of what must be saved
    CheckpointInfo info;
    info.epoch = kResumeAt;
    info.global_step = first.optimizer->steps();
    save_checkpoint(path, first.state(), info);
  }

  // Fresh objects with other seeds: everything must come from the file.
  Run resumed(1001, 1002, adam);
  const CheckpointInfo info = load_checkpoint(path, resumed.state());
  REQUIRE(info.epoch == kResumeAt);
  CHECK(info.global_step == kResumeAt * kStepsPerEpoch);
  CHECK(resumed.optimizer->steps() == kResumeAt * kStepsPerEpoch);
  for (int64_t e = info.epoch; e < kEpochs; ++e) train_epoch(resumed, schedule, e);

  // Weights, BN statistics and counters, optimizer buffers and counters, rng: all identical bytes.
  CHECK(image(straight, kEpochs) == image(resumed, kEpochs));
  const core::SafetensorsFile a = state_dict(*straight.model), b = state_dict(*resumed.model);
  for (const auto& [name, stored] : a.tensors) {
    INFO(name);
    CHECK(stored.bytes == b.tensors.at(name).bytes);
  }

  // The test can fail: restoring the weights alone (fresh optimizer state and rng) diverges.
  Run partial(1001, 1002, adam);
  load_checkpoint(path, TrainingState{partial.model.get(), nullptr, {}});
  for (int64_t e = kResumeAt; e < kEpochs; ++e) train_epoch(partial, schedule, e);
  CHECK(state_dict(*partial.model).tensors.at("0.weight").bytes != a.tensors.at("0.weight").bytes);
}

// ---- layout, metadata ---------------------------------------------------------------------------

TEST_CASE("checkpoint: entries are named after the model's parameters; metadata round-trips") {
  Rng rng(5);
  ResNetCifar model(ResNetCifarConfig{8, 10, 1, Shortcut::kA}, rng);
  Sgd sgd(decay_groups(model, 5e-4f), SgdOptions{0.1f, 0.9f, 0.0f, true});
  for (Variable p : model.parameters()) p.mutable_grad() = Tensor::full(p.shape(), 0.01f);
  sgd.set_lr(0.05f);
  sgd.step();
  Rng data_rng(11), aug_rng(12);
  CheckpointInfo info;
  info.architecture = "resnet8 shortcut A, 10 classes, 1 channel";
  info.dataset = "fashion-mnist";
  info.recipe = R"({"epochs":200,"schedule":"cosine+warmup:5"})";
  info.epoch = 17;
  info.global_step = 6647;
  info.best_accuracy = 0.1 + 0.2;  // not representable in few digits: must still round-trip exactly
  info.extra = {{"git_commit", "abc123"}};
  const core::SafetensorsFile file = make_checkpoint(
      TrainingState{&model, &sgd, {{"data", &data_rng}, {"augment", &aug_rng}}}, info);

  for (const NamedParameter& p : model.named_parameters()) {
    INFO(p.name);
    CHECK(file.contains(p.name));
    CHECK(file.contains("optim.step." + p.name));
    CHECK(file.contains("optim.momentum." + p.name));
  }
  CHECK(file.contains("optim.momentum.layer1.0.conv1.weight"));
  CHECK(file.tensors.at("optim.momentum.layer1.0.conv1.weight").shape ==
        file.tensors.at("layer1.0.conv1.weight").shape);
  CHECK(file.contains("layer1.0.bn1.num_batches_tracked"));
  CHECK(file.tensors.at("optim.step.linear.bias").dtype == core::DType::kI64);
  CHECK(file.contains("rng.data"));
  CHECK(file.contains("rng.augment"));
  // Model entries are exactly nn::state_dict's.
  size_t model_entries = 0;
  for (const auto& [name, stored] : file.tensors)
    model_entries += (name.starts_with("optim.") || name.starts_with("rng.")) ? 0 : 1;
  CHECK(model_entries == state_dict(model).tensors.size());

  CHECK(file.metadata.at("format") == "bitgrad.checkpoint");
  CHECK(file.metadata.at("optimizer") == "sgd");
  CHECK(file.metadata.at("rngs") == "data,augment");
  CHECK(file.metadata.at("optimizer_lr") == "0.05000000074505806");  // 0.05f exactly
  const core::Json options = core::Json::parse(file.metadata.at("optimizer_options"));
  CHECK(options["nesterov"].as_bool());
  CHECK(core::Json::parse(file.metadata.at("recipe"))["epochs"].as_int64() == 200);

  ResNetCifar model2(ResNetCifarConfig{8, 10, 1, Shortcut::kA}, rng);
  Sgd sgd2(decay_groups(model2, 5e-4f), SgdOptions{0.1f, 0.9f, 0.0f, true});
  Rng d2(0), a2(0);
  const CheckpointInfo back = apply_checkpoint(
      file, TrainingState{&model2, &sgd2, {{"augment", &a2}, {"data", &d2}}}, "mem");
  CHECK(back.architecture == info.architecture);
  CHECK(back.dataset == info.dataset);
  CHECK(back.recipe == info.recipe);
  CHECK(back.epoch == 17);
  CHECK(back.global_step == 6647);
  CHECK(back.best_accuracy == 0.1 + 0.2);
  CHECK(back.extra == info.extra);
  CHECK(sgd2.lr() == 0.05f);
  CHECK(sgd2.steps() == 1);
  CHECK(d2.next_u64() == data_rng.next_u64());
  CHECK(a2.next_u64() == aug_rng.next_u64());
}

TEST_CASE("make_checkpoint: refuses what it cannot name or store") {
  auto model = make_model(1);
  Variable stranger(Tensor::full(Shape{2}, 1.0f), true);
  Sgd outside(std::vector<Variable>{stranger}, SgdOptions{});
  std::string msg = test::error_message([&] {
    make_checkpoint(TrainingState{model.get(), &outside, {}}, CheckpointInfo{});
  });
  CHECK(msg.find("group 0 parameter 0 ([2]) is not a parameter of the model (Sequential)") !=
        std::string::npos);

  std::vector<Variable> twice = model->parameters();
  twice.push_back(twice.front());
  Sgd repeated(twice, SgdOptions{});
  msg = test::error_message([&] {
    make_checkpoint(TrainingState{model.get(), &repeated, {}}, CheckpointInfo{});
  });
  CHECK(msg.find("parameter 0.weight appears twice") != std::string::npos);

  CheckpointInfo reserved;
  reserved.extra["epoch"] = "3";
  msg =
      test::error_message([&] { make_checkpoint(TrainingState{.model = model.get()}, reserved); });
  CHECK(msg.find("extra metadata key 'epoch' is reserved") != std::string::npos);

  CheckpointInfo bad_recipe;
  bad_recipe.recipe = "{epochs: 3}";
  msg = test::error_message(
      [&] { make_checkpoint(TrainingState{.model = model.get()}, bad_recipe); });
  CHECK(msg.find("recipe is not valid JSON") != std::string::npos);

  Rng r(1);
  msg = test::error_message([&] {
    make_checkpoint(TrainingState{model.get(), nullptr, {{"data", &r}, {"data", &r}}},
                    CheckpointInfo{});
  });
  CHECK(msg.find("rng 'data' is listed twice") != std::string::npos);
  CHECK_THROWS_AS(
      make_checkpoint(TrainingState{model.get(), nullptr, {{"x", nullptr}}}, CheckpointInfo{}),
      bitgrad::Error);
  CHECK_THROWS_AS(make_checkpoint(TrainingState{}, CheckpointInfo{}), bitgrad::Error);
}

// ---- corrupted and missing entries --------------------------------------------------------------

TEST_CASE(
    "apply_checkpoint: each corrupted or missing entry is an Error naming it; nothing changes") {
  Run saved(1, 2, /*adam=*/true);
  const Schedule schedule(ScheduleConfig{}, 0.01f, 1);
  train_epoch(saved, schedule, 0);
  const core::SafetensorsFile good = make_checkpoint(saved.state(), CheckpointInfo{});

  struct Corruption {
    const char* what;
    std::function<void(core::SafetensorsFile&)> apply;
    const char* expected;
  };
  const auto stored_f32 = [](std::vector<int64_t> shape) {
    return core::StoredTensor::from_tensor(Tensor(Shape(shape)));
  };
  const std::vector<Corruption> cases = {
      {"optimizer buffer removed", [](auto& f) { f.tensors.erase("optim.exp_avg.0.weight"); },
       "1 missing optimizer entries: [optim.exp_avg.0.weight]"},
      {"step counter removed", [](auto& f) { f.tensors.erase("optim.step.4.bias"); },
       "1 missing optimizer entries: [optim.step.4.bias]"},
      {"buffer of the wrong shape",
       [&](auto& f) { f.tensors["optim.exp_avg_sq.0.weight"] = stored_f32({3}); },
       "optim.exp_avg_sq.0.weight: expected F32 [4, 1, 3, 3], file has F32 [3]"},
      {"step counter of the wrong dtype",
       [&](auto& f) { f.tensors["optim.step.0.weight"] = stored_f32({}); },
       "optim.step.0.weight: expected I64 [], file has F32 []"},
      {"unexpected optimizer entry",
       [&](auto& f) {
         f.tensors["optim.momentum.0.weight"] = stored_f32({4, 1, 3, 3});
       },
       "1 unexpected optimizer entries (saved with other options or parameters?): "
       "[optim.momentum.0.weight]"},
      {"other optimizer kind", [](auto& f) { f.metadata["optimizer"] = "sgd"; },
       "optimizer: file has 'sgd', expected 'adam'"},
      {"no optimizer state", [](auto& f) { f.metadata.erase("optimizer"); },
       "no optimizer state (metadata 'optimizer' is missing"},
      {"rng removed", [](auto& f) { f.tensors.erase("rng.data"); },
       "missing rng.data (saved rngs: [data])"},
      {"rng zeroed",
       [](auto& f) {
         const std::vector<int64_t> zeros(6, 0);
         f.tensors["rng.data"] = core::StoredTensor::from_i64({6}, zeros);
       },
       "rng.data is corrupt: all four generator words are zero"},
      {"rng wrong shape", [&](auto& f) { f.tensors["rng.data"] = stored_f32({4}); },
       "rng.data: expected I64 [6], file has F32 [4]"},
      {"bad epoch", [](auto& f) { f.metadata["epoch"] = "three"; },
       "metadata epoch is 'three', expected an integer"},
      {"bad best accuracy", [](auto& f) { f.metadata["best_accuracy"] = "0.9x"; },
       "metadata best_accuracy is '0.9x', expected a number"},
      {"future format", [](auto& f) { f.metadata["format_version"] = "2"; },
       "format_version is '2', this build reads '1'"},
      {"model entry removed", [](auto& f) { f.tensors.erase("1.running_mean"); },
       "missing: [1.running_mean]"},
      {"model entry of the wrong shape",
       [&](auto& f) {
         f.tensors["4.weight"] = stored_f32({4, 3});
       },
       "shape mismatch: 4.weight expects [3, 4], file has [4, 3]"},
      {"unexpected model entry", [&](auto& f) { f.tensors["5.weight"] = stored_f32({1}); },
       "unexpected: [5.weight]"},
  };
  for (const Corruption& c : cases) {
    SECTION(c.what) {
      core::SafetensorsFile bad = good;
      c.apply(bad);
      Run target(7, 8, true);
      const std::vector<uint8_t> before = image(target, 0);
      const std::string msg =
          test::error_message([&] { apply_checkpoint(bad, target.state(), "mem.safetensors"); });
      INFO(msg);
      CHECK(msg.rfind("checkpoint 'mem.safetensors': ", 0) == 0);
      CHECK(msg.find(c.expected) != std::string::npos);
      CHECK(image(target, 0) == before);  // model, optimizer and rng untouched
    }
  }
  SECTION("the uncorrupted image loads") {
    Run target(7, 8, true);
    apply_checkpoint(good, target.state(), "mem");
    CHECK(image(target, 0) == image(saved, 0));
  }
}

// ---- files --------------------------------------------------------------------------------------

TEST_CASE("save_checkpoint / load_checkpoint: atomic files, unreadable files, weights-only use") {
  test::TempDir dir;
  const std::string path = dir.file("ckpt.safetensors");
  Run saved(1, 2, false);
  const Schedule schedule(ScheduleConfig{}, 0.1f, 1);
  train_epoch(saved, schedule, 0);
  CheckpointInfo info;
  info.epoch = 1;
  save_checkpoint(path, saved.state(), info);
  info.epoch = 2;
  save_checkpoint(path, saved.state(), info);  // replaces the file; no temporary is left behind
  CHECK(dir.listing() == std::vector<std::string>{"ckpt.safetensors"});
  CHECK(core::read_safetensors(path).metadata.at("epoch") == "2");

  // A checkpoint also serves as a weights-only file (optimizer and rng entries ignored).
  auto weights_only = make_model(55);
  const CheckpointInfo got = load_checkpoint(path, TrainingState{.model = weights_only.get()});
  CHECK(got.epoch == 2);
  CHECK(core::serialize_safetensors(state_dict(*weights_only)) ==
        core::serialize_safetensors(state_dict(*saved.model)));

  // Truncated and missing files: Errors naming the path.
  const std::vector<uint8_t> bytes = core::read_file(path);
  const std::string truncated = dir.file("truncated.safetensors");
  core::write_file_atomic(truncated, std::span<const uint8_t>(bytes.data(), bytes.size() / 2));
  Run target(3, 4, false);
  std::string msg = test::error_message([&] { load_checkpoint(truncated, target.state()); });
  CHECK(msg.find(truncated) != std::string::npos);
  msg =
      test::error_message([&] { load_checkpoint(dir.file("absent.safetensors"), target.state()); });
  CHECK(msg.find("absent.safetensors") != std::string::npos);
}

TEST_CASE("load_checkpoint: a plain model file (nn::save_model) loads as weights only") {
  test::TempDir dir;
  const std::string path = dir.file("model.safetensors");
  auto model = make_model(21);
  save_model(path, *model, {{"note", "teacher"}});

  auto loaded = make_model(22);
  const CheckpointInfo info = load_checkpoint(path, TrainingState{.model = loaded.get()});
  CHECK(info.epoch == 0);
  CHECK(info.extra.at("note") == "teacher");
  CHECK(state_dict(*loaded).tensors.at("0.weight").bytes ==
        state_dict(*model).tensors.at("0.weight").bytes);

  // Asking for optimizer state or an rng from it is an Error that says why.
  Run run(23, 24, false);
  const std::string msg = test::error_message([&] { load_checkpoint(path, run.state()); });
  CHECK(msg.find(
            "no optimizer state (metadata 'optimizer' is missing: a weights-only model file?)") !=
        std::string::npos);
  CHECK(msg.find("missing rng.data") != std::string::npos);
}

}  // namespace
}  // namespace bitgrad::nn
