// distiller.cpp: the distillation options and methods of bitgrad train / distill
// (apps/distiller.hpp).
#include "apps/distiller.hpp"

#include <cstdio>
#include <filesystem>
#include <utility>

#include "apps/commands.hpp"
#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "distill/kd.hpp"

namespace bitgrad::apps {

using autograd::Variable;
using core::Json;
using core::Tensor;

namespace {

// Every option declared here, for "only meaningful with --method".
constexpr const char* kOptions[] = {"teacher",       "loss",
                                    "temperature",   "tau",
                                    "ce-weight",     "kd-weight",
                                    "anchor-weight", "anchor-bits",
                                    "qkd-epochs",    "teacher-lr-scale",
                                    "ta-bits",       "ta"};

// "S,C" -> {S, C}; Error naming --qkd-epochs.
std::pair<int64_t, int64_t> parse_qkd_epochs(const std::string& text, int64_t epochs) {
  const size_t comma = text.find(',');
  int64_t s = -1, c = -1;
  try {
    if (comma != std::string::npos) {
      size_t used_s = 0, used_c = 0;
      s = std::stoll(text.substr(0, comma), &used_s);
      c = std::stoll(text.substr(comma + 1), &used_c);
      if (used_s != comma || used_c != text.size() - comma - 1) s = c = -1;
    }
  } catch (const std::exception&) {
    s = c = -1;
  }
  check_lazy(s >= 0 && c >= 0 && s + c <= epochs, [&] {
    return "--qkd-epochs: expected S,C (self-studying and co-studying epochs, S + C <= --epochs " +
           std::to_string(epochs) + "; tutoring takes the rest), got '" + text + "'";
  });
  return {s, c};
}

}  // namespace

void declare_distill_options(Args& args) {
  args.option("teacher", "", "FILE",
              "distillation: the teacher model (any saved ResNet of the same classes)")
      .option("method", "", "NAME",
              "distillation: kd | qkd | va-qkd | takd (see bitgrad distill --help)")
      .option("loss", "logit", "NAME",
              "distillation distance: logit (KD on logits) | feature (MSE on the "
              "stage outputs) | contrastive (InfoNCE on the pooled embeddings)")
      .option("temperature", "4", "T", "logit KD temperature (KD terms scaled by T^2)")
      .option("tau", "0.1", "TAU", "contrastive temperature")
      .option("ce-weight", "1", "W", "distillation: weight of the cross-entropy on the labels")
      .option("kd-weight", "1", "W", "distillation: weight of D(student, teacher)")
      .option("anchor-weight", "1", "W", "va-qkd: weight of D(student, virtual anchor)")
      .option("anchor-bits", "2", "B", "va-qkd: bits b of the virtual anchor Q(teacher, b)")
      .option("qkd-epochs", "", "S,C",
              "qkd: self-studying and co-studying epochs, tutoring the rest "
              "(default: a third of --epochs each, rounded down)")
      .option("teacher-lr-scale", "0.1", "F",
              "qkd: the co-studying teacher's lr = F x the student's")
      .option("ta-bits", "4", "B", "takd: weight and activation bits of the teacher assistant")
      .option("ta", "", "FILE", "takd: use this trained teacher assistant instead of training one");
}

std::unique_ptr<Distiller> Distiller::from_args(const Args& args, const ModelSpec& spec,
                                                int64_t epochs, float weight_decay,
                                                const std::string& assistant) {
  const std::string method = args.str("method");
  if (method.empty()) {
    for (const char* name : kOptions)
      check_lazy(!args.given(name), [&] {
        return std::string("--") + name +
               ": only meaningful with --method kd|qkd|va-qkd|takd (distillation)";
      });
    return nullptr;
  }
  check_lazy(method == "kd" || method == "qkd" || method == "va-qkd" || method == "takd",
             [&] { return "--method: expected kd, qkd, va-qkd or takd, got '" + method + "'"; });
  check(!args.str("teacher").empty(),
        "--method " + method + ": expected --teacher FILE (the teacher model)");
  const auto only = [&](const char* name, const std::string& for_method) {
    check_lazy(method == for_method || !args.given(name), [&] {
      return std::string("--") + name + ": only meaningful with --method " + for_method;
    });
  };
  only("anchor-weight", "va-qkd");
  only("anchor-bits", "va-qkd");
  only("qkd-epochs", "qkd");
  only("teacher-lr-scale", "qkd");
  only("ta-bits", "takd");
  only("ta", "takd");
  check(method != "qkd" || args.str("resume").empty(),
        "--resume: not supported with --method qkd (the co-studied teacher is not saved in the "
        "checkpoint)");

  auto d = std::unique_ptr<Distiller>(new Distiller());
  d->method_ = method;
  d->teacher_path_ = args.str("teacher");
  d->assistant_path_ = assistant;
  const std::string source = method == "takd" ? assistant : d->teacher_path_;
  LoadedModel loaded = load_trained_model(source);
  check_lazy(loaded.spec.classes == spec.classes && loaded.spec.channels == spec.channels, [&] {
    return "--teacher '" + source + "': expected a model of " + std::to_string(spec.classes) +
           " classes on " + std::to_string(spec.channels) + "-channel images, found " +
           std::to_string(loaded.spec.classes) + " classes, " +
           std::to_string(loaded.spec.channels) + " channels";
  });
  const bool quantized_teacher = loaded.policy.has_value();
  d->teacher_ = std::move(loaded.model);
  d->teacher_->eval();
  d->config_.loss = distill::parse_distill_loss(args.str("loss"));
  d->config_.temperature = static_cast<float>(args.number("temperature", 1e-3, 1e3));
  d->config_.tau = static_cast<float>(args.number("tau", 1e-3, 1e3));
  d->config_.ce = static_cast<float>(args.number("ce-weight", 0.0, 1e6));
  d->config_.kd = static_cast<float>(args.number("kd-weight", 0.0, 1e6));
  d->config_.anchor =
      method == "va-qkd" ? static_cast<float>(args.number("anchor-weight", 0.0, 1e6)) : 0.0f;
  d->config_.anchor_bits = static_cast<int>(args.integer("anchor-bits", 1, 8));
  d->teacher_taps_ = distill::distill_tap_names(d->config_.loss, *d->teacher_);
  if (method == "takd") d->ta_bits_ = static_cast<int>(args.integer("ta-bits", 2, 8));
  if (method == "qkd") {
    const auto [s, c] = args.str("qkd-epochs").empty()
                            ? std::pair<int64_t, int64_t>{epochs / 3, epochs / 3}
                            : parse_qkd_epochs(args.str("qkd-epochs"), epochs);
    d->self_study_epochs_ = s;
    d->co_study_epochs_ = c;
    d->teacher_lr_scale_ = static_cast<float>(args.number("teacher-lr-scale", 0.0, 1e3));
    check(!quantized_teacher || c == 0,
          "--method qkd: co-studying trains the teacher, expected an FP32 teacher");
    // The co-studied teacher: SGD with the student's momentum, Nesterov and weight decay; its lr is
    // set per step.
    d->teacher_optimizer_ = std::make_unique<nn::Sgd>(nn::decay_groups(*d->teacher_, weight_decay),
                                                      nn::SgdOptions{0.0f, 0.9f, 0.0f, true});
  }
  return d;
}

Distiller::Phase Distiller::phase(int64_t epoch) const {
  if (epoch < self_study_epochs_) return Phase::kSelfStudy;
  if (epoch < self_study_epochs_ + co_study_epochs_) return Phase::kCoStudy;
  return Phase::kTutor;
}

std::vector<std::string> Distiller::student_taps(const nn::ResNetCifar& student) const {
  return distill::distill_tap_names(config_.loss, student);
}

Variable Distiller::loss(const Variable& logits, const nn::FeatureTaps& taps,
                         std::span<const int64_t> labels, const Tensor& images, int64_t epoch,
                         float lr) {
  const Phase p = phase(epoch);
  if (p == Phase::kSelfStudy) return autograd::cross_entropy(logits, labels);
  nn::FeatureTaps teacher_taps(teacher_taps_);
  Tensor teacher_logits;
  if (p == Phase::kCoStudy) {
    // Mutual learning: the teacher learns from the labels and the student's softened output.
    teacher_->train();
    const Variable z = teacher_->forward(Variable(images), &teacher_taps);
    const Variable teacher_loss = autograd::cross_entropy(z, labels) +
                                  distill::kd_loss(z, logits.value(), config_.temperature);
    teacher_optimizer_->set_lr(lr * teacher_lr_scale_);
    teacher_optimizer_->zero_grad();
    teacher_loss.backward();
    teacher_optimizer_->step();
    teacher_logits = z.value();
  } else {
    teacher_->eval();
    autograd::NoGradGuard no_grad;
    teacher_logits = teacher_->forward(Variable(images), &teacher_taps).value();
  }
  // Both taps hold exactly the variant's features, in forward (stage) order.
  std::vector<Variable> student_features;
  for (const auto& [name, feature] : taps.entries()) student_features.push_back(feature);
  std::vector<Tensor> teacher_features;
  for (const auto& [name, feature] : teacher_taps.entries())
    teacher_features.push_back(feature.value());
  return distill::distill_loss(logits, student_features, teacher_logits, teacher_features, labels,
                               config_);
}

Json Distiller::recipe() const {
  Json d = Json::object();
  d.set("method", method_)
      .set("teacher", teacher_path_)
      .set("loss", std::string(to_string(config_.loss)));
  d.set("ce_weight", static_cast<double>(config_.ce))
      .set("kd_weight", static_cast<double>(config_.kd));
  if (config_.loss == distill::DistillLoss::kLogit)
    d.set("temperature", static_cast<double>(config_.temperature));
  if (config_.loss == distill::DistillLoss::kContrastive)
    d.set("tau", static_cast<double>(config_.tau));
  if (method_ == "va-qkd")
    d.set("anchor_weight", static_cast<double>(config_.anchor))
        .set("anchor_bits", config_.anchor_bits);
  if (method_ == "qkd") {
    d.set("self_study_epochs", self_study_epochs_).set("co_study_epochs", co_study_epochs_);
    d.set("teacher_lr_scale", static_cast<double>(teacher_lr_scale_));
  }
  if (method_ == "takd") d.set("assistant", assistant_path_).set("assistant_bits", ta_bits_);
  return d;
}

std::string Distiller::describe() const {
  const auto num = [](float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    return std::string(buf);
  };
  const std::string d = config_.loss == distill::DistillLoss::kLogit
                            ? "KD_T" + num(config_.temperature)
                            : std::string(to_string(config_.loss));
  std::string text =
      "distill: " + method_ + " from " + (method_ == "takd" ? assistant_path_ : teacher_path_) +
      ", loss = " + num(config_.ce) + " CE + " + num(config_.kd) + " " + d + "(teacher)";
  if (config_.anchor > 0.0f)
    text += " + " + num(config_.anchor) + " " + d + "(anchor, " +
            std::to_string(config_.anchor_bits) + " bits)";
  if (method_ == "qkd")
    text += "; epochs 1-" + std::to_string(self_study_epochs_) + " self-studying (CE only), then " +
            std::to_string(co_study_epochs_) + " co-studying (teacher lr x" +
            num(teacher_lr_scale_) + "), then tutoring";
  if (method_ == "takd")
    text += " (a " + std::to_string(ta_bits_) + "-bit assistant taught by " + teacher_path_ + ")";
  return text;
}

namespace {

// argv without the named options ("--name value" or "--name=value") and flags ("--name").
std::vector<std::string> without(const std::vector<std::string>& argv,
                                 std::initializer_list<std::string_view> options,
                                 std::initializer_list<std::string_view> flags) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    bool drop = false;
    for (std::string_view f : flags) drop = drop || a == "--" + std::string(f);
    for (std::string_view o : options) {
      const std::string name = "--" + std::string(o);
      if (a == name) {
        drop = true;
        ++i;  // its value
      } else if (a.rfind(name + "=", 0) == 0) {
        drop = true;
      }
    }
    if (!drop) out.push_back(a);
  }
  return out;
}

}  // namespace

