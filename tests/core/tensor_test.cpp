// tensor_test.cpp: Shape and Tensor (storage sharing, views, reshape/transpose/slice, in-place
// writes through views, alignment, errors), Rng (determinism and distributions), tensor_ops
// (broadcasting, reductions, sum_to, the four matmul transpose combinations) and the thread limit.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "core/tensor_ops.hpp"
#include "core/threads.hpp"
#include "test_util.hpp"

namespace bitgrad::core {
namespace {

using test::error_message;

// 0, 1, 2, ... in the given shape.
Tensor arange(const Shape& shape) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(i);
  return t;
}

std::vector<float> values(std::initializer_list<float> v) { return v; }

}  // namespace

TEST_CASE("Shape: dims, numel, negative axes, printing and errors", "[core]") {
  const Shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s[-1] == 4);
  CHECK(s.axis(-3) == 0);
  CHECK(s.to_string() == "[2, 3, 4]");
  CHECK(Shape{}.rank() == 0);
  CHECK(Shape{}.numel() == 1);
  CHECK(Shape{}.to_string() == "[]");
  CHECK(Shape{2, 0}.numel() == 0);
  CHECK(s == Shape{2, 3, 4});
  CHECK_FALSE(s == Shape{2, 3});
  CHECK_THROWS_AS(s.axis(3), Error);
  CHECK_THROWS_AS(s.axis(-4), Error);
  CHECK_THROWS_AS((Shape{1, 1, 1, 1, 1, 1, 1}), Error);
  CHECK_THROWS_AS((Shape{2, -1}), Error);
  const auto st = contiguous_strides(s);
  CHECK(st[0] == 12);
  CHECK(st[1] == 4);
  CHECK(st[2] == 1);
}

TEST_CASE("Tensor: zeros, full, from and element access", "[core]") {
  const Tensor z = Tensor::zeros({2, 3});
  CHECK(z.defined());
  CHECK(z.is_contiguous());
  CHECK(z.to_vector() == std::vector<float>(6, 0.0f));
  CHECK(Tensor::full({4}, 2.5f).to_vector() == std::vector<float>(4, 2.5f));
  CHECK(Tensor::scalar(3.0f).item() == 3.0f);
  CHECK(Tensor::scalar(3.0f).rank() == 0);

  Tensor t = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(t.at({1, 0}) == 4.0f);
  t.set({0, 2}, 9.0f);
  CHECK(t.to_vector() == values({1, 2, 9, 4, 5, 6}));
  CHECK_THROWS_AS(t.at({2, 0}), Error);
  CHECK_THROWS_AS(t.at({0}), Error);
  CHECK_THROWS_AS(Tensor::from({2, 2}, {1, 2, 3}), Error);
  CHECK_FALSE(Tensor().defined());
}

TEST_CASE("Tensor: copies are shallow, clone is deep", "[core]") {
  Tensor a = Tensor::from({3}, {1, 2, 3});
  Tensor shallow = a;
  Tensor deep = a.clone();
  a.set({0}, 10.0f);
  CHECK(shallow.at({0}) == 10.0f);
  CHECK(shallow.shares_storage_with(a));
  CHECK(deep.at({0}) == 1.0f);
  CHECK_FALSE(deep.shares_storage_with(a));
  CHECK(deep.to_vector() == values({1, 2, 3}));
}

TEST_CASE("Tensor: data() is 64-byte aligned", "[core]") {
  for (int64_t n : {1, 3, 17, 1000}) {
    const Tensor t({n});
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  }
}

TEST_CASE("Tensor: reshape views contiguous data and copies strided data", "[core]") {
  const Tensor t = arange({2, 3});
  const Tensor r = t.reshape({3, 2});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(r.shares_storage_with(t));
  CHECK(r.data() == t.data());
  CHECK(r.to_vector() == t.to_vector());

  const Tensor inferred = t.reshape({-1, 3, 1});
  CHECK(inferred.shape() == Shape{2, 3, 1});
  CHECK(t.reshape({6, -1}).shape() == Shape{6, 1});
  CHECK_THROWS_AS(t.reshape({4, -1}), Error);
  CHECK_THROWS_AS(t.reshape({-1, -1}), Error);
  CHECK_THROWS_AS(t.reshape({7}), Error);

  const Tensor tt = t.transpose(0, 1);  // [3, 2], strided
  CHECK_FALSE(tt.is_contiguous());
  const Tensor flat = tt.reshape({6});
  CHECK(flat.is_contiguous());
  CHECK_FALSE(flat.shares_storage_with(t));
  CHECK(flat.to_vector() == values({0, 3, 1, 4, 2, 5}));
}

