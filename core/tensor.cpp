// tensor.cpp: Storage allocation (with the recycling cache) and Tensor views.
#include "core/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"

namespace bitgrad::core {

namespace {
constexpr size_t kAlignment = 64;

// The recycling cache behind Storage (tensor.hpp): exact rounded sizes as buckets, LIFO per bucket
// (the most recently freed buffer is the most likely to still be in cache).
class BlockCache {
 public:
  static constexpr size_t kMinBytes = size_t{64} << 10;  // smaller blocks: plain aligned_alloc
  static constexpr size_t kMaxCachedBytes = size_t{1} << 30;
  static constexpr size_t kGranule = 4096;

  static size_t rounded(size_t bytes) {
    if (bytes < kMinBytes) return ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
    return ((bytes + kGranule - 1) / kGranule) * kGranule;
  }

  // bytes already rounded.
  void* allocate(size_t bytes) {
    add_live(bytes);
    if (bytes >= kMinBytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlignment, bytes);
    if (p == nullptr) {
      live_bytes_.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
      throw std::bad_alloc();
    }
    return p;
  }

  void release(void* p, size_t bytes) {
    live_bytes_.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    if (bytes >= kMinBytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + bytes <= kMaxCachedBytes) {
        free_[bytes].push_back(p);
        cached_bytes_ += bytes;
        return;
      }
    }
    std::free(p);
  }

  StorageStats stats() {
    StorageStats s;
    s.live_bytes = live_bytes_.load(std::memory_order_relaxed);
    s.peak_live_bytes = peak_live_bytes_.load(std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mutex_);
    s.cached_bytes = static_cast<int64_t>(cached_bytes_);
    return s;
  }

  void reset_peak() { peak_live_bytes_.store(live_bytes_.load(std::memory_order_relaxed)); }

  // Never destroyed: Tensors in static objects may be freed after any static destructor ran.
  static BlockCache& instance() {
    static BlockCache* cache = new BlockCache;
    return *cache;
  }

 private:
  void add_live(size_t bytes) {
    const int64_t now = live_bytes_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed) +
                        static_cast<int64_t>(bytes);
    int64_t peak = peak_live_bytes_.load(std::memory_order_relaxed);
    while (now > peak && !peak_live_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
  std::atomic<int64_t> live_bytes_{0};
  std::atomic<int64_t> peak_live_bytes_{0};
};

// Calls f(flat_offset) for every element of a strided view, in row-major order.
template <typename F>
void for_each_offset(const Shape& shape, const Tensor::Strides& strides, int64_t base, F&& f) {
  const int rank = shape.rank();
  const int64_t n = shape.numel();
  if (n == 0) return;
  std::array<int64_t, kMaxRank> idx{};
  int64_t off = base;
  for (int64_t k = 0; k < n; ++k) {
    f(off);
    for (int d = rank - 1; d >= 0; --d) {
      const auto ud = static_cast<size_t>(d);
      ++idx[ud];
      off += strides[ud];
      if (idx[ud] < shape[d]) break;
      off -= strides[ud] * shape[d];
      idx[ud] = 0;
    }
  }
}
}  // namespace

namespace {
// Bytes allocated for `size` floats (at least one alignment unit, so size 0 gets a valid pointer).
size_t storage_bytes(int64_t size) {
  return BlockCache::rounded(std::max<size_t>(static_cast<size_t>(size) * sizeof(float), 1));
}
}  // namespace

Storage::Storage(int64_t size, bool zero_fill) : size_(size) {
  const size_t bytes = storage_bytes(size);
  data_ = static_cast<float*>(BlockCache::instance().allocate(bytes));
  if (zero_fill) std::memset(data_, 0, bytes);
}

Storage::~Storage() { BlockCache::instance().release(data_, storage_bytes(size_)); }

StorageStats storage_stats() { return BlockCache::instance().stats(); }

void reset_peak_storage_bytes() { BlockCache::instance().reset_peak(); }

Tensor::Tensor(const Shape& shape)
    : storage_(std::make_shared<Storage>(shape.numel())),
      shape_(shape),
      strides_(contiguous_strides(shape)) {}

Tensor Tensor::empty(const Shape& shape) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>(shape.numel(), false);
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  std::fill(t.storage_->data(), t.storage_->data() + t.numel(), value);
  return t;
}

