// deploy_report.cpp: see deploy_report.hpp.
#include "apps/deploy_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "core/error.hpp"

namespace bitgrad::apps {

namespace {

using core::Json;

// "(n, y, x, c)" of element i of an NHWC tensor with the spec's output (or input) geometry.
std::string position(int64_t i, int64_t h, int64_t w, int64_t c) {
  const int64_t ch = i % c, x = (i / c) % w, y = (i / (c * w)) % h;
  return "y " + std::to_string(y) + ", x " + std::to_string(x) + ", channel " + std::to_string(ch);
}

// Index of NCHW element i in NHWC order.
int64_t nhwc_index(const core::Shape& nchw, int64_t i) {
  const int64_t c = nchw[1], h = nchw[2], w = nchw[3];
  const int64_t x = i % w, y = (i / w) % h, ch = (i / (w * h)) % c, n = i / (w * h * c);
  return ((n * h + y) * w + x) * c + ch;
}

}  // namespace

int policy_bits(const kernels::PackedResNet& m, const char* key, int fallback) {
  const Json* p = m.source.find("policy");
  if (p == nullptr || !p->is_object()) return fallback;
  const Json* v = p->find(key);
  return v != nullptr && v->is_number() ? static_cast<int>(v->as_number()) : fallback;
}

std::string policy_text(const kernels::PackedResNet& m, const char* key) {
  const Json* p = m.source.find("policy");
  if (p == nullptr || !p->is_object()) return "?";
  const Json* v = p->find(key);
  return v != nullptr && v->is_string() ? v->as_string() : "?";
}

Json size_report(const kernels::PackedResNet& m, const std::string& path) {
  const int wbits = policy_bits(m, "weight_bits", 2), abits = policy_bits(m, "act_bits", 2);
  const std::string edge = policy_text(m, "edge");
  const int edge_wbits = edge == "int8" ? 8 : edge == "same" ? wbits : 32;
  int64_t trunk_macs = 0, trunk_weights = 0, bn_channels = m.stem_weight.dim(0);
  for (const kernels::PackedBlock& b : m.blocks)
    for (const kernels::PackedConv* c : {&b.conv1, &b.conv2}) {
      trunk_macs += c->spec.macs();
      trunk_weights += c->spec.weight_elements();
      bn_channels += c->spec.out_channels;
    }
  const int64_t stem_macs = m.stem_weight.numel() * m.height * m.width;
  const int64_t fc_macs = m.fc_weight.numel();
  const int64_t fp32_params = trunk_weights + m.stem_weight.numel() + m.fc_weight.numel() + m.num_classes;
  const int64_t fp32_bytes = 4 * (fp32_params + 4 * bn_channels);
  std::error_code ec;
  const auto file_bytes = static_cast<int64_t>(std::filesystem::file_size(path, ec));
  const double bops = static_cast<double>(trunk_macs) * wbits * abits +
                      static_cast<double>(stem_macs + fc_macs) * edge_wbits * 32.0;
  const double fp32_bops = static_cast<double>(trunk_macs + stem_macs + fc_macs) * 32.0 * 32.0;
  Json j = Json::object();
  j.set("model", "resnet" + std::to_string(m.depth)).set("method", policy_text(m, "method"));
  j.set("weight_bits", wbits).set("act_bits", abits).set("edge", edge);
  j.set("file_bytes", ec ? int64_t{-1} : file_bytes);
  j.set("packed_weight_bytes", m.packed_weight_bytes());
  j.set("fp32_bytes", fp32_bytes);
  j.set("compression", ec ? 0.0 : static_cast<double>(fp32_bytes) / static_cast<double>(file_bytes));
  j.set("macs_per_image", m.macs_per_image());
  j.set("bops_per_image", bops).set("fp32_bops_per_image", fp32_bops).set("bops_reduction", fp32_bops / bops);
  return j;
}

void print_size_report(const Json& r) {
  const auto mib = [](double b) { return b / (1024.0 * 1024.0); };
  std::printf("model: %s, %s W%lldA%lld (first/last layer weights: %s)\n", r.find("model")->as_string().c_str(),
              r.find("method")->as_string().c_str(), static_cast<long long>(r.find("weight_bits")->as_int64()),
              static_cast<long long>(r.find("act_bits")->as_int64()), r.find("edge")->as_string().c_str());
  const double file = r.find("file_bytes")->as_number(), weights = r.find("packed_weight_bytes")->as_number(),
               fp32 = r.find("fp32_bytes")->as_number();
  std::printf("size:  packed file %.0f B (%.3f MiB), of which packed trunk weights %.0f B (%.3f MiB); FP32 "
              "%.0f B (%.3f MiB): %.1fx smaller\n",
              file, mib(file), weights, mib(weights), fp32, mib(fp32), fp32 / file);
  std::printf("BOPs:  %.3g per image vs %.3g for FP32 (%.1fx fewer; %.3g MACs)\n",
              r.find("bops_per_image")->as_number(), r.find("fp32_bops_per_image")->as_number(),
              r.find("bops_reduction")->as_number(), r.find("macs_per_image")->as_number());
}

VerifyReport::VerifyReport(const kernels::PackedResNet& model) {
  for (const kernels::PackedBlock& b : model.blocks)
    for (const kernels::PackedConv* c : {&b.conv1, &b.conv2}) layers_.push_back({c->name});
}

void VerifyReport::add_batch(const std::vector<nn::IntegerTraceEntry>& qat, const core::Tensor& qat_logits,
                             const std::vector<kernels::LayerTrace>& packed, const core::Tensor& packed_logits,
                             const std::vector<int64_t>& indices) {
  check_lazy(qat.size() == layers_.size() && packed.size() == layers_.size(), [&] {
    return "verify: expected " + std::to_string(layers_.size()) + " quantized layers on both sides, the QAT model "
           "ran " + std::to_string(qat.size()) + " on its integer path and the packed model " +
           std::to_string(packed.size()) + " (a layer of the QAT model has no integer form?)";
  });
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = layers_[l];
    const kernels::LayerTrace& p = packed[l];
    const core::Tensor& qin = qat[l].input;
    const core::Tensor& qacc = qat[l].acc;
    check_lazy(static_cast<size_t>(qin.numel()) == p.input_codes.size() &&
                   static_cast<size_t>(qacc.numel()) == p.acc.size(),
               [&] {
                 return "verify: " + layer.name + ": the QAT layer has input " + qin.shape().to_string() +
                        " and output " + qacc.shape().to_string() + ", the packed layer " + p.spec.describe();
               });
    const int zp = p.spec.pad_code;
    auto note = [&](const char* what, int64_t i_nchw, const core::Shape& shape, double qv, double pv) {
      if (diverged_) return;
      diverged_ = true;
      const int64_t n = i_nchw / (shape[1] * shape[2] * shape[3]);
      first_divergence_ = layer.name + " " + what + ", image " + std::to_string(indices[static_cast<size_t>(n)]) +
                          ", " + position(nhwc_index(shape, i_nchw), shape[2], shape[3], shape[1]) + ": QAT " +
                          std::to_string(static_cast<int64_t>(qv)) + ", packed " +
                          std::to_string(static_cast<int64_t>(pv));
    };
    for (int64_t i = 0; i < qin.numel(); ++i) {
      const double pv = p.input_codes[static_cast<size_t>(nhwc_index(qin.shape(), i))] - zp;
      if (pv != qin.data()[i]) {
        ++layer.code_mismatches;
        note("input codes (code - zero point)", i, qin.shape(), qin.data()[i], pv);
      }
    }
    for (int64_t i = 0; i < qacc.numel(); ++i) {
      const double pv = p.acc[static_cast<size_t>(nhwc_index(qacc.shape(), i))];
      if (pv != qacc.data()[i]) {
        ++layer.acc_mismatches;
        note("accumulators", i, qacc.shape(), qacc.data()[i], pv);
      }
    }
    layer.codes += qin.numel();
    layer.accs += qacc.numel();
  }
  const int64_t n = qat_logits.dim(0), k = qat_logits.dim(1);
  for (int64_t r = 0; r < n; ++r) {
    const float* a = qat_logits.data() + r * k;
    const float* b = packed_logits.data() + r * k;
    const int64_t pa = std::max_element(a, a + k) - a, pb = std::max_element(b, b + k) - b;
    if (pa == pb) {
      ++agree_;
    } else if (disagreements_.size() < 20) {
      disagreements_.push_back(indices[static_cast<size_t>(r)]);
    }
    for (int64_t c = 0; c < k; ++c) max_logit_diff_ = std::max(max_logit_diff_, std::fabs(double{a[c]} - b[c]));
  }
  images_ += n;
}

