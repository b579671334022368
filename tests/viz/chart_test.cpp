// chart_test.cpp: the bitmap font (glyph table, text width, pixel-exact drawing, rotation), nice
// ticks, series colours, and LineChart/render_grid pictures checked pixel by pixel: data lands on
// the expected rows, lines are continuous, NaN is skipped, degenerate ranges do not divide by zero.
#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/rng.hpp"
#include "test_util.hpp"
#include "viz/chart.hpp"
#include "viz/font.hpp"
#include "viz/image.hpp"

namespace {

using bitgrad::viz::Image;
using bitgrad::viz::LineChart;
using bitgrad::viz::PlotArea;
using bitgrad::viz::Rgb;
using bitgrad::viz::series_color;
using bitgrad::viz::Ticks;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool has_color(const Image& image, int x0, int y0, int x1, int y1, Rgb color) {
  for (int y = std::max(y0, 0); y <= std::min(y1, image.height() - 1); ++y)
    for (int x = std::max(x0, 0); x <= std::min(x1, image.width() - 1); ++x)
      if (image.at(x, y) == color) return true;
  return false;
}

std::vector<double> range(int n) {
  std::vector<double> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

// True when step is m x 10^k with m in {1, 2, 5}.
bool is_nice_step(double step) {
  const double k = std::floor(std::log10(step) + 1e-9);
  const double m = step / std::pow(10.0, k);
  return std::abs(m - 1) < 1e-6 || std::abs(m - 2) < 1e-6 || std::abs(m - 5) < 1e-6;
}

}  // namespace

TEST_CASE("font: every printable glyph is drawn, distinct, and 5 pixels wide", "[viz]") {
  std::set<bitgrad::viz::Glyph> seen;
  for (int c = 32; c <= 126; ++c) {
    const bitgrad::viz::Glyph& g = bitgrad::viz::glyph(static_cast<char>(c));
    int bits = 0;
    for (const uint8_t row : g) {
      CHECK(row < 32);  // only the 5 low bits
      bits += std::popcount(static_cast<unsigned>(row));
    }
    INFO("character " << c << " '" << static_cast<char>(c) << "'");
    if (c == ' ')
      CHECK(bits == 0);
    else
      CHECK(bits > 0);
    seen.insert(g);
  }
  CHECK(seen.size() == 95);  // no two characters share a glyph
  CHECK(&bitgrad::viz::glyph('\n') == &bitgrad::viz::glyph('?'));
  CHECK(&bitgrad::viz::glyph(static_cast<char>(200)) == &bitgrad::viz::glyph('?'));
}

TEST_CASE("font: text width is length times advance, drawing is pixel-exact", "[viz]") {
  CHECK(bitgrad::viz::text_width("", 1) == 0);
  CHECK(bitgrad::viz::text_width("epoch", 1) == 5 * bitgrad::viz::kAdvance);
  CHECK(bitgrad::viz::text_width("test_top1", 3) == 9 * bitgrad::viz::kAdvance * 3);

  const Rgb ink{200, 0, 0};
  const std::string text = "A7q";
  for (const int scale : {1, 3}) {
    Image image(60, 30);
    bitgrad::viz::draw_text(image, 2, 4, text, ink, scale);
    for (int y = 0; y < 30; ++y)
      for (int x = 0; x < 60; ++x) {
        bool expected = false;
        const int u = (x - 2) / scale, v = (y - 4) / scale;
        if (x >= 2 && y >= 4 && v < bitgrad::viz::kGlyphHeight) {
          const size_t i = static_cast<size_t>(u / bitgrad::viz::kAdvance);
          const int col = u % bitgrad::viz::kAdvance;
          if (i < text.size() && col < bitgrad::viz::kGlyphWidth)
            expected = (bitgrad::viz::glyph(text[i])[static_cast<size_t>(v)] >> (4 - col)) & 1;
        }
        INFO("scale " << scale << " pixel " << x << ", " << y);
        REQUIRE((image.at(x, y) == ink) == expected);
      }
  }

  // Rotated: font pixel (u, v) of the unrotated text lands at (x + v, y + width - 1 - u).
  Image flat(40, 10), up(10, 40);
  bitgrad::viz::draw_text(flat, 0, 0, "Ab", ink, 1);
  bitgrad::viz::draw_text_up(up, 0, 0, "Ab", ink, 1);
  const int width = bitgrad::viz::text_width("Ab", 1);
  for (int v = 0; v < bitgrad::viz::kGlyphHeight; ++v)
    for (int u = 0; u < width; ++u) CHECK(flat.at(u, v) == up.at(v, width - 1 - u));

  CHECK_THROWS_AS(bitgrad::viz::draw_text(flat, 0, 0, "x", ink, 0), bitgrad::Error);
  bitgrad::viz::draw_text(flat, -100, -100, "clipped", ink, 2);  // outside: nothing thrown
}

TEST_CASE("nice_ticks picks 1-2-5 steps close to the target", "[viz]") {
  const Ticks unit = bitgrad::viz::nice_ticks(0.0, 1.0);
  CHECK(unit.step == Approx(0.2));
  REQUIRE(unit.values.size() == 6);
  for (size_t i = 0; i < 6; ++i) CHECK(unit.values[i] == Approx(0.2 * static_cast<double>(i)));
  CHECK(unit.values.front() == 0.0);
  CHECK(unit.values.back() == 1.0);
  CHECK(unit.labels == std::vector<std::string>{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"});

  const Ticks accuracy = bitgrad::viz::nice_ticks(83.1, 92.4);
  CHECK((accuracy.step == 2.0 || accuracy.step == 1.0));
  CHECK(accuracy.lo <= 83.1);
  CHECK(accuracy.hi >= 92.4);
  CHECK(accuracy.lo == 82.0);
  CHECK(accuracy.hi == 94.0);
  CHECK(accuracy.labels.front() == "82");

  const Ticks epochs = bitgrad::viz::nice_ticks(1.0, 3.0, 5, true);
  CHECK(epochs.values == std::vector<double>{1.0, 2.0, 3.0});
  CHECK(epochs.labels == std::vector<std::string>{"1", "2", "3"});

  const Ticks loss = bitgrad::viz::nice_ticks(0.0123, 0.0871);
  CHECK(loss.step == Approx(0.02));
  CHECK(loss.labels.front() == "0.00");
  CHECK(loss.labels.back() == "0.10");

  const Ticks negative = bitgrad::viz::nice_ticks(-7.5, 2.5);
  CHECK(negative.lo == -8.0);
  CHECK(negative.hi == 4.0);
  CHECK(std::find(negative.labels.begin(), negative.labels.end(), "0") != negative.labels.end());

  // Extreme magnitudes switch to exponent labels, still distinct.
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{{1e8, 5e8}, {1e-9, 5e-9}}) {
    const Ticks t = bitgrad::viz::nice_ticks(lo, hi);
    CHECK(std::set<std::string>(t.labels.begin(), t.labels.end()).size() == t.labels.size());
    CHECK(t.labels.back().find('e') != std::string::npos);
  }
}

TEST_CASE("nice_ticks properties on random ranges", "[viz]") {
  bitgrad::core::Rng rng(11);
  for (int trial = 0; trial < 500; ++trial) {
    const double scale = std::pow(10.0, rng.uniform(-5.0f, 6.0f));
    const double a = rng.uniform(-1.0f, 1.0f) * scale, b = rng.uniform(-1.0f, 1.0f) * scale;
    const double lo = std::min(a, b), hi = std::max(a, b);
    const int target = 2 + static_cast<int>(rng.below(8));
    const Ticks t = bitgrad::viz::nice_ticks(lo, hi, target);
    INFO("range [" << lo << ", " << hi << "] target " << target);
    CHECK(t.lo <= lo);
    CHECK(t.hi >= hi);
    CHECK(is_nice_step(t.step));
    const double intervals = (t.hi - t.lo) / t.step;
    CHECK(std::abs(intervals - std::round(intervals)) < 1e-6);
    CHECK(t.values.size() == static_cast<size_t>(std::round(intervals)) + 1);
    CHECK(t.values.size() >= 2);
    CHECK(static_cast<int>(t.values.size()) - 1 <= 3 * target);
    CHECK(t.labels.size() == t.values.size());
    CHECK(std::set<std::string>(t.labels.begin(), t.labels.end()).size() == t.labels.size());
  }
}

TEST_CASE("nice_ticks: constant ranges are widened, bad ranges rejected", "[viz]") {
  for (const double v : {0.0, 5.0, -3.25, 84.63, 1e-12, 1e9}) {
    const Ticks t = bitgrad::viz::nice_ticks(v, v);
    INFO("constant " << v);
    CHECK(t.lo < v);
    CHECK(t.hi > v);
    CHECK(t.step > 0);
    CHECK(std::isfinite(t.step));
  }
  const Ticks one_epoch = bitgrad::viz::nice_ticks(1.0, 1.0, 5, true);
  CHECK(one_epoch.values == std::vector<double>{0.0, 1.0, 2.0});
  CHECK_THROWS_AS(bitgrad::viz::nice_ticks(kNaN, 1.0), bitgrad::Error);
  CHECK_THROWS_AS(bitgrad::viz::nice_ticks(0.0, kInf), bitgrad::Error);
  CHECK(bitgrad::test::error_message([] { bitgrad::viz::nice_ticks(2.0, 1.0); })
            .find("lo <= hi") != std::string::npos);
}

TEST_CASE("series colours are distinct and never background, grid, frame or text", "[viz]") {
  std::set<std::tuple<int, int, int>> seen;
  for (size_t i = 0; i < 64; ++i) {
    const Rgb c = series_color(i);
    seen.insert({c.r, c.g, c.b});
    CHECK(c != bitgrad::viz::kWhite);
    CHECK(c != bitgrad::viz::kGridColor);
    CHECK(c != bitgrad::viz::kFrameColor);
    CHECK(c != bitgrad::viz::kTextColor);
  }
  CHECK(seen.size() == 64);
}

TEST_CASE("LineChart: a horizontal series lands on the expected pixel row", "[viz]") {
  // Series at y = 0 and y = 1 fix the y axis to exactly [0, 1]; the third is a line at y = 0.5.
  LineChart chart;
  chart.set_title("rows").set_x_label("x").set_y_label("y");
  const std::vector<double> x = range(100);
  chart.add_series("zero", x, std::vector<double>(100, 0.0));
  chart.add_series("one", x, std::vector<double>(100, 1.0));
  chart.add_series("half", x, std::vector<double>(100, 0.5));
  const int w = 640, h = 400;
  const PlotArea a = chart.layout(w, h);
  REQUIRE(a.y.lo == 0.0);
  REQUIRE(a.y.hi == 1.0);
  REQUIRE(a.x.lo == 0.0);
  CHECK(a.x.hi >= 99.0);
  CHECK(a.pixel_y(0.0) == a.bottom);
  CHECK(a.pixel_y(1.0) == a.top);
  CHECK(a.pixel_x(0.0) == a.left);
  CHECK(a.pixel_x(a.x.hi) == a.right);
  CHECK(0 < a.left);
  CHECK(a.left < a.right);
  CHECK(a.right < w - 1);
  CHECK(0 < a.top);
  CHECK(a.top < a.bottom);
  CHECK(a.bottom < h - 1);

  const Image image = chart.render(w, h);
  REQUIRE(image.width() == w);
  REQUIRE(image.height() == h);
  // The half line: rows bottom - round((bottom - top) / 2) and the one below (thickness 2), in
  // every column it spans, and nothing of its colour right above or below.
  const int row = a.bottom - static_cast<int>(std::lround((a.bottom - a.top) * 0.5));
  const Rgb half = series_color(2);
  for (int px = a.pixel_x(0.0); px <= a.pixel_x(99.0); ++px) {
    INFO("column " << px << " row " << row);
    REQUIRE(image.at(px, row) == half);
    REQUIRE(image.at(px, row + 1) == half);
    REQUIRE(image.at(px, row - 1) != half);
    REQUIRE(image.at(px, row + 2) != half);
  }
  CHECK(image.at((a.left + a.right) / 2, a.top) == series_color(1));
  CHECK(image.at((a.left + a.right) / 2, a.bottom) == series_color(0));
  // Grid lines at interior y ticks, frame on the plot border, title and legend above the plot.
  const int grid_row = a.pixel_y(0.2);
  CHECK(image.at(a.left + 3, grid_row) == bitgrad::viz::kGridColor);
  CHECK(image.at(a.left, a.pixel_y(0.3)) == bitgrad::viz::kFrameColor);
  CHECK(has_color(image, 0, 0, w - 1, 20, bitgrad::viz::kTextColor));  // title
  for (size_t i = 0; i < 3; ++i)
    CHECK(has_color(image, 0, 0, w - 1, a.top - 2, series_color(i)));  // legend swatches
  CHECK(has_color(image, 0, a.bottom + 2, w - 1, h - 1, bitgrad::viz::kTextColor));  // x labels
  CHECK(has_color(image, 0, a.top, a.left - 2, a.bottom, bitgrad::viz::kTextColor));  // y labels
}

TEST_CASE("LineChart: many series share a compact legend above the plot", "[viz]") {
  LineChart chart;
  chart.set_title("six runs");
  for (int i = 0; i < 6; ++i)
    chart.add_series("apot-ewgs-seed" + std::to_string(i), {0.0, 1.0}, {0.0, 1.0 + i});
  const PlotArea a = chart.layout(500, 420);
  // Six long names would take six rows at text scale 2; the legend stays within two rows.
  CHECK(a.top < 420 / 4);
  const Image image = chart.render(500, 420);
  for (size_t i = 0; i < 6; ++i) CHECK(has_color(image, 0, 0, 499, a.top - 2, series_color(i)));
}

TEST_CASE("LineChart: lines are continuous between far-apart points", "[viz]") {
  LineChart chart;
  chart.add_series("steep", {0.0, 1.0, 2.0}, {0.0, 10.0, 0.0});
  const PlotArea a = chart.layout(400, 300);
  const Image image = chart.render(400, 300);
  const Rgb ink = series_color(0);
  // Every row between the low and the high point holds ink on each flank, every column too.
  for (int y = a.pixel_y(10.0); y <= a.pixel_y(0.0); ++y) {
    CHECK(has_color(image, a.pixel_x(0.0) - 1, y, a.pixel_x(1.0), y, ink));
    CHECK(has_color(image, a.pixel_x(1.0), y, a.pixel_x(2.0) + 1, y, ink));
  }
  for (int x = a.pixel_x(0.0); x <= a.pixel_x(2.0); ++x)
    CHECK(has_color(image, x, a.top, x, a.bottom + 1, ink));
}

TEST_CASE("LineChart: constant series, single points and empty charts render", "[viz]") {
  LineChart constant;
  constant.add_series("flat", {1.0, 2.0, 3.0}, {3.0, 3.0, 3.0});
  const PlotArea ca = constant.layout(300, 200);
  CHECK(ca.y.lo < 3.0);
  CHECK(ca.y.hi > 3.0);
  const Image ci = constant.render(300, 200);
  CHECK(ci.at(ca.pixel_x(2.0), ca.pixel_y(3.0)) == series_color(0));

  LineChart single;
  single.add_series("one point", {5.0}, {0.25});
  const PlotArea sa = single.layout(300, 200);
  CHECK(sa.x.lo < 5.0);
  CHECK(sa.x.hi > 5.0);
  const Image si = single.render(300, 200);  // a lone point shows as a 5 x 5 marker
  const int px = sa.pixel_x(5.0), py = sa.pixel_y(0.25);
  for (int dy = -2; dy <= 2; ++dy)
    for (int dx = -2; dx <= 2; ++dx) CHECK(si.at(px + dx, py + dy) == series_color(0));

  LineChart empty;
  empty.set_title("nothing yet");
  const PlotArea ea = empty.layout(300, 200);
  CHECK(ea.x.lo == 0.0);
  CHECK(ea.x.hi == 1.0);
  CHECK(empty.render(300, 200).width() == 300);

  LineChart all_nan;
  all_nan.add_series("nan", {kNaN, 1.0}, {2.0, kNaN});
  CHECK(all_nan.layout(300, 200).y.hi == 1.0);
  const PlotArea na = all_nan.layout(300, 200);
  // No finite point: no ink inside the plot area (the legend swatch above it is the only ink).
  const Image ni = all_nan.render(300, 200);
  CHECK_FALSE(has_color(ni, na.left + 1, na.top + 1, na.right - 1, na.bottom - 1, series_color(0)));
  CHECK(has_color(ni, 0, 0, 299, na.top - 1, series_color(0)));
}

TEST_CASE("LineChart: NaN and infinite points are skipped and the line joins their neighbours",
          "[viz]") {
  LineChart chart;
  chart.add_series("gappy", {0.0, 1.0, 2.0, 3.0, 4.0, kNaN}, {0.0, kNaN, 2.0, kInf, 4.0, 100.0});
  const PlotArea a = chart.layout(400, 300);
  // The point (NaN, 100) and the infinities do not stretch the axes.
  CHECK(a.x.lo == 0.0);
  CHECK(a.x.hi == 4.0);
  CHECK(a.y.lo == 0.0);
  CHECK(a.y.hi == 4.0);
  const Image image = chart.render(400, 300);
  const Rgb ink = series_color(0);
  // (0, 0) -> (2, 2) and (2, 2) -> (4, 4) are drawn straight through the skipped points.
  for (const double x : {0.5, 1.0, 1.5, 2.5, 3.0, 3.5})
    CHECK(has_color(image, a.pixel_x(x) - 1, a.pixel_y(x) - 1, a.pixel_x(x) + 1,
                    a.pixel_y(x) + 1, ink));
}

TEST_CASE("LineChart rejects mismatched series and too-small pictures", "[viz]") {
  LineChart chart;
  CHECK(bitgrad::test::error_message([&] { chart.add_series("bad", {1.0, 2.0}, {1.0}); })
            .find("2 x and 1 y") != std::string::npos);
  chart.add_series("ok", {1.0, 2.0}, {1.0, 2.0});
  CHECK(bitgrad::test::error_message([&] { chart.render(100, 300); }).find("at least") !=
        std::string::npos);
  CHECK_THROWS_AS(chart.render(300, 50), bitgrad::Error);
}

TEST_CASE("render_grid places each chart's own picture in its cell under the title", "[viz]") {
  std::vector<LineChart> charts(3);
  charts[0].set_title("a").add_series("s", {0.0, 1.0}, {0.0, 1.0});
  charts[1].set_title("b").add_series("s", {0.0, 1.0}, {1.0, 0.0});
  charts[2].set_title("c").add_series("s", {0.0, 1.0, 2.0}, {1.0, 3.0, 2.0});
  const int pw = 260, ph = 180;
  const Image grid = bitgrad::viz::render_grid(charts, 2, pw, ph, "three charts");
  const int band = bitgrad::viz::grid_title_height(2 * pw, "three charts");
  CHECK(band > 0);
  CHECK(bitgrad::viz::grid_title_height(2 * pw, "") == 0);
  REQUIRE(grid.width() == 2 * pw);
  REQUIRE(grid.height() == 2 * ph + band);
  CHECK(has_color(grid, 0, 0, grid.width() - 1, band - 1, bitgrad::viz::kTextColor));
  for (size_t i = 0; i < 3; ++i) {
    const Image panel = charts[i].render(pw, ph);
    const int ox = static_cast<int>(i % 2) * pw, oy = band + static_cast<int>(i / 2) * ph;
    size_t mismatches = 0;
    for (int y = 0; y < ph; ++y)
      for (int x = 0; x < pw; ++x) mismatches += grid.at(ox + x, oy + y) != panel.at(x, y);
    CHECK(mismatches == 0);
  }
  // The empty fourth cell stays white.
  CHECK_FALSE(has_color(grid, pw, band + ph, 2 * pw - 1, band + 2 * ph - 1, series_color(0)));

  CHECK_THROWS_AS(bitgrad::viz::render_grid({}, 2, pw, ph), bitgrad::Error);
  CHECK_THROWS_AS(bitgrad::viz::render_grid(charts, 0, pw, ph), bitgrad::Error);
}
