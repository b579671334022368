// threshold.cpp: the threshold epilogue's kernel table and dispatch, the prepared layout, the
// oneTBB loop over pixel blocks, and the derivation of thresholds from a float epilogue (KERNELS.md
// §5.1: evaluate the model's own epilogue at integer accumulators, binary-search the transitions,
// verify the whole range by brute force).
#include "kernels/epilogue/threshold.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <cassert>
#include <limits>
#include <string>

#include "core/error.hpp"
#include "kernels/epilogue/threshold_tile.hpp"

namespace bitgrad::kernels {
namespace {

constexpr ThresholdKernelRow kRows[] = {
    {"threshold_s32u8__ref", Tier::kScalar, threshold_s32u8__ref},
    {"threshold_s32u8__avx2_c8", Tier::kAvx2, threshold_s32u8__avx2_c8},
    {"threshold_s32u8__avx512_c16", Tier::kAvx512, threshold_s32u8__avx512_c16},
};

// Outputs per parallel task: below this a layer runs on the calling thread (a CIFAR layer at batch
// 1 has 16k outputs, a few microseconds of work, less than waking a worker costs).
constexpr int64_t kOutputsPerTask = 32768;

std::string where(int64_t channel, int32_t acc) {
  return "derive_thresholds: channel " + std::to_string(channel) + ", accumulator " +
         std::to_string(acc);
}

}  // namespace

void Thresholds::validate() const {
  check_lazy(channels >= 1, [&] {
    return "thresholds: expected at least 1 channel, got " + std::to_string(channels);
  });
  check_lazy(out_bits >= 1 && out_bits <= 8, [&] {
    return "thresholds: expected out_bits in 1..8, got " + std::to_string(out_bits);
  });
  check_lazy(static_cast<int64_t>(values.size()) == channels * count(), [&] {
    return "thresholds: expected " + std::to_string(channels) + " x " + std::to_string(count()) +
           " values, got " + std::to_string(values.size());
  });
  check_lazy(static_cast<int64_t>(descending.size()) == channels, [&] {
    return "thresholds: expected " + std::to_string(channels) + " direction flags, got " +
           std::to_string(descending.size());
  });
  for (std::size_t c = 0; c < descending.size(); ++c) {
    check_lazy(descending[c] <= 1, [&] {
      return "thresholds: direction flag of channel " + std::to_string(c) + " is " +
             std::to_string(descending[c]) + ", expected 0 or 1";
    });
  }
}

std::span<const ThresholdKernelRow> threshold_kernels() { return kRows; }

const ThresholdKernelRow& select_threshold() {
  static const ThresholdKernelRow& best = []() -> const ThresholdKernelRow& {
    const ThresholdKernelRow* row = &kRows[0];
    for (const ThresholdKernelRow& r : kRows)
      if (r.tier <= max_tier()) row = &r;  // slowest first: keep the last that fits
    return *row;
  }();
  return best;
}

ThresholdEpilogue::ThresholdEpilogue(const Thresholds& t) {
  t.validate();
  channels_ = t.channels;
  out_bits_ = t.out_bits;
  stride_ = (channels_ + 31) / 32 * 32;
  const int count = t.count();
  flip_.assign(static_cast<std::size_t>(stride_), 0);
  thresholds_.assign(static_cast<std::size_t>(stride_ * count),
                     std::numeric_limits<int32_t>::max());
  for (int64_t c = 0; c < channels_; ++c) {
    const int32_t flip = t.descending[static_cast<std::size_t>(c)] != 0 ? -1 : 0;
    flip_[static_cast<std::size_t>(c)] = flip;
    for (int k = 0; k < count; ++k)
      thresholds_[static_cast<std::size_t>(k * stride_ + c)] =
          t.values[static_cast<std::size_t>(c * count + k)] ^ flip;
  }
}

void ThresholdEpilogue::run(const int32_t* acc, int64_t pixels, uint8_t* codes) const {
  run(select_threshold(), acc, pixels, codes);
}

void ThresholdEpilogue::run(const ThresholdKernelRow& row, const int32_t* acc, int64_t pixels,
                            uint8_t* codes) const {
  assert(row.tier <= cpu_tier() && pixels >= 0);
  if (pixels == 0) return;
  ThresholdTile tile;
  tile.thresholds = thresholds_.data();
  tile.flip = flip_.data();
  tile.channels = channels_;
  tile.stride = stride_;
  tile.count = (1 << out_bits_) - 1;
  const int64_t grain = std::max<int64_t>(1, kOutputsPerTask / channels_);
  if (pixels <= grain) {
    row.tile(tile, acc, codes, pixels);
    return;
  }
  tbb::parallel_for(
      tbb::blocked_range<int64_t>(0, pixels, grain),
      [&](const tbb::blocked_range<int64_t>& r) {
        row.tile(tile, acc + r.begin() * channels_, codes + r.begin() * channels_,
                 r.end() - r.begin());
      },
      tbb::static_partitioner());
}

Thresholds derive_thresholds(int64_t channels, int out_bits, int32_t acc_min, int32_t acc_max,
                             const std::function<uint8_t(int64_t channel, int32_t acc)>& f) {
  Thresholds t;
  t.channels = channels;
  t.out_bits = out_bits;
  check_lazy(channels >= 1 && out_bits >= 1 && out_bits <= 8, [&] {
    return "derive_thresholds: expected channels >= 1 and out_bits in 1..8, got " +
           std::to_string(channels) + " and " + std::to_string(out_bits);
  });
  check_lazy(
      acc_min <= acc_max && acc_min > std::numeric_limits<int32_t>::min() &&
          acc_max < std::numeric_limits<int32_t>::max(),
      [&] {
        return "derive_thresholds: expected INT32_MIN < acc_min <= acc_max < INT32_MAX, got [" +
               std::to_string(acc_min) + ", " + std::to_string(acc_max) + "]";
      });
  const int count = t.count();
  t.values.resize(static_cast<std::size_t>(channels * count));
  t.descending.resize(static_cast<std::size_t>(channels));

  for (int64_t c = 0; c < channels; ++c) {
    auto code = [&](int32_t a) {
      const uint8_t v = f(c, a);
      check_lazy(v <= count, [&] {
        return where(c, a) + ": the epilogue returned code " + std::to_string(v) + ", expected < " +
               std::to_string(count + 1) + " for " + std::to_string(out_bits) + "-bit outputs";
      });
      return static_cast<int>(v);
    };
    const bool descending = code(acc_max) < code(acc_min);
    t.descending[static_cast<std::size_t>(c)] = descending ? 1 : 0;
    int32_t* thr = &t.values[static_cast<std::size_t>(c * count)];
    for (int k = 1; k <= count; ++k) {
      // Ascending: the smallest acc with code >= k. Descending: the largest. Int64 midpoints.
      int64_t lo = acc_min, hi = acc_max;
      if (!descending) {
        if (code(acc_max) < k) {
          thr[k - 1] = acc_max + 1;
          continue;
        }
        if (code(acc_min) >= k) {
          thr[k - 1] = acc_min;
          continue;
        }
        while (hi - lo > 1) {  // code(lo) < k <= code(hi)
          const int64_t mid = lo + (hi - lo) / 2;
          (code(static_cast<int32_t>(mid)) >= k ? hi : lo) = mid;
        }
        thr[k - 1] = static_cast<int32_t>(hi);
      } else {
        if (code(acc_min) < k) {
          thr[k - 1] = acc_min - 1;
          continue;
        }
        if (code(acc_max) >= k) {
          thr[k - 1] = acc_max;
          continue;
        }
        while (hi - lo > 1) {  // code(lo) >= k > code(hi)
          const int64_t mid = lo + (hi - lo) / 2;
          (code(static_cast<int32_t>(mid)) >= k ? lo : hi) = mid;
        }
        thr[k - 1] = static_cast<int32_t>(lo);
      }
    }
    // Brute force over the range. For sorted thresholds the code of acc a is the number of
    // thresholds already reached walking a upwards (ascending) or still ahead of it (descending):
    // one pass.
    const bool sorted = descending ? std::is_sorted(thr, thr + count, std::greater<int32_t>())
                                   : std::is_sorted(thr, thr + count);
    int passed = 0;  // ascending: #{k : thr[k] <= a}; descending: #{k : thr[k] < a}
    for (int64_t a = acc_min; a <= acc_max; ++a) {
      int expect = 0;
      if (sorted) {
        if (!descending) {
          while (passed < count && thr[passed] <= a) ++passed;
          expect = passed;
        } else {
          while (passed < count && thr[count - 1 - passed] < a) ++passed;
          expect = count - passed;
        }
      } else {
        for (int k = 0; k < count; ++k) expect += descending ? a <= thr[k] : a >= thr[k];
      }
      const int got = code(static_cast<int32_t>(a));
      check_lazy(got == expect, [&] {
        return where(c, static_cast<int32_t>(a)) + ": the epilogue gives code " +
               std::to_string(got) + " but the thresholds found by binary search give " +
               std::to_string(expect) + ": it is not monotone in the accumulator on [" +
               std::to_string(acc_min) + ", " + std::to_string(acc_max) +
               "], so no thresholds represent it";
      });
    }
  }
  return t;
}

}  // namespace bitgrad::kernels
