// schedule_test.cpp: learning-rate schedules: parsing (valid forms, round trip, errors that list
// the valid forms), values at chosen points (warm-up, milestones, per-step vs per-epoch, past the
// end), and the lr sequences of PyTorch's CosineAnnealingLR, MultiStepLR, LinearLR + SequentialLR
// (golden, tests/golden/make_golden_optim.py).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/safetensors.hpp"
#include "nn/schedule.hpp"
#include "test_util.hpp"

namespace bitgrad::nn {
namespace {

TEST_CASE("parse_schedule: the valid forms and their defaults") {
  ScheduleConfig c = parse_schedule("constant");
  CHECK(c == ScheduleConfig{});

  c = parse_schedule("cosine");
  CHECK(c.kind == ScheduleKind::kCosine);
  CHECK(c.min_lr == 0.0f);
  CHECK(c.warmup_epochs == 0);
  CHECK(c.unit == ScheduleUnit::kEpoch);

  c = parse_schedule("cosine:1e-4+warmup:5");
  CHECK(c.min_lr == 1e-4f);
  CHECK(c.warmup_epochs == 5);
  CHECK(c.warmup_start_factor == 0.1f);

  c = parse_schedule("multistep:100,150");
  CHECK(c.kind == ScheduleKind::kMultiStep);
  CHECK(c.milestones == std::vector<int64_t>{100, 150});
  CHECK(c.gamma == 0.1f);

  c = parse_schedule("multistep:100,150:0.2+warmup:3:0.01+per-step");
  CHECK(c.milestones == std::vector<int64_t>{100, 150});
  CHECK(c.gamma == 0.2f);
  CHECK(c.warmup_epochs == 3);
  CHECK(c.warmup_start_factor == 0.01f);
  CHECK(c.unit == ScheduleUnit::kStep);

  c = parse_schedule("constant+per-step+warmup:2");  // modifiers in any order
  CHECK(c.unit == ScheduleUnit::kStep);
  CHECK(c.warmup_epochs == 2);
}

TEST_CASE("parse_schedule / to_string round trip") {
  for (const char* spec :
       {"constant", "cosine", "cosine:0.001", "multistep:100,150:0.1",
        "multistep:5:0.5+warmup:1:0.25", "cosine+warmup:5:0.1+per-step", "constant+warmup:2:0"}) {
    INFO(spec);
    const ScheduleConfig c = parse_schedule(spec);
    CHECK(to_string(c) == spec);
    CHECK(parse_schedule(to_string(c)) == c);
  }
  // Defaults are written out: the canonical form names gamma and the start factor.
  CHECK(to_string(parse_schedule("multistep:10")) == "multistep:10:0.1");
  CHECK(to_string(parse_schedule("cosine+warmup:5")) == "cosine+warmup:5:0.1");
}

TEST_CASE(
    "parse_schedule: anything else is an Error naming the fault and listing the valid forms") {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "unknown schedule ''"},
      {"linear", "unknown schedule 'linear'"},
      {"Cosine", "unknown schedule 'Cosine'"},
      {"cosine:", "expected a number (cosine floor), found ''"},
      {"cosine:abc", "found 'abc'"},
      {"cosine:1:2", "at most one argument"},
      {"cosine:-0.1", "floor must be >= 0"},
      {"multistep", "needs milestones"},
      {"multistep:", "expected an integer (milestone epoch)"},
      {"multistep:100,,150", "found ''"},
      {"multistep:150,100", "strictly increasing"},
      {"multistep:0,5", "strictly increasing"},
      {"multistep:10:0", "gamma must be > 0"},
      {"multistep:10:0.1:3", "needs milestones and optionally a gamma"},
      {"constant:3", "takes no arguments"},
      {"cosine+warmup", "needs EPOCHS"},
      {"cosine+warmup:0", "warm-up epochs must be >= 1"},
      {"cosine+warmup:2.5", "expected an integer (warm-up epochs)"},
      {"cosine+warmup:2:1.5", "start factor must be in [0, 1]"},
      {"cosine+warmup:2+warmup:3", "'warmup' given twice"},
      {"cosine+per-step+per-step", "'per-step' given twice"},
      {"cosine+", "unknown modifier ''"},
      {"cosine+cooldown:3", "unknown modifier 'cooldown:3'"},
      {"cosine +warmup:5", "unknown schedule 'cosine '"},
  };
  for (const auto& [spec, fault] : bad) {
    INFO(spec);
    const std::string msg = test::error_message([&] { parse_schedule(spec); });
    CHECK(msg.find("schedule '" + spec + "'") != std::string::npos);
    CHECK(msg.find(fault) != std::string::npos);
    CHECK(msg.find("valid forms: constant | cosine[:FLOOR] | multistep:M1,M2,...[:GAMMA]") !=
          std::string::npos);
  }
}

