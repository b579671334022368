// speed.cpp: see speed.hpp.
#include "apps/speed.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "apps/deploy_report.hpp"
#include "autograd/ops.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/threads.hpp"
#include "kernels/cpu.hpp"
#include "kernels/runtime/packed_runtime.hpp"
#include "nn/resnet_cifar.hpp"

namespace bitgrad::apps {

namespace {

using core::Json;
using core::Tensor;

// PyTorch's side: the same ResNet (option-A shortcuts) in eval mode under no_grad, timed like ours.
constexpr const char* kPytorchScript = R"PY(
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
depth, cin, h, w, classes, batch, threads, min_time, reps = sys.argv[1:10]
depth, cin, h, w, classes, batch, threads, reps = map(int, (depth, cin, h, w, classes, batch, threads, reps))
min_time = float(min_time)
torch.set_num_threads(threads)
class Block(nn.Module):
    def __init__(self, i, p, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, p, 3, s, 1, bias=False); self.bn1 = nn.BatchNorm2d(p)
        self.conv2 = nn.Conv2d(p, p, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(p)
        self.pad = p // 4 if (s != 1 or i != p) else None
    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        r = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + r)
class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(cin, 16, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(16)
        blocks, i = [], 16
        for s in range(3):
            for b in range(n):
                blocks.append(Block(i, 16 << s, 2 if s > 0 and b == 0 else 1)); i = 16 << s
        self.blocks = nn.Sequential(*blocks); self.linear = nn.Linear(64, classes)
    def forward(self, x):
        out = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))
model = ResNet().eval()
def best(n):
    x = torch.randn(n, cin, h, w)
    with torch.no_grad():
        model(x); model(x)
        rate = 0.0
        for _ in range(reps):
            it, t0 = 0, time.perf_counter()
            while True:
                model(x); it += 1
                el = time.perf_counter() - t0
                if el >= min_time: break
            rate = max(rate, n * it / el)
    return rate
b1 = best(1); bn = best(batch)
print(json.dumps({"version": torch.__version__, "latency_ms": 1000.0 / b1, "images_per_second": bn}))
)PY";

// Runs f repeatedly for at least min_time seconds; returns calls per second.
double rate(const std::function<void()>& f, double min_time) {
  f();  // warm-up (plans, caches)
  int64_t calls = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0.0;
  do {
    f();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < min_time);
  return static_cast<double>(calls) / elapsed;
}

Tensor random_images(core::Rng& rng, int64_t n, const kernels::PackedResNet& m) {
  Tensor x = Tensor::empty(core::Shape{n, m.in_channels, m.height, m.width});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = rng.normal();
  return x;
}

std::optional<SpeedRow> pytorch_row(const kernels::PackedResNet& m, const SpeedOptions& o, int threads,
                                    std::string& note) {
  const char* python = "/usr/bin/python3";
  if (access(python, X_OK) != 0) {
    note = "PyTorch: /usr/bin/python3 not found";
    return std::nullopt;
  }
  const std::filesystem::path script =
      std::filesystem::temp_directory_path() / ("bitgrad-bench-" + std::to_string(getpid()) + ".py");
  {
    std::ofstream f(script);
    f << kPytorchScript;
  }
  const std::string cmd = std::string(python) + " " + script.string() + " " + std::to_string(m.depth) + " " +
                          std::to_string(m.in_channels) + " " + std::to_string(m.height) + " " +
                          std::to_string(m.width) + " " + std::to_string(m.num_classes) + " " +
                          std::to_string(o.batch) + " " + std::to_string(threads) + " " +
                          std::to_string(o.min_time) + " " + std::to_string(o.repetitions) + " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    pclose(p);
  }
  std::filesystem::remove(script);
  const size_t brace = out.rfind('{');
  try {
    if (brace == std::string::npos) throw Error("no JSON");
    const Json j = Json::parse(out.substr(brace));
    SpeedRow row;
    row.engine = "FP32 PyTorch " + j.find("version")->as_string();
    row.tier = "-";
    row.latency_ms = j.find("latency_ms")->as_number();
    row.images_per_second = j.find("images_per_second")->as_number();
    return row;
  } catch (const std::exception&) {
    note = out.find("No module named 'torch'") != std::string::npos
               ? "PyTorch: not installed (scripts/setup.sh --torch installs Debian's python3-torch)"
               : "PyTorch: the timing script failed";
    return std::nullopt;
  }
}

}  // namespace

