// schedule.cpp: schedule parsing, printing and evaluation. Values are computed in double and
// rounded to float once, so they match PyTorch's (double) schedulers to float precision.
#include "nn/schedule.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <system_error>

#include "core/error.hpp"

namespace bitgrad::nn {

namespace {

constexpr std::string_view kValidForms =
    "valid forms: constant | cosine[:FLOOR] | multistep:M1,M2,...[:GAMMA], each optionally "
    "followed "
    "by +warmup:EPOCHS[:START_FACTOR] and/or +per-step (e.g. cosine+warmup:5, "
    "multistep:100,150:0.2)";

[[noreturn]] void fail(std::string_view spec, const std::string& why) {
  throw Error("schedule '" + std::string(spec) + "': " + why + "; " + std::string(kValidForms));
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

int64_t parse_int(std::string_view spec, std::string_view token, std::string_view what) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (token.empty() || ec != std::errc() || end != token.data() + token.size())
    fail(spec, "expected an integer " + std::string(what) + ", found '" + std::string(token) + "'");
  return value;
}

float parse_float(std::string_view spec, std::string_view token, std::string_view what) {
  float value = 0.0f;
  const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (token.empty() || ec != std::errc() || end != token.data() + token.size() ||
      !std::isfinite(value))
    fail(spec, "expected a number " + std::string(what) + ", found '" + std::string(token) + "'");
  return value;
}

std::string float_text(float v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  (void)ec;  // 64 characters always suffice for the shortest round-trip form of a float
  return std::string(buf, end);
}

}  // namespace

ScheduleConfig parse_schedule(std::string_view spec) {
  ScheduleConfig c;
  const std::vector<std::string_view> parts = split(spec, '+');
  const std::vector<std::string_view> main = split(parts[0], ':');
  if (main[0] == "constant") {
    c.kind = ScheduleKind::kConstant;
    if (main.size() != 1) fail(spec, "'constant' takes no arguments");
  } else if (main[0] == "cosine") {
    c.kind = ScheduleKind::kCosine;
    if (main.size() > 2) fail(spec, "'cosine' takes at most one argument (the floor)");
    if (main.size() == 2) c.min_lr = parse_float(spec, main[1], "(cosine floor)");
  } else if (main[0] == "multistep") {
    c.kind = ScheduleKind::kMultiStep;
    if (main.size() < 2 || main.size() > 3)
      fail(spec, "'multistep' needs milestones and optionally a gamma");
    for (std::string_view m : split(main[1], ','))
      c.milestones.push_back(parse_int(spec, m, "(milestone epoch)"));
    if (main.size() == 3) c.gamma = parse_float(spec, main[2], "(gamma)");
  } else {
    fail(spec, "unknown schedule '" + std::string(main[0]) + "'");
  }
  bool seen_warmup = false, seen_per_step = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::vector<std::string_view> mod = split(parts[i], ':');
    if (mod[0] == "warmup") {
      if (seen_warmup) fail(spec, "'warmup' given twice");
      seen_warmup = true;
      if (mod.size() < 2 || mod.size() > 3)
        fail(spec, "'warmup' needs EPOCHS and optionally a START_FACTOR");
      c.warmup_epochs = parse_int(spec, mod[1], "(warm-up epochs)");
      if (mod.size() == 3)
        c.warmup_start_factor = parse_float(spec, mod[2], "(warm-up start factor)");
    } else if (mod[0] == "per-step" && mod.size() == 1) {
      if (seen_per_step) fail(spec, "'per-step' given twice");
      seen_per_step = true;
      c.unit = ScheduleUnit::kStep;
    } else {
      fail(spec, "unknown modifier '" + std::string(parts[i]) + "'");
    }
  }
  for (size_t i = 0; i < c.milestones.size(); ++i)
    if (c.milestones[i] < 1 || (i > 0 && c.milestones[i] <= c.milestones[i - 1]))
      fail(spec, "milestones must be >= 1 and strictly increasing");
  if (c.kind == ScheduleKind::kMultiStep && !(c.gamma > 0.0f)) fail(spec, "gamma must be > 0");
  if (c.min_lr < 0.0f) fail(spec, "the cosine floor must be >= 0");
  if (seen_warmup && c.warmup_epochs < 1) fail(spec, "warm-up epochs must be >= 1");
  if (c.warmup_start_factor < 0.0f || c.warmup_start_factor > 1.0f)
    fail(spec, "the warm-up start factor must be in [0, 1]");
  return c;
}