TEST_CASE("Tensor: transpose and slice views", "[core]") {
  Tensor t = arange({2, 3});
  const Tensor tt = t.transpose(0, 1);
  CHECK(tt.shape() == Shape{3, 2});
  CHECK(tt.shares_storage_with(t));
  CHECK(tt.at({2, 1}) == 5.0f);
  CHECK(tt.at({1, 0}) == 1.0f);
  CHECK(tt.to_vector() == values({0, 3, 1, 4, 2, 5}));
  CHECK(tt.contiguous().is_contiguous());

  const Tensor v = arange({10});
  CHECK(v.slice(0, 1, 8, 3).to_vector() == values({1, 4, 7}));
  CHECK(v.slice(0, -3, 10).to_vector() == values({7, 8, 9}));
  CHECK(v.slice(0, 5, 100).to_vector() == values({5, 6, 7, 8, 9}));
  CHECK(v.slice(0, 6, 2).numel() == 0);
  CHECK_THROWS_AS(v.slice(0, 0, 5, 0), Error);

  const Tensor m = arange({3, 4});
  const Tensor cols = m.slice(1, 1, 4, 2);  // columns 1 and 3
  CHECK(cols.shape() == Shape{3, 2});
  CHECK(cols.shares_storage_with(m));
  CHECK_FALSE(cols.is_contiguous());
  CHECK(cols.to_vector() == values({1, 3, 5, 7, 9, 11}));
  CHECK(cols.clone().to_vector() == cols.to_vector());
  const Tensor rows = m.slice(0, 1, 3);  // a contiguous block with an offset
  CHECK(rows.is_contiguous());
  CHECK(rows.at({0, 0}) == 4.0f);
  CHECK(rows.to_vector() == values({4, 5, 6, 7, 8, 9, 10, 11}));
}

TEST_CASE("Tensor: fill_ and copy_ write through views", "[core]") {
  Tensor m = Tensor::zeros({3, 4});
  m.slice(1, 0, 4, 2).fill_(7.0f);
  CHECK(m.to_vector() == values({7, 0, 7, 0, 7, 0, 7, 0, 7, 0, 7, 0}));

  Tensor n = Tensor::zeros({2, 3});
  Tensor nt = n.transpose(0, 1);  // [3, 2] view of n
  nt.copy_(Tensor::from({3, 2}, {1, 2, 3, 4, 5, 6}));
  CHECK(n.to_vector() == values({1, 3, 5, 2, 4, 6}));
  CHECK_THROWS_AS(nt.copy_(Tensor::zeros({2, 3})), Error);

  Tensor r = Tensor::zeros({2, 4});
  r.slice(0, 1, 2).slice(1, 1, 3).copy_(Tensor::from({1, 2}, {8, 9}));
  CHECK(r.to_vector() == values({0, 0, 0, 0, 0, 8, 9, 0}));
}

TEST_CASE("Tensor: item needs exactly one element", "[core]") {
  CHECK(Tensor::from({1, 1}, {4}).item() == 4.0f);
  const std::string msg = error_message([] { (void)Tensor::zeros({2}).item(); });
  CHECK(msg.find("item") != std::string::npos);
  CHECK(msg.find("[2]") != std::string::npos);
  CHECK_THROWS_AS(Tensor().item(), Error);
}

TEST_CASE("Rng: same seed, same sequence; different seeds differ", "[core]") {
  Rng a(42), b(42), c(43);
  std::vector<uint64_t> va, vb, vc;
  for (int i = 0; i < 16; ++i) {
    va.push_back(a.next_u64());
    vb.push_back(b.next_u64());
    vc.push_back(c.next_u64());
  }
  CHECK(va == vb);
  CHECK(va != vc);
  Rng d(42), e(42);
  CHECK(d.uniform_tensor({5}, -1, 1).to_vector() == e.uniform_tensor({5}, -1, 1).to_vector());
  Rng f(1);
  Rng g = f.split();
  CHECK(f.next_u64() != g.next_u64());
}