TEST_CASE("Schedule: values at chosen points") {
  // Multi-step at absolute epochs, per epoch (the default): constant within an epoch.
  const Schedule ms(parse_schedule("multistep:3,5:0.5"), 0.8f, 8);
  CHECK(ms.lr(0) == 0.8f);
  CHECK(ms.lr(2, 9, 10) == 0.8f);
  CHECK(ms.lr(3) == 0.4f);
  CHECK(ms.lr(4) == 0.4f);
  CHECK(ms.lr(5) == 0.2f);
  CHECK(ms.lr(100) == 0.2f);

  // Warm-up over 2 epochs from 0.1 * lr, then the multistep at absolute epochs.
  const Schedule wms(parse_schedule("multistep:3:0.5+warmup:2"), 1.0f, 8);
  CHECK(wms.lr(0) == Approx(0.1f));
  CHECK(wms.lr(1) == Approx(0.55f));
  CHECK(wms.lr(1, 3, 4) == Approx(0.55f));  // per epoch: the step is ignored
  CHECK(wms.lr(2) == 1.0f);
  CHECK(wms.lr(3) == 0.5f);

  // Per step: the warm-up ramps inside epochs, reaching lr exactly at the warm-up's end.
  const Schedule wps(parse_schedule("constant+warmup:2:0+per-step"), 1.0f, 4);
  CHECK(wps.lr(0, 0, 4) == 0.0f);
  CHECK(wps.lr(0, 2, 4) == Approx(0.25f));
  CHECK(wps.lr(1, 1, 4) == Approx(0.625f));
  CHECK(wps.lr(2, 0, 4) == 1.0f);

  // Cosine: lr at the start, halfway at the middle, the floor at and past the end.
  const Schedule cos(parse_schedule("cosine:0.01"), 0.11f, 10);
  CHECK(cos.lr(0) == 0.11f);
  CHECK(cos.lr(5) == Approx(0.06f));
  CHECK(cos.lr(10) == Approx(0.01f));
  CHECK(cos.lr(25) == Approx(0.01f));
  // Per step lies between the per-epoch values of its neighbours.
  const Schedule cos_step(parse_schedule("cosine:0.01+per-step"), 0.11f, 10);
  CHECK(cos_step.lr(5, 0, 8) == cos.lr(5));
  CHECK(cos_step.lr(5, 4, 8) < cos.lr(5));
  CHECK(cos_step.lr(5, 4, 8) > cos.lr(6));
  CHECK(cos_step.lr(5, 4, 8) == Approx(0.01 + 0.05 * (1 + std::cos(std::numbers::pi * 0.55))));

  // With a warm-up, the cosine anneals over the remaining epochs.
  const Schedule wcos(parse_schedule("cosine+warmup:2"), 1.0f, 6);
  CHECK(wcos.lr(2) == 1.0f);
  CHECK(wcos.lr(4) == Approx(0.5f));
  CHECK(wcos.lr(6) == Approx(0.0f).margin(1e-7));

  CHECK(Schedule(ScheduleConfig{}, 0.3f, 1).lr(7, 3, 5) == 0.3f);
}

