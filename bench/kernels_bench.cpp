// kernels_bench.cpp: the integer convolution kernels of issue 5, driven by the registry (every row
// of conv_kernels() this CPU supports), at ResNet-20's convolution shapes (CIFAR 32x32 input; batch
// 1 and 128) and ResNet-18-style 3x3 layers (batch 1), next to bitgrad's FP32 convolution and, when
// built with oneDNN (Debian libdnnl-dev 2.6), oneDNN's u8 x s8 -> s32 and f32 convolutions on the
// same layer in the same run. Times run(), pack_input() and the threshold epilogue separately;
// checks exactness first. Counters: GMAC per second, MAC/cycle/core at a clock measured at start
// (dependent imul chain), percent of the path's bound (KERNELS.md §2.2), nthreads. Threads:
// BITGRAD_THREADS, else 2, for oneTBB and oneDNN alike. bench/kernels_table.py makes the docs
// table; docs/kernels.md "Benchmarks" has the commands.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_threads.hpp"
#include "core/conv.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"
#include "kernels/conv.hpp"
#include "kernels/cpu.hpp"
#include "kernels/epilogue/threshold.hpp"
#include "kernels/registry.hpp"

#ifdef BITGRAD_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
#include <omp.h>
#endif
#endif

namespace {

namespace bk = bitgrad::kernels;
using bk::ConvKernelRow;
using bk::ConvSpec;
using bk::Family;
using bk::Tier;

// ---- machine: clock and thread count
// ---------------------------------------------------------------

// Core clock from a dependent chain of 64-bit imul (3-cycle latency on Intel P-cores). KERNELS.md
// §1: an add-immediate chain is folded at rename on this core and reports ~15 GHz, so it cannot be
// used. Timed with the thread's CPU-time clock (time descheduled by a busy machine does not count)
// over many short runs, keeping the fastest: the clock while the core runs this thread.
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double measure_clock_ghz() {
  constexpr int64_t kLoops = 250'000;  // x 8 imul = 2M imul = 6M cycles (~2 ms at 3.5 GHz)
  double best = 0.0;
  for (int rep = 0; rep < 40; ++rep) {
    uint64_t x = 3;
    int64_t n = kLoops;
    const double t0 = thread_seconds();
    asm volatile(
        "1:\n\t"
        "imul %[x], %[x]\n\timul %[x], %[x]\n\timul %[x], %[x]\n\timul %[x], %[x]\n\t"
        "imul %[x], %[x]\n\timul %[x], %[x]\n\timul %[x], %[x]\n\timul %[x], %[x]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        : [x] "+r"(x), [n] "+r"(n)
        :
        : "cc");
    const double s = thread_seconds() - t0;
    if (s > 0.0) best = std::max(best, 3.0 * 8.0 * static_cast<double>(kLoops) / s * 1e-9);
  }
  return best;
}

double g_clock_ghz = 0.0;  // set once in main before any benchmark runs
int g_threads = 1;
bool g_verify = true;  // BITGRAD_BENCH_VERIFY=0 skips the exactness checks

// Upper bound of each path in MAC/cycle/core (KERNELS.md §2.2); 0 = none stated.
double kernel_bound(const ConvKernelRow& row) {
  if (row.family == Family::kBitserial) {
    if (row.tier == Tier::kAvx512) return 85.3;  // 4 plane pairs x 3 uops / 512 MACs on p0+p5
    if (row.tier == Tier::kAvx2) return 23.0;    // PSHUFB nibble popcount
  }
  if (row.family == Family::kInt8) {
    if (row.tier == Tier::kAvx512) return 128.0;  // 2 vpdpbusd zmm / cycle
    if (row.tier == Tier::kAvx2) return 64.0;     // maddubs with int16 accumulation
  }
  return 0.0;  // scalar rows and the shift family: no bound in KERNELS.md
}

// FP32 FMA: 2 per cycle x 16 lanes (zmm) or x 8 (ymm).
double fp32_bound() { return bk::cpu_tier() == Tier::kAvx512 ? 32.0 : 16.0; }

// ---- layers
// --------------------------------------------------------------------------------------

struct Layer {
  std::string net;  // "r20" (ResNet-20 on CIFAR 32x32) or "r18" (ResNet-18-style)
  ConvSpec spec;
  std::string id() const {
    const ConvSpec& s = spec;
    return net + "_" + std::to_string(s.kernel) + "x" + std::to_string(s.kernel) + "_" +
           std::to_string(s.in_channels) + "-" + std::to_string(s.out_channels) + "_" +
           std::to_string(s.height) + "x" + std::to_string(s.width) + "_s" +
           std::to_string(s.stride) + "_b" + std::to_string(s.batch);
  }
};

Layer make_layer(const std::string& net, int64_t batch, int64_t hw, int64_t cin, int64_t cout,
                 int64_t kernel, int64_t stride) {
  Layer l;
  l.net = net;
  l.spec.batch = batch;
  l.spec.height = hw;
  l.spec.width = hw;
  l.spec.in_channels = cin;
  l.spec.out_channels = cout;
  l.spec.kernel = kernel;
  l.spec.stride = stride;
  l.spec.pad = kernel / 2;
  l.spec.act_bits = 2;
  l.spec.pad_code = 0;
  return l;
}

std::vector<Layer> layers() {
  std::vector<Layer> out;
  for (int64_t batch : {1, 128}) {
    out.push_back(make_layer("r20", batch, 32, 16, 16, 3, 1));
    out.push_back(make_layer("r20", batch, 32, 16, 32, 3, 2));
    out.push_back(make_layer("r20", batch, 16, 32, 32, 3, 1));
    out.push_back(make_layer("r20", batch, 16, 32, 64, 3, 2));
    out.push_back(make_layer("r20", batch, 8, 64, 64, 3, 1));
    out.push_back(make_layer("r20", batch, 32, 16, 32, 1, 2));  // option-B shortcuts
    out.push_back(make_layer("r20", batch, 16, 32, 64, 1, 2));
  }
  out.push_back(make_layer("r18", 1, 56, 64, 64, 3, 1));
  out.push_back(make_layer("r18", 1, 28, 128, 128, 3, 1));
  out.push_back(make_layer("r18", 1, 14, 256, 256, 3, 1));
  return out;
}

// ---- weights a family accepts
// --------------------------------------------------------------------

// Named integer weight sets; a row gets the first set of its family's list that its rejects()
// accepts.
struct WeightSet {
  const char* name;
  std::vector<int8_t> values;
};

const std::vector<WeightSet>& weight_sets() {
  static const std::vector<WeightSet> sets = {
      {"signed2", {-2, -1, 0, 1}},  // two's-complement 2-bit
      {"ternary", {-1, 0, 1}},
      {"odd2", {-3, -1, 1, 3}},  // odd-symmetric 2-bit
      {"apot4",
       {-10, -8, -6, -4, -3, -2, -1, 0, 1, 2, 3, 4, 6, 8, 10}},  // APoT 4-bit weight lattice
      {"apot3", {-4, -2, -1, 0, 1, 2, 4}},                       // APoT 3-bit weight lattice
  };
  return sets;
}

std::vector<const WeightSet*> preferred_sets(Family family) {
  std::vector<std::string> names;
  switch (family) {
    case Family::kBitserial:
      names = {"signed2", "ternary", "odd2"};
      break;
    case Family::kInt8:
      names = {"signed2", "ternary"};
      break;
    case Family::kShift:
      names = {"apot4", "apot3", "ternary"};
      break;
  }
  std::vector<const WeightSet*> out;
  for (const std::string& n : names)
    for (const WeightSet& s : weight_sets())
      if (n == s.name) out.push_back(&s);
  for (const WeightSet& s : weight_sets())  // then anything else, for families added later
    if (std::find(out.begin(), out.end(), &s) == out.end()) out.push_back(&s);
  return out;
}

// ---- one layer's data, built on first use (benchmarks of a layer run one after the other)
// ---------

struct LayerData {
  std::string id;
  std::vector<uint8_t> act;                               // [N, H, W, C] codes < 4
  std::map<std::string, std::vector<int8_t>> weights;     // [O, k, k, C] per weight set
  std::map<std::string, std::vector<int64_t>> reference;  // conv_codes__ref per weight set
};

LayerData& layer_data(const Layer& layer) {
  static std::unique_ptr<LayerData> current;
  if (!current || current->id != layer.id()) {
    current = std::make_unique<LayerData>();
    current->id = layer.id();
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int> code(0, 3);
    current->act.resize(static_cast<std::size_t>(layer.spec.input_elements()));
    for (uint8_t& a : current->act) a = static_cast<uint8_t>(code(rng));
  }
  return *current;
}

const std::vector<int8_t>& weights_for(const Layer& layer, LayerData& d, const WeightSet& set) {
  auto it = d.weights.find(set.name);
  if (it == d.weights.end()) {
    std::mt19937 rng(99);
    std::uniform_int_distribution<std::size_t> pick(0, set.values.size() - 1);
    std::vector<int8_t> w(static_cast<std::size_t>(layer.spec.weight_elements()));
    for (int8_t& v : w) v = set.values[pick(rng)];
    it = d.weights.emplace(set.name, std::move(w)).first;
  }
  return it->second;
}

const std::vector<int64_t>& reference_for(const Layer& layer, LayerData& d, const WeightSet& set) {
  auto it = d.reference.find(set.name);
  if (it == d.reference.end()) {
    std::vector<int64_t> ref(static_cast<std::size_t>(layer.spec.output_elements()));
    bk::conv_codes__ref(layer.spec, d.act, weights_for(layer, d, set), ref);
    it = d.reference.emplace(set.name, std::move(ref)).first;
  }
  return it->second;
}

// 64-byte aligned bytes (QConv::pack_input's contract).
struct AlignedBytes {
  explicit AlignedBytes(std::size_t n)
      : ptr(static_cast<std::byte*>(
            std::aligned_alloc(64, (std::max<std::size_t>(n, 1) + 63) / 64 * 64))) {}
  ~AlignedBytes() { std::free(ptr); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  std::byte* ptr;
};

// GMAC, MAC/cycle/core and pct_bound are all rate counters over Google Benchmark's own wall-clock
// time (so they agree with each other and with the time column). The console appends "/s" to every
// rate counter: GMAC is per second, MAC/cycle/core and pct_bound are not (the JSON has plain
// numbers). pct_bound and bound only when the path has a bound; nthreads; MMAC per call.
void set_mac_counters(benchmark::State& state, double macs, int threads, double bound) {
  using benchmark::Counter;
  state.counters["GMAC"] = Counter(macs * 1e-9, Counter::kIsIterationInvariantRate);
  const double per_cycle_core = macs / (g_clock_ghz * 1e9 * threads);
  state.counters["MAC/cycle/core"] = Counter(per_cycle_core, Counter::kIsIterationInvariantRate);
  if (bound > 0.0) {
    state.counters["bound"] = bound;
    state.counters["pct_bound"] =
        Counter(100.0 * per_cycle_core / bound, Counter::kIsIterationInvariantRate);
  }
  state.counters["nthreads"] = threads;
  state.counters["MMAC"] = macs * 1e-6;
}

// ---- the registry's kernels: run() and pack_input()
// ----------------------------------------------

// The first weight set of the row's family list it accepts, or nullptr with the reasons in `why`.
const WeightSet* accepted_set(const ConvKernelRow& row, const Layer& layer, LayerData& d,
                              std::string& why) {
  for (const WeightSet* set : preferred_sets(row.family)) {
    const std::string r = row.rejects(layer.spec, weights_for(layer, d, *set));
    if (r.empty()) return set;
    why += std::string(why.empty() ? "" : "; ") + set->name + ": " + r;
  }
  return nullptr;
}

void bm_kernel(benchmark::State& state, Layer layer, const ConvKernelRow* row, bool pack_only) {
  LayerData& d = layer_data(layer);
  std::string why;
  const WeightSet* set = accepted_set(*row, layer, d, why);
  if (set == nullptr) {
    state.SkipWithError(("rejects every weight set: " + why).c_str());
    return;
  }
  const std::vector<int8_t>& w = weights_for(layer, d, *set);
  std::unique_ptr<bk::QConv> q;
  try {
    q = row->prepare(layer.spec, w);
  } catch (const std::exception& e) {
    state.SkipWithError((std::string("prepare() threw: ") + e.what()).c_str());
    return;
  }
  AlignedBytes packed(q->packed_input_bytes());
  std::vector<int32_t> acc(static_cast<std::size_t>(layer.spec.output_elements()));
  q->pack_input(d.act.data(), packed.ptr);
  q->run(packed.ptr, acc.data());
  if (g_verify) {
    const std::vector<int64_t>& ref = reference_for(layer, d, *set);
    for (std::size_t i = 0; i < acc.size(); ++i) {
      if (acc[i] != ref[i]) {
        state.SkipWithError(("NOT EXACT: acc[" + std::to_string(i) + "] = " +
                             std::to_string(acc[i]) + ", reference " + std::to_string(ref[i]))
                                .c_str());
        return;
      }
    }
  }
  if (pack_only) {
    for (auto _ : state) {
      q->pack_input(d.act.data(), packed.ptr);
      benchmark::ClobberMemory();
    }
    state.counters["Gelem"] =
        benchmark::Counter(static_cast<double>(layer.spec.input_elements()) * 1e-9,
                           benchmark::Counter::kIsIterationInvariantRate);
    state.counters["nthreads"] = g_threads;
  } else {
    for (auto _ : state) {
      q->run(packed.ptr, acc.data());
      benchmark::ClobberMemory();
    }
    set_mac_counters(state, static_cast<double>(layer.spec.macs()), g_threads, kernel_bound(*row));
  }
  state.SetLabel(std::string(set->name) + " weights; packed weights " +
                 std::to_string(q->packed_weight_bytes()) + " B, input " +
                 std::to_string(q->packed_input_bytes()) + " B");
}

// ---- the threshold epilogue: int32 NHWC accumulators -> 2-bit codes
// ------------------------------

void bm_epilogue(benchmark::State& state, Layer layer, const bk::ThresholdKernelRow* row) {
  const ConvSpec& s = layer.spec;
  const int64_t pixels = s.out_pixels(), channels = s.out_channels;
  const int32_t range = static_cast<int32_t>(s.depth() * 6);  // |acc| <= 3 * 2 * K for signed 2-bit
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> value(-range, range);
  bk::Thresholds t;
  t.channels = channels;
  t.out_bits = 2;
  for (int64_t c = 0; c < channels; ++c) {
    std::vector<int32_t> v = {value(rng), value(rng), value(rng)};
    std::sort(v.begin(), v.end());
    const bool descending = c % 5 == 0;
    if (descending) std::reverse(v.begin(), v.end());
    t.values.insert(t.values.end(), v.begin(), v.end());
    t.descending.push_back(descending ? 1 : 0);
  }
  std::vector<int32_t> acc(static_cast<std::size_t>(pixels * channels));
  for (int32_t& a : acc) a = value(rng) / 4;
  std::vector<uint8_t> codes(acc.size());
  const bk::ThresholdEpilogue epilogue(t);
  if (g_verify) {
    std::vector<uint8_t> want(acc.size());
    bk::threshold_codes__ref(t, acc, want);
    epilogue.run(*row, acc.data(), pixels, codes.data());
    if (codes != want) {
      state.SkipWithError("NOT EXACT: differs from threshold_codes__ref");
      return;
    }
  }
  for (auto _ : state) {
    epilogue.run(*row, acc.data(), pixels, codes.data());
    benchmark::ClobberMemory();
  }
  state.counters["Gelem"] = benchmark::Counter(static_cast<double>(pixels * channels) * 1e-9,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.counters["nthreads"] = g_threads;
}

// ---- bitgrad's FP32 convolution (NCHW float, core/conv.hpp)
// --------------------------------------

void bm_fp32(benchmark::State& state, Layer layer) {
  const ConvSpec& s = layer.spec;
  bitgrad::core::Rng rng(42);
  const bitgrad::core::Tensor x = rng.uniform_tensor(
      bitgrad::core::Shape{s.batch, s.in_channels, s.height, s.width}, -1.0f, 1.0f);
  const bitgrad::core::Tensor w = rng.uniform_tensor(
      bitgrad::core::Shape{s.out_channels, s.in_channels, s.kernel, s.kernel}, -0.5f, 0.5f);
  bitgrad::core::Conv2dOptions opt;
  opt.stride = static_cast<int>(s.stride);
  opt.padding = static_cast<int>(s.pad);
  for (auto _ : state)
    benchmark::DoNotOptimize(bitgrad::core::conv2d_forward(x, w, bitgrad::core::Tensor(), opt));
  set_mac_counters(state, static_cast<double>(s.macs()), g_threads, fp32_bound());
  state.SetLabel("NCHW f32, oneTBB over the batch");
}

// ---- oneDNN 2.6 convolution_forward: u8 x s8 -> s32 and f32
// ----------------------------------------
#ifdef BITGRAD_HAVE_DNNL

// A one-off primitive (a reorder): the best of 3 runs after a first one (JIT, page faults).
double time_once_us(dnnl::primitive& p, dnnl::stream& strm,
                    const std::unordered_map<int, dnnl::memory>& args) {
  p.execute(strm, args);
  strm.wait();
  double best = std::numeric_limits<double>::max();
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    p.execute(strm, args);
    strm.wait();
    best = std::min(
        best,
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// A user-layout memory reordered into `want` (timed once, reported as a counter); the same memory
// when the layouts agree.
dnnl::memory to_layout(dnnl::memory user, const dnnl::memory::desc& want, dnnl::engine& eng,
                       dnnl::stream& strm, double& us) {
  us = 0.0;
  if (user.get_desc() == want) return user;
  dnnl::memory out(want, eng);
  dnnl::reorder r(user, out);
  us = time_once_us(r, strm, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, out}});
  return out;
}

double onednn_bound(const std::string& impl, bool int8) {
  if (!int8) return fp32_bound();
  if (impl.find("amx") != std::string::npos) return 1024.0;
  if (impl.find("vnni") != std::string::npos) return 128.0;
  return 64.0;
}

// int8: the layer's activation codes (NHWC u8) and signed 2-bit weights (OHWI s8), s32 output,
// checked against conv_codes__ref. f32: random floats. `vnni`: skip implementations that use AMX,
// i.e. the one ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI would pick (the first non-AMX implementation in
// the list).
void bm_onednn_body(benchmark::State& state, const Layer& layer, bool int8, bool vnni);

void bm_onednn(benchmark::State& state, Layer layer, bool int8, bool vnni) {
  try {
    bm_onednn_body(state, layer, int8, vnni);
  } catch (const dnnl::error& e) {
    state.SkipWithError((std::string("oneDNN: ") + e.what()).c_str());
  }
}

void bm_onednn_body(benchmark::State& state, const Layer& layer, bool int8, bool vnni) {
  using dnnl::memory;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  const ConvSpec& s = layer.spec;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const memory::dims src_dims = {s.batch, s.in_channels, s.height, s.width};
  const memory::dims wei_dims = {s.out_channels, s.in_channels, s.kernel, s.kernel};
  const memory::dims dst_dims = {s.batch, s.out_channels, s.out_height(), s.out_width()};
  const dt src_t = int8 ? dt::u8 : dt::f32, wei_t = int8 ? dt::s8 : dt::f32,
           dst_t = int8 ? dt::s32 : dt::f32;
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      memory::desc(src_dims, src_t, tag::any), memory::desc(wei_dims, wei_t, tag::any),
      memory::desc(dst_dims, dst_t, tag::any), {s.stride, s.stride}, {s.pad, s.pad},
      {s.pad, s.pad});
  dnnl::convolution_forward::primitive_desc pd(desc, eng);
  std::string impl = pd.impl_info_str();
  if (vnni) {
    while (impl.find("amx") != std::string::npos && pd.next_impl()) impl = pd.impl_info_str();
    if (impl.find("amx") != std::string::npos) {
      state.SkipWithError("oneDNN has no non-AMX implementation for this layer");
      return;
    }
  }
  // User data: NHWC codes / OHWI weights for int8 (bitgrad's layouts), NCHW / OIHW floats for f32.
  LayerData& d = layer_data(layer);
  const WeightSet& set = weight_sets().front();  // signed2
  memory user_src(memory::desc(src_dims, src_t, int8 ? tag::nhwc : tag::nchw), eng);
  memory user_wei(memory::desc(wei_dims, wei_t, int8 ? tag::ohwi : tag::oihw), eng);
  if (int8) {
    std::copy(d.act.begin(), d.act.end(), static_cast<uint8_t*>(user_src.get_data_handle()));
    const std::vector<int8_t>& w = weights_for(layer, d, set);
    std::copy(w.begin(), w.end(), static_cast<int8_t*>(user_wei.get_data_handle()));
  } else {
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    auto* x = static_cast<float*>(user_src.get_data_handle());
    for (int64_t i = 0; i < s.input_elements(); ++i) x[i] = u(rng);
    auto* w = static_cast<float*>(user_wei.get_data_handle());
    for (int64_t i = 0; i < s.weight_elements(); ++i) w[i] = 0.5f * u(rng);
  }
  double src_us = 0.0, wei_us = 0.0, dst_us = 0.0;
  memory src = to_layout(user_src, pd.src_desc(), eng, strm, src_us);
  memory wei = to_layout(user_wei, pd.weights_desc(), eng, strm, wei_us);
  memory dst(pd.dst_desc(), eng);
  dnnl::convolution_forward conv(pd);
  const std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}};
  conv.execute(strm, args);
  strm.wait();
  // The result in NHWC (bitgrad's accumulator layout): timed once like the input reorders.
  memory user_dst(memory::desc(dst_dims, dst_t, tag::nhwc), eng);
  if (pd.dst_desc() != user_dst.get_desc()) {
    dnnl::reorder r(dst, user_dst);
    dst_us = time_once_us(r, strm, {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, user_dst}});
  } else {
    user_dst = dst;
  }
  if (int8 && g_verify) {
    const std::vector<int64_t>& ref = reference_for(layer, d, set);
    const auto* got = static_cast<const int32_t*>(user_dst.get_data_handle());
    for (std::size_t i = 0; i < ref.size(); ++i) {
      if (got[i] != ref[i]) {
        state.SkipWithError(("NOT EXACT: oneDNN s32 output " + std::to_string(i) + " = " +
                             std::to_string(got[i]) + ", reference " + std::to_string(ref[i]))
                                .c_str());
        return;
      }
    }
  }
  for (auto _ : state) {
    conv.execute(strm, args);
    strm.wait();
  }
  set_mac_counters(state, static_cast<double>(s.macs()), g_threads, onednn_bound(impl, int8));
  state.counters["src_reorder_us"] = src_us;
  state.counters["wei_reorder_us"] = wei_us;
  state.counters["dst_reorder_us"] = dst_us;
  state.SetLabel(impl);
}