TEST_CASE("Rng: uniform range, permutation, below", "[core]") {
  Rng rng(7);
  for (int i = 0; i < 1000; ++i) {
    const float u = rng.uniform(-2.0f, 3.0f);
    REQUIRE(u >= -2.0f);
    REQUIRE(u < 3.0f);
    REQUIRE(rng.below(5) < 5);
  }
  std::vector<int64_t> p = rng.permutation(100);
  REQUIRE(p.size() == 100);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) CHECK(sorted[static_cast<size_t>(i)] == i);
  std::vector<int64_t> identity(100);
  for (int64_t i = 0; i < 100; ++i) identity[static_cast<size_t>(i)] = i;
  CHECK(p != identity);  // 1/100! chance of a false failure
  CHECK(rng.permutation(0).empty());
  CHECK_THROWS_AS(rng.below(0), Error);
}

TEST_CASE("Rng: normal moments and rademacher values", "[core]") {
  Rng rng(2024);
  const int n = 100000;
  double s = 0.0, s2 = 0.0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal();
    s += x;
    s2 += x * x;
  }
  const double mean = s / n;
  const double stddev = std::sqrt(s2 / n - mean * mean);
  CHECK(std::fabs(mean) < 0.015);  // 4.7 standard errors
  CHECK(std::fabs(stddev - 1.0) < 0.015);

  const Tensor t = rng.normal_tensor({20000}, 3.0f, 0.5f);
  const double tm = sum_all(t) / 20000.0;
  CHECK(std::fabs(tm - 3.0) < 0.02);

  int plus = 0;
  for (int i = 0; i < 10000; ++i) {
    const float r = rng.rademacher();
    REQUIRE((r == 1.0f || r == -1.0f));
    plus += r > 0.0f;
  }
  CHECK(plus > 4700);
  CHECK(plus < 5300);
  for (float v : rng.rademacher_tensor({64}).to_vector()) CHECK(std::fabs(v) == 1.0f);
}

TEST_CASE("tensor_ops: broadcast_shapes and broadcasting arithmetic", "[core]") {
  CHECK(broadcast_shapes({2, 3, 4}, {3, 1}, "t") == Shape{2, 3, 4});
  CHECK(broadcast_shapes({1, 4}, {3, 1}, "t") == Shape{3, 4});
  CHECK(broadcast_shapes({}, {2, 2}, "t") == Shape{2, 2});
  const std::string msg = error_message([] { (void)broadcast_shapes({2, 3}, {4}, "myop"); });
  CHECK(msg.find("myop") != std::string::npos);
  CHECK(msg.find("[2, 3]") != std::string::npos);
  CHECK(msg.find("[4]") != std::string::npos);

  const Tensor a = arange({2, 3});
  const Tensor col = Tensor::from({2, 1}, {10, 20});
  CHECK(add(a, col).to_vector() == values({10, 11, 12, 23, 24, 25}));
  CHECK(sub(a, Tensor::from({3}, {1, 1, 1})).to_vector() == values({-1, 0, 1, 2, 3, 4}));
  CHECK(mul(a, Tensor::scalar(2.0f)).to_vector() == values({0, 2, 4, 6, 8, 10}));
  CHECK(div(col, Tensor::from({1, 2}, {2, 5})).to_vector() == values({5, 2, 10, 4}));
  CHECK(add(a.transpose(0, 1), Tensor::zeros({3, 2})).to_vector() == values({0, 3, 1, 4, 2, 5}));
  CHECK(add_scalar(a, 1).to_vector() == values({1, 2, 3, 4, 5, 6}));
  CHECK(mul_scalar(a, -1).to_vector() == values({-0.0f, -1, -2, -3, -4, -5}));
  CHECK(broadcast_to(col, {2, 2}).to_vector() == values({10, 10, 20, 20}));
  CHECK_THROWS_AS(add(a, Tensor::zeros({2})), Error);
}