TEST_CASE("Schedule: bad arguments are refused") {
  const ScheduleConfig cosine = parse_schedule("cosine+warmup:5");
  std::string msg = test::error_message([&] { Schedule(cosine, 0.1f, 5); });
  CHECK(msg.find("expected warm-up epochs < total epochs (5)") != std::string::npos);
  CHECK(msg.find("Schedule(cosine+warmup:5:0.1)") != std::string::npos);
  CHECK_NOTHROW(Schedule(parse_schedule("constant+warmup:5"), 0.1f, 5));
  CHECK_THROWS_AS(Schedule(ScheduleConfig{}, -0.1f, 5), bitgrad::Error);
  CHECK_THROWS_AS(Schedule(ScheduleConfig{}, 0.1f, 0), bitgrad::Error);
  ScheduleConfig bad_milestones = parse_schedule("multistep:5");
  bad_milestones.milestones = {5, 5};
  CHECK_THROWS_AS(Schedule(bad_milestones, 0.1f, 10), bitgrad::Error);
  ScheduleConfig bad_gamma = parse_schedule("multistep:5");
  bad_gamma.gamma = 0.0f;
  CHECK_THROWS_AS(Schedule(bad_gamma, 0.1f, 10), bitgrad::Error);

  const Schedule s(ScheduleConfig{}, 0.1f, 5);
  msg = test::error_message([&] { s.lr(1, 4, 4); });
  CHECK(msg.find("got epoch 1, step 4 of 4") != std::string::npos);
  CHECK_THROWS_AS(s.lr(-1), bitgrad::Error);
  CHECK_THROWS_AS(s.lr(0, 0, 0), bitgrad::Error);
  CHECK_THROWS_AS(s.lr(0, -1, 4), bitgrad::Error);
}

TEST_CASE("Schedule: lr sequences match torch.optim.lr_scheduler (golden)", "[golden]") {
  const core::SafetensorsFile f =
      core::read_safetensors(std::string(BITGRAD_GOLDEN_DIR) + "/optim.safetensors");
  const float base_lr = std::stof(f.metadata.at("base_lr"));
  const std::string cases = f.metadata.at("sched_cases");
  size_t checked = 0;
  for (size_t start = 0; start < cases.size();) {
    size_t end = cases.find(' ', start);
    if (end == std::string::npos) end = cases.size();
    const std::string key = cases.substr(start, end - start);
    start = end + 1;
    // Metadata: "<spec> epochs=<E> steps_per_epoch=<S>".
    const std::string desc = f.metadata.at("sched." + key);
    const std::string spec = desc.substr(0, desc.find(' '));
    const int64_t epochs = std::stoll(desc.substr(desc.find("epochs=") + 7));
    const int64_t spe = std::stoll(desc.substr(desc.find("steps_per_epoch=") + 16));
    const std::vector<float> ref = f.tensor("sched." + key).to_vector();
    INFO(key << ": " << desc);
    REQUIRE(ref.size() == static_cast<size_t>(epochs * spe));
    const Schedule schedule(parse_schedule(spec), base_lr, epochs);
    CHECK((spe == 1) == (schedule.config().unit == ScheduleUnit::kEpoch));
    double worst = 0;
    for (int64_t e = 0; e < epochs; ++e)
      for (int64_t s = 0; s < spe; ++s) {
        const double want = ref[static_cast<size_t>(e * spe + s)];
        const double got = schedule.lr(e, s, spe);
        worst = std::max(worst, std::abs(got - want) / want);
      }
    INFO("worst relative error " << worst);
    CHECK(worst <= 1e-6);
    ++checked;
  }
  CHECK(checked == 10);
}

}  // namespace
}  // namespace bitgrad::nn