std::string prepare_teacher_assistant(const Args& args, const std::vector<std::string>& argv,
                                      const std::string& out) {
  if (args.str("method") != "takd") return "";
  if (!args.str("ta").empty()) return args.str("ta");
  check(args.str("resume").empty(),
        "--resume with --method takd: expected --ta FILE (the assistant the interrupted run "
        "trained, <out>.ta.safetensors)");
  check(!args.str("quant").empty(),
        "--method takd: expected --quant METHOD (the assistant uses the student's quantizer)");
  const std::string bits = std::to_string(args.integer("ta-bits", 2, 8));
  const std::filesystem::path p(out);
  const std::string path = (p.parent_path() / (p.stem().string() + ".ta.safetensors")).string();
  std::vector<std::string> ta_argv = without(
      argv, {"method", "ta-bits", "ta", "out", "wbits", "abits", "stop-after", "resume"}, {"json"});
  for (const std::string& a : {std::string("--method"), std::string("kd"), std::string("--wbits"),
                               bits, std::string("--abits"), bits, std::string("--out"), path})
    ta_argv.push_back(a);
  std::printf("takd: training the %s-bit teacher assistant %s first\n", bits.c_str(), path.c_str());
  std::fflush(stdout);
  check(run_train(ta_argv) == 0, "takd: training the teacher assistant failed");
  return path;
}

}  // namespace bitgrad::apps