TEST_CASE("tensor_ops: sum over axes and sum_to match hand-computed values", "[core]") {
  const Tensor t = arange({2, 3, 4});  // t[i][j][k] = 12i + 4j + k
  const std::vector<int> ax0{0}, ax1{1}, ax02{0, 2}, last{-1}, all{};
  CHECK(sum(t, ax0, false).shape() == Shape{3, 4});
  CHECK(sum(t, ax0, false).at({1, 2}) == 6.0f + 18.0f);
  CHECK(sum(t, ax1, true).shape() == Shape{2, 1, 4});
  CHECK(sum(t, ax1, true).at({1, 0, 3}) == 15.0f + 19.0f + 23.0f);
  const Tensor s02 = sum(t, ax02, false);
  CHECK(s02.shape() == Shape{3});
  // sum over i, k of 12i + 4j + k = 8*4j + (0+12)*4 + 2*(0+1+2+3)
  for (int64_t j = 0; j < 3; ++j) CHECK(s02.at({j}) == static_cast<float>(32 * j + 48 + 12));
  CHECK(sum(t, last, false).at({0, 1}) == 4.0f + 5 + 6 + 7);
  const Tensor total = sum(t, all, false);
  CHECK(total.rank() == 0);
  CHECK(total.item() == 276.0f);
  CHECK(sum_all(t) == 276.0);

  CHECK(sum_to(t, {3, 1}).shape() == Shape{3, 1});
  CHECK(sum_to(t, {3, 1}).to_vector() ==
        values({(0 + 1 + 2 + 3) + (12 + 13 + 14 + 15), (4 + 5 + 6 + 7) + (16 + 17 + 18 + 19),
                (8 + 9 + 10 + 11) + (20 + 21 + 22 + 23)}));
  CHECK(sum_to(t, {4}).to_vector() == values({60, 66, 72, 78}));
  CHECK(sum_to(t, {}).item() == 276.0f);
  CHECK(sum_to(t, {2, 3, 4}).to_vector() == t.to_vector());
  CHECK_THROWS_AS(sum_to(t, {5}), Error);
}

TEST_CASE("tensor_ops: matmul with every transpose combination matches a naive loop", "[core]") {
  Rng rng(3);
  const int64_t m = 5, k = 7, n = 3;
  const Tensor a = rng.uniform_tensor({m, k}, -1, 1);
  const Tensor b = rng.uniform_tensor({k, n}, -1, 1);
  Tensor ref({m, n});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t p = 0; p < k; ++p) s += static_cast<double>(a.at({i, p})) * b.at({p, j});
      ref.set({i, j}, static_cast<float>(s));
    }
  const Tensor at = a.transpose(0, 1).contiguous();  // [k, m]
  const Tensor bt = b.transpose(0, 1).contiguous();  // [n, k]
  CHECK(max_abs_diff(matmul(a, b), ref) < 1e-5f);
  CHECK(max_abs_diff(matmul(at, b, true, false), ref) < 1e-5f);
  CHECK(max_abs_diff(matmul(a, bt, false, true), ref) < 1e-5f);
  CHECK(max_abs_diff(matmul(at, bt, true, true), ref) < 1e-5f);
  CHECK(max_abs_diff(matmul(a.transpose(0, 1).transpose(0, 1), b), ref) < 1e-5f);
  CHECK(max_abs_diff(matmul(a, b.transpose(0, 1), false, true), ref) < 1e-5f);  // strided input
  CHECK(matmul(Tensor::zeros({2, 0}), Tensor::zeros({0, 3})).to_vector() ==
        std::vector<float>(6, 0.0f));
  const std::string msg = error_message([&] { (void)matmul(a, a); });
  CHECK(msg.find("matmul") != std::string::npos);
  CHECK(msg.find("[5, 7]") != std::string::npos);
  CHECK_THROWS_AS(matmul(Tensor::zeros({2}), b), Error);
}

TEST_CASE("tensor_ops: map, zip, axpy_, scale_, all_finite", "[core]") {
  const Tensor a = arange({4});
  CHECK(map(a, [](float x) { return x * x; }).to_vector() == values({0, 1, 4, 9}));
  CHECK(zip(a, a, "t", [](float x, float y) { return x + y; }).to_vector() == values({0, 2, 4, 6}));
  CHECK_THROWS_AS(zip(a, Tensor::zeros({3}), "t", [](float x, float) { return x; }), Error);
  Tensor d = Tensor::ones({4});
  axpy_(d, 2.0f, a);
  CHECK(d.to_vector() == values({1, 3, 5, 7}));
  scale_(d, 0.5f);
  CHECK(d.to_vector() == values({0.5f, 1.5f, 2.5f, 3.5f}));
  CHECK(all_finite(d));
  d.set({2}, std::nanf(""));
  CHECK_FALSE(all_finite(d));
  d.set({2}, INFINITY);
  CHECK_FALSE(all_finite(d));
}

TEST_CASE("threads: set_num_threads round trip and error for 0", "[core]") {
  const int before = num_threads();
  CHECK(before >= 1);
  set_num_threads(1);
  CHECK(num_threads() == 1);
  set_num_threads(2);
  CHECK(num_threads() == 2);
  const std::string msg = error_message([] { set_num_threads(0); });
  CHECK(msg.find("0") != std::string::npos);
  CHECK_THROWS_AS(set_num_threads(-3), Error);
  set_num_threads(before);
  CHECK(num_threads() == before);
}

}  // namespace bitgrad::core