std::string to_string(const ScheduleConfig& config) {
  std::string s;
  switch (config.kind) {
    case ScheduleKind::kConstant:
      s = "constant";
      break;
    case ScheduleKind::kCosine:
      s = "cosine";
      if (config.min_lr != 0.0f) s += ":" + float_text(config.min_lr);
      break;
    case ScheduleKind::kMultiStep:
      s = "multistep:";
      for (size_t i = 0; i < config.milestones.size(); ++i)
        s += (i ? "," : "") + std::to_string(config.milestones[i]);
      s += ":" + float_text(config.gamma);
      break;
  }
  if (config.warmup_epochs > 0)
    s += "+warmup:" + std::to_string(config.warmup_epochs) + ":" +
         float_text(config.warmup_start_factor);
  if (config.unit == ScheduleUnit::kStep) s += "+per-step";
  return s;
}

Schedule::Schedule(const ScheduleConfig& config, float base_lr, int64_t total_epochs)
    : config_(config), base_lr_(base_lr), total_epochs_(total_epochs) {
  const std::string what = "Schedule(" + to_string(config) + "): ";
  check_lazy(std::isfinite(base_lr) && base_lr >= 0.0f, [&] {
    return what + "expected a finite base lr >= 0, got " + std::to_string(base_lr);
  });
  check_lazy(total_epochs >= 1, [&] {
    return what + "expected total epochs >= 1, got " + std::to_string(total_epochs);
  });
  check_lazy(std::isfinite(config.min_lr) && config.min_lr >= 0.0f,
             [&] { return what + "expected a floor >= 0, got " + std::to_string(config.min_lr); });
  check_lazy(std::isfinite(config.gamma) && config.gamma > 0.0f,
             [&] { return what + "expected gamma > 0, got " + std::to_string(config.gamma); });
  for (size_t i = 0; i < config.milestones.size(); ++i)
    check_lazy(
        config.milestones[i] >= 1 && (i == 0 || config.milestones[i] > config.milestones[i - 1]),
        [&] { return what + "expected milestones >= 1 and strictly increasing"; });
  check_lazy(config.warmup_epochs >= 0, [&] {
    return what + "expected warm-up epochs >= 0, got " + std::to_string(config.warmup_epochs);
  });
  check_lazy(config.warmup_start_factor >= 0.0f && config.warmup_start_factor <= 1.0f, [&] {
    return what + "expected a warm-up start factor in [0, 1], got " +
           std::to_string(config.warmup_start_factor);
  });
  check_lazy(config.kind != ScheduleKind::kCosine || config.warmup_epochs < total_epochs, [&] {
    return what + "expected warm-up epochs < total epochs (" + std::to_string(total_epochs) +
           ") so that the cosine has epochs left, got " + std::to_string(config.warmup_epochs);
  });
}

float Schedule::lr(int64_t epoch, int64_t step_in_epoch, int64_t steps_per_epoch) const {
  check_lazy(
      epoch >= 0 && steps_per_epoch >= 1 && step_in_epoch >= 0 && step_in_epoch < steps_per_epoch,
      [&] {
        return "Schedule::lr: expected epoch >= 0 and 0 <= step_in_epoch < steps_per_epoch, got "
               "epoch " +
               std::to_string(epoch) + ", step " + std::to_string(step_in_epoch) + " of " +
               std::to_string(steps_per_epoch);
      });
  double t = static_cast<double>(epoch);
  if (config_.unit == ScheduleUnit::kStep)
    t += static_cast<double>(step_in_epoch) / static_cast<double>(steps_per_epoch);
  const double base = base_lr_;
  const auto warmup = static_cast<double>(config_.warmup_epochs);
  if (t < warmup) {
    const double s = config_.warmup_start_factor;
    return static_cast<float>(base * (s + (1.0 - s) * t / warmup));
  }
  switch (config_.kind) {
    case ScheduleKind::kConstant:
      return base_lr_;
    case ScheduleKind::kMultiStep: {
      double lr = base;
      for (int64_t m : config_.milestones)
        if (m <= epoch) lr *= static_cast<double>(config_.gamma);
      return static_cast<float>(lr);
    }
    case ScheduleKind::kCosine: {
      const double span = static_cast<double>(total_epochs_) - warmup;
      const double p = std::min(1.0, (t - warmup) / span);
      const double floor = config_.min_lr;
      return static_cast<float>(floor +
                                (base - floor) * (1.0 + std::cos(std::numbers::pi * p)) / 2.0);
    }
  }
  return base_lr_;  // unreachable: every kind is handled above
}

}  // namespace bitgrad::nn