std::string onednn_summary() {
  const dnnl_version_t* v = dnnl_version();
  const char* runtime = v->cpu_runtime == DNNL_RUNTIME_OMP   ? "OpenMP"
                        : v->cpu_runtime == DNNL_RUNTIME_TBB ? "TBB"
                        : v->cpu_runtime == DNNL_RUNTIME_SEQ ? "sequential"
                                                             : "other";
  static const std::map<dnnl::cpu_isa, const char*> isa_names = {
      {dnnl::cpu_isa::avx2, "avx2"},
      {dnnl::cpu_isa::avx2_vnni, "avx2_vnni"},
      {dnnl::cpu_isa::avx512_core, "avx512_core"},
      {dnnl::cpu_isa::avx512_core_vnni, "avx512_core_vnni"},
      {dnnl::cpu_isa::avx512_core_bf16, "avx512_core_bf16"},
      {dnnl::cpu_isa::avx512_core_amx, "avx512_core_amx"},
  };
  const auto it = isa_names.find(dnnl::get_effective_cpu_isa());
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " (" + v->hash + "), CPU runtime " + runtime + ", max ISA " +
         (it != isa_names.end() ? it->second : "other");
}
#endif  // BITGRAD_HAVE_DNNL

// ---- registration -----------------------------------------------------------------------------