bool VerifyReport::exact() const { return !diverged_; }

Json VerifyReport::print() const {
  std::printf("%-16s %-36s %22s %22s\n", "layer", "packed kernel", "input codes exact", "accumulators exact");
  Json layers = Json::array();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    const std::string kernel = l < kernels_.size() ? kernels_[l] : "";
    auto cell = [](int64_t total, int64_t bad) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%lld/%lld", static_cast<long long>(total - bad), static_cast<long long>(total));
      return std::string(buf);
    };
    std::printf("%-16s %-36s %22s %22s%s\n", L.name.c_str(), kernel.c_str(), cell(L.codes, L.code_mismatches).c_str(),
                cell(L.accs, L.acc_mismatches).c_str(), L.code_mismatches + L.acc_mismatches > 0 ? "  DIFFERS" : "");
    Json j = Json::object();
    j.set("name", L.name).set("kernel", kernel).set("codes", L.codes).set("code_mismatches", L.code_mismatches);
    j.set("accumulators", L.accs).set("acc_mismatches", L.acc_mismatches);
    layers.push_back(std::move(j));
  }
  std::printf("%s\n", diverged_ ? ("first divergence: " + first_divergence_).c_str()
                                 : "every input code and accumulator of every quantized layer matches exactly");
  std::printf("top-1 agreement: %lld/%lld images (%.3f%%), largest |logit difference| %.3g\n",
              static_cast<long long>(agree_), static_cast<long long>(images_),
              images_ > 0 ? 100.0 * static_cast<double>(agree_) / static_cast<double>(images_) : 0.0,
              max_logit_diff_);
  Json dis = Json::array();
  for (const int64_t i : disagreements_) dis.push_back(i);
  if (!disagreements_.empty()) {
    std::printf("images whose top-1 differs (first %zu):", disagreements_.size());
    for (const int64_t i : disagreements_) std::printf(" %lld", static_cast<long long>(i));
    std::printf("\n");
  }
  Json j = Json::object();
  j.set("exact", !diverged_).set("first_divergence", first_divergence_).set("images", images_);
  j.set("top1_agreement", images_ > 0 ? static_cast<double>(agree_) / static_cast<double>(images_) : 0.0);
  j.set("max_logit_difference", max_logit_diff_).set("disagreements", dis).set("layers", layers);
  return j;
}

}  // namespace bitgrad::apps