Tensor Tensor::from(const Shape& shape, std::span<const float> values) {
  check_lazy(static_cast<int64_t>(values.size()) == shape.numel(), [&] {
    return "Tensor::from: shape " + shape.to_string() + " needs " + std::to_string(shape.numel()) +
           " values, got " + std::to_string(values.size());
  });
  Tensor t = empty(shape);
  if (!values.empty()) std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::from(const Shape& shape, std::initializer_list<float> values) {
  return from(shape, std::span<const float>(values.begin(), values.size()));
}

bool Tensor::is_contiguous() const {
  const Strides c = contiguous_strides(shape_);
  for (int i = 0; i < rank(); ++i) {
    const auto ui = static_cast<size_t>(i);
    if (shape_[i] != 1 && strides_[ui] != c[ui]) return false;
  }
  return true;
}

float* Tensor::data() {
  assert(defined());
  return storage_->data() + offset_;
}

const float* Tensor::data() const {
  assert(defined());
  return storage_->data() + offset_;
}

std::span<float> Tensor::span() {
  assert(is_contiguous());
  return {data(), static_cast<size_t>(numel())};
}

std::span<const float> Tensor::span() const {
  assert(is_contiguous());
  return {data(), static_cast<size_t>(numel())};
}

namespace {
int64_t checked_offset(const Tensor& t, std::initializer_list<int64_t> index) {
  check_lazy(t.defined(), [] { return std::string("Tensor::at: tensor is undefined"); });
  check_lazy(static_cast<int>(index.size()) == t.rank(), [&] {
    return "Tensor::at: expected " + std::to_string(t.rank()) + " indices for shape " +
           t.shape().to_string() + ", got " + std::to_string(index.size());
  });
  int64_t off = 0;
  int d = 0;
  for (int64_t i : index) {
    check_lazy(i >= 0 && i < t.dim(d), [&] {
      return "Tensor::at: index " + std::to_string(i) + " out of range for axis " +
             std::to_string(d) + " of shape " + t.shape().to_string();
    });
    off += i * t.strides()[static_cast<size_t>(d)];
    ++d;
  }
  return off;
}
}  // namespace

float Tensor::at(std::initializer_list<int64_t> index) const {
  return data()[checked_offset(*this, index)];
}

void Tensor::set(std::initializer_list<int64_t> index, float value) {
  data()[checked_offset(*this, index)] = value;
}

float Tensor::item() const {
  check_lazy(defined() && numel() == 1, [&] {
    return "Tensor::item: expected a one-element tensor, got shape " +
           (defined() ? shape_.to_string() : std::string("<undefined>"));
  });
  return data()[0];
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor out = empty(shape_);
  float* dst = out.data();
  const float* base = storage_->data();
  if (is_contiguous()) {
    std::memcpy(dst, data(), static_cast<size_t>(numel()) * sizeof(float));
  } else {
    for_each_offset(shape_, strides_, offset_, [&](int64_t off) { *dst++ = base[off]; });
  }
  return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::reshape(std::initializer_list<int64_t> dims) const {
  return reshape(std::span<const int64_t>(dims.begin(), dims.size()));
}

Tensor Tensor::reshape(std::span<const int64_t> dims) const {
  std::vector<int64_t> d(dims.begin(), dims.end());
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < d.size(); ++i) {
    if (d[i] == -1) {
      check(infer < 0, "reshape: at most one dimension may be -1");
      infer = static_cast<int>(i);
    } else {
      known *= d[i];
    }
  }
  if (infer >= 0 && known > 0 && numel() % known == 0) d[static_cast<size_t>(infer)] = numel() / known;
  Shape target(d);
  check_lazy(target.numel() == numel() && (infer < 0 || known > 0), [&] {
    std::string req = "[";
    for (size_t i = 0; i < dims.size(); ++i) req += (i ? ", " : "") + std::to_string(dims[i]);
    return "reshape: cannot view shape " + shape_.to_string() + " (" + std::to_string(numel()) +
           " elements) as " + req + "]";
  });
  Tensor out = contiguous();
  out.shape_ = target;
  out.strides_ = contiguous_strides(target);
  return out;
}

Tensor Tensor::transpose(int a, int b) const {
  Tensor out = *this;
  const auto ua = static_cast<size_t>(shape_.axis(a));
  const auto ub = static_cast<size_t>(shape_.axis(b));
  std::swap(out.shape_[static_cast<int>(ua)], out.shape_[static_cast<int>(ub)]);
  std::swap(out.strides_[ua], out.strides_[ub]);
  return out;
}

Tensor Tensor::slice(int axis, int64_t start, int64_t end, int64_t step) const {
  const int ax = shape_.axis(axis);
  check_lazy(step >= 1, [&] { return "slice: expected step >= 1, got " + std::to_string(step); });
  const int64_t n = shape_[ax];
  auto clampi = [n](int64_t v) {
    if (v < 0) v += n;
    return std::clamp<int64_t>(v, 0, n);
  };
  start = clampi(start);
  end = clampi(end);
  const int64_t len = end > start ? (end - start + step - 1) / step : 0;
  Tensor out = *this;
  out.offset_ += start * strides_[static_cast<size_t>(ax)];
  out.shape_[ax] = len;
  out.strides_[static_cast<size_t>(ax)] *= step;
  return out;
}

void Tensor::fill_(float value) {
  float* base = storage_->data();
  for_each_offset(shape_, strides_, offset_, [&](int64_t off) { base[off] = value; });
}

void Tensor::copy_(const Tensor& src) {
  check_lazy(src.shape() == shape_, [&] {
    return "copy_: expected source shape " + shape_.to_string() + ", got " +
           src.shape().to_string();
  });
  const Tensor s = src.contiguous();
  const float* p = s.data();
  float* base = storage_->data();
  for_each_offset(shape_, strides_, offset_, [&](int64_t off) { base[off] = *p++; });
}

std::vector<float> Tensor::to_vector() const {
  if (!defined()) return {};
  const Tensor c = contiguous();
  return {c.data(), c.data() + c.numel()};
}

std::string Tensor::to_string(int max_values) const {
  if (!defined()) return "Tensor(<undefined>)";
  std::string s = "Tensor(" + shape_.to_string() + ", [";
  const std::vector<float> v = to_vector();
  for (size_t i = 0; i < v.size() && static_cast<int>(i) < max_values; ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  if (static_cast<int>(v.size()) > max_values) s += ", ...";
  return s + "])";
}

}  // namespace bitgrad::core