SpeedTable measure_speed(const kernels::PackedResNet& m, const SpeedOptions& o) {
  SpeedTable table;
  table.batch = o.batch;
  table.threads = core::num_threads();
  core::Rng rng(7);
  const Tensor one = random_images(rng, 1, m), many = random_images(rng, o.batch, m);
  const int wbits = policy_bits(m, "weight_bits", 0), abits = policy_bits(m, "act_bits", 0);
  const std::string method = policy_text(m, "method");
  std::vector<std::unique_ptr<kernels::PackedRuntime>> runtimes;
  for (int t = static_cast<int>(kernels::cpu_tier()); t >= 0; --t) {
    const auto tier = static_cast<kernels::Tier>(t);
    if (tier == kernels::Tier::kScalar && !o.scalar && kernels::cpu_tier() != kernels::Tier::kScalar) continue;
    kernels::RuntimeOptions ro;
    ro.tier = tier;
    runtimes.push_back(std::make_unique<kernels::PackedRuntime>(m, ro));
    SpeedRow row;
    row.engine = "packed W" + std::to_string(wbits) + "A" + std::to_string(abits) + " (" + method + ")";
    row.tier = std::string(kernels::tier_name(tier));
    std::vector<std::string> names;
    for (const std::string& k : runtimes.back()->kernel_names(o.batch))
      if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
    for (const std::string& k : names) row.kernels += (row.kernels.empty() ? "" : ", ") + k;
    table.rows.push_back(row);
  }
  core::Rng init(1);
  nn::ResNetCifar fp32(nn::ResNetCifarConfig{m.depth, m.num_classes, m.in_channels, nn::Shortcut::kA}, init);
  fp32.eval();
  SpeedRow fp32_row;
  fp32_row.engine = "FP32 bitgrad";
  fp32_row.tier = "-";
  table.rows.push_back(fp32_row);
  autograd::NoGradGuard no_grad;
  for (int rep = 0; rep < o.repetitions; ++rep) {
    for (size_t i = 0; i < table.rows.size(); ++i) {
      SpeedRow& row = table.rows[i];
      std::function<void(const Tensor&)> run;
      if (i < runtimes.size()) {
        kernels::PackedRuntime& rt = *runtimes[i];
        run = [&rt](const Tensor& x) { rt.forward(x); };
      } else {
        run = [&fp32](const Tensor& x) { fp32.forward(autograd::Variable(x)); };
      }
      const double lat = 1000.0 / rate([&] { run(one); }, o.min_time);
      const double ips = static_cast<double>(o.batch) * rate([&] { run(many); }, o.min_time);
      row.latency_ms = rep == 0 ? lat : std::min(row.latency_ms, lat);
      row.images_per_second = std::max(row.images_per_second, ips);
    }
  }
  if (o.pytorch) {
    if (auto row = pytorch_row(m, o, table.threads, table.pytorch_note)) table.rows.push_back(*row);
  } else {
    table.pytorch_note = "PyTorch: not measured (--no-pytorch)";
  }
  return table;
}

Json print_speed_table(const SpeedTable& t) {
  const SpeedRow* ours = nullptr;
  const SpeedRow* torch = nullptr;
  for (const SpeedRow& r : t.rows) {
    if (r.engine == "FP32 bitgrad") ours = &r;
    if (r.engine.starts_with("FP32 PyTorch")) torch = &r;
  }
  std::printf("%-26s %-7s %13s %9s %9s %16s %9s %9s\n", "engine", "tier", "batch 1 (ms)", "vs FP32", "vs torch",
              ("batch " + std::to_string(t.batch) + " (img/s)").c_str(), "vs FP32", "vs torch");
  Json rows = Json::array();
  for (const SpeedRow& r : t.rows) {
    auto ratio = [](double a, double b) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2fx", a / b);
      return std::string(buf);
    };
    const std::string l_ours = ours != nullptr ? ratio(ours->latency_ms, r.latency_ms) : "";
    const std::string l_torch = torch != nullptr ? ratio(torch->latency_ms, r.latency_ms) : "";
    const std::string t_ours = ours != nullptr ? ratio(r.images_per_second, ours->images_per_second) : "";
    const std::string t_torch = torch != nullptr ? ratio(r.images_per_second, torch->images_per_second) : "";
    std::printf("%-26s %-7s %13.3f %9s %9s %16.0f %9s %9s\n", r.engine.c_str(), r.tier.c_str(), r.latency_ms,
                l_ours.c_str(), l_torch.c_str(), r.images_per_second, t_ours.c_str(), t_torch.c_str());
    Json j = Json::object();
    j.set("engine", r.engine).set("tier", r.tier).set("kernels", r.kernels);
    j.set("latency_ms", r.latency_ms).set("images_per_second", r.images_per_second);
    if (ours != nullptr) {
      j.set("latency_speedup_vs_fp32", ours->latency_ms / r.latency_ms);
      j.set("throughput_speedup_vs_fp32", r.images_per_second / ours->images_per_second);
    }
    if (torch != nullptr) {
      j.set("latency_speedup_vs_pytorch", torch->latency_ms / r.latency_ms);
      j.set("throughput_speedup_vs_pytorch", r.images_per_second / torch->images_per_second);
    }
    rows.push_back(std::move(j));
  }
  for (const SpeedRow& r : t.rows)
    if (!r.kernels.empty()) std::printf("  %s kernels: %s\n", r.tier.c_str(), r.kernels.c_str());
  if (!t.pytorch_note.empty()) std::printf("  %s\n", t.pytorch_note.c_str());
  std::printf("  %d threads; best of the repetitions per case\n", t.threads);
  Json j = Json::object();
  j.set("batch", t.batch).set("threads", t.threads).set("rows", rows);
  if (!t.pytorch_note.empty()) j.set("pytorch_note", t.pytorch_note);
  return j;
}

}  // namespace bitgrad::apps