void register_all() {
  for (const Layer& layer : layers()) {
    const std::string id = layer.id();
    for (const ConvKernelRow& row : bk::conv_kernels()) {
      if (!bk::cpu_supports(row)) continue;
      const std::string name(row.name);
      benchmark::RegisterBenchmark((id + "/conv/" + name).c_str(), bm_kernel, layer, &row, false)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((id + "/pack/" + name).c_str(), bm_kernel, layer, &row, true)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    for (const bk::ThresholdKernelRow& row : bk::threshold_kernels()) {
      if (row.tier > bk::cpu_tier()) continue;
      benchmark::RegisterBenchmark((id + "/epilogue/" + std::string(row.name)).c_str(), bm_epilogue,
                                   layer, &row)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark((id + "/fp32/bitgrad").c_str(), bm_fp32, layer)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
#ifdef BITGRAD_HAVE_DNNL
    benchmark::RegisterBenchmark((id + "/onednn_s8/best").c_str(), bm_onednn, layer, true, false)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((id + "/onednn_s8/vnni").c_str(), bm_onednn, layer, true, true)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((id + "/onednn_f32/best").c_str(), bm_onednn, layer, false, false)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
#endif
  }
}

}  // namespace

int main(int argc, char** argv) {
  bitgrad::bench::init_bench_threads();
  g_threads = bitgrad::core::num_threads();
  const char* verify = std::getenv("BITGRAD_BENCH_VERIFY");
  g_verify = verify == nullptr || std::string(verify) != "0";
  g_clock_ghz = measure_clock_ghz();

  std::string dnnl_line = "oneDNN: not built in (libdnnl-dev not found at configure time)";
#ifdef BITGRAD_HAVE_DNNL
#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
  omp_set_num_threads(g_threads);  // oneDNN's OpenMP pool: same thread count as oneTBB's
#endif
  dnnl_line = onednn_summary();
#endif
  // On stderr: stdout may be the JSON report (--benchmark_format=json).
  std::fprintf(stderr,
               "clock %.2f GHz (dependent imul chain, best of 40 x 2 ms of thread CPU time), "
               "threads %d, kernel tier %s (max %s), "
               "cpu: %s\n%s\n",
               g_clock_ghz, g_threads, std::string(bk::tier_name(bk::cpu_tier())).c_str(),
               std::string(bk::tier_name(bk::max_tier())).c_str(),
               bk::cpu_feature_summary().c_str(), dnnl_line.c_str());
  benchmark::AddCustomContext("clock_ghz", std::to_string(g_clock_ghz));
  benchmark::AddCustomContext("threads", std::to_string(g_threads));
  benchmark::AddCustomContext("cpu_tier", std::string(bk::tier_name(bk::cpu_tier())));
  benchmark::AddCustomContext("cpu_features", bk::cpu_feature_summary());
  benchmark::AddCustomContext("onednn", dnnl_line);

  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
