// chart.cpp: tick selection, layout and rendering of LineChart, and render_grid.
// The tick rule is the classic 1-2-5 "nice numbers" choice (Heckbert, "Nice numbers for graph
// labels", Graphics Gems, 1990), scored by closeness to a target number of intervals.
#include "viz/chart.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "core/error.hpp"
#include "viz/font.hpp"

namespace bitgrad::viz {

namespace {

constexpr std::array<Rgb, 10> kPalette = {
    Rgb{31, 119, 180}, Rgb{255, 127, 14}, Rgb{44, 160, 44},  Rgb{214, 39, 40},
    Rgb{148, 103, 189}, Rgb{140, 86, 75}, Rgb{227, 119, 194}, Rgb{127, 127, 127},
    Rgb{188, 189, 34},  Rgb{23, 190, 207}};

// Text scale: 2 on charts large enough to afford it, else 1.
int text_scale(int width, int height) { return width >= 300 && height >= 300 ? 2 : 1; }

// `text`, cut to at most max_width pixels at `scale` with ".." marking the cut.
std::string fit_text(std::string_view text, int max_width, int scale) {
  if (text_width(text, scale) <= max_width) return std::string(text);
  const int chars = std::max(max_width / (kAdvance * scale), 0);
  if (chars <= 2) return std::string(text.substr(0, static_cast<size_t>(chars)));
  return std::string(text.substr(0, static_cast<size_t>(chars - 2))) + "..";
}

// A tick value printed with the decimals its step m x 10^e needs.
std::string format_tick(double value, int e, double max_abs) {
  if (value == 0.0) value = 0.0;  // no "-0"
  char buffer[64];
  if (max_abs >= 1e7 || e < -6) {
    const int digits =
        std::clamp(static_cast<int>(std::floor(std::log10(max_abs))) - e + 1, 1, 12);
    std::snprintf(buffer, sizeof buffer, "%.*g", digits, value);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.*f", std::max(0, -e), value);
  }
  return buffer;
}

// Everything render() needs besides the chart itself.
struct Layout {
  PlotArea area;
  int scale = 1;
  int pad = 0, gap = 0, tick = 0, char_height = 0;
  // The legend: a grid of entries (swatch + name) in equal-width columns, centred above the plot,
  // entry i at row i / legend_columns, column i % legend_columns.
  int legend_scale = 1;
  int swatch = 0, spacing = 0;
  int legend_top = 0, legend_columns = 1, legend_rows = 0, legend_cell = 0;
  std::vector<std::string> names;  // legend text per series, cut to fit
};

// Lays the legend out at text scale `scale` in `room` pixels of width.
void layout_legend(const LineChart& chart, int room, int scale, Layout& l) {
  l.legend_scale = scale;
  l.swatch = 16 * scale;
  l.spacing = 3 * kAdvance * scale;
  l.names.clear();
  l.legend_cell = 0;
  const size_t n = chart.series().size();
  for (size_t i = 0; i < n; ++i) {
    const std::string& name = chart.series()[i].name;
    l.names.push_back(fit_text(name.empty() ? "series " + std::to_string(i + 1) : name,
                               room - l.swatch - l.gap, scale));
    l.legend_cell =
        std::max(l.legend_cell, l.swatch + l.gap + text_width(l.names.back(), scale));
  }
  l.legend_columns = std::clamp((room + l.spacing) / (l.legend_cell + l.spacing), 1,
                                std::max(static_cast<int>(n), 1));
  l.legend_rows = static_cast<int>((n + static_cast<size_t>(l.legend_columns) - 1) /
                                   static_cast<size_t>(l.legend_columns));
}

Layout compute_layout(const LineChart& chart, int width, int height) {
  check_lazy(width >= LineChart::kMinWidth && height >= LineChart::kMinHeight, [&] {
    return "LineChart: expected a size of at least " + std::to_string(LineChart::kMinWidth) +
           " x " + std::to_string(LineChart::kMinHeight) + " pixels, got " +
           std::to_string(width) + " x " + std::to_string(height);
  });
  check_lazy(width <= Image::kMaxSide && height <= Image::kMaxSide, [&] {
    return "LineChart: expected a size of at most " + std::to_string(Image::kMaxSide) + " x " +
           std::to_string(Image::kMaxSide) + " pixels, got " + std::to_string(width) + " x " +
           std::to_string(height);
  });
  Layout l;
  const int s = l.scale = text_scale(width, height);
  l.char_height = kGlyphHeight * s;
  l.pad = 6 * s;
  l.gap = 3 * s;
  l.tick = 3 * s;

  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_lo = kInf, x_hi = -kInf, y_lo = kInf, y_hi = -kInf;
  bool integer_x = true;
  for (const Series& series : chart.series())
    for (size_t i = 0; i < series.x.size(); ++i) {
      const double x = series.x[i], y = series.y[i];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, y);
      y_hi = std::max(y_hi, y);
      integer_x = integer_x && std::floor(x) == x;
    }
  if (x_lo > x_hi) {  // no finite point
    x_lo = y_lo = 0.0;
    x_hi = y_hi = 1.0;
    integer_x = false;
  }

  PlotArea& a = l.area;
  a.y = nice_ticks(y_lo, y_hi, std::clamp(height / 80, 2, 8), false);
  int y_labels_width = 0;
  for (const std::string& label : a.y.labels)
    y_labels_width = std::max(y_labels_width, text_width(label, s));
  a.left = l.pad + (chart.y_label().empty() ? 0 : l.char_height + 2 * l.gap) + y_labels_width +
           l.gap + l.tick;
  // Fewer x intervals until the labels fit side by side with two characters between them.
  const int x_room = width - a.left - l.pad;
  for (int target = std::clamp(width / 110, 2, 10);; --target) {
    a.x = nice_ticks(x_lo, x_hi, target, integer_x);
    int widest = 0;
    for (const std::string& label : a.x.labels) widest = std::max(widest, text_width(label, s));
    const int needed = static_cast<int>(a.x.values.size()) * (widest + 2 * kAdvance * s);
    if (target == 1 || needed <= x_room) break;
  }
  a.right = width - 1 - l.pad - text_width(a.x.labels.back(), s) / 2;

  // Many series: smaller legend text rather than a legend taller than two rows.
  const int legend_room = std::max(a.right - a.left, 1);
  layout_legend(chart, legend_room, s, l);
  if (l.legend_rows > 2 && s > 1) layout_legend(chart, legend_room, 1, l);

  a.top = l.pad + (chart.title().empty() ? 0 : l.char_height + 2 * l.gap);
  l.legend_top = a.top;
  const int legend_height = l.legend_rows * (kGlyphHeight * l.legend_scale + l.gap);
  a.top += legend_height + (legend_height > 0 ? 2 * l.gap : 0);
  a.bottom = height - 1 - l.pad - (chart.x_label().empty() ? 0 : l.char_height + 2 * l.gap) -
             l.char_height - l.gap - l.tick;
  check_lazy(a.right - a.left >= 40 && a.bottom - a.top >= 40, [&] {
    return "LineChart: a " + std::to_string(width) + " x " + std::to_string(height) +
           " picture leaves a plot area of " + std::to_string(a.right - a.left + 1) + " x " +
           std::to_string(a.bottom - a.top + 1) +
           " pixels after titles, labels and legend; expected at least 41 x 41 (make it larger)";
  });
  return l;
}

void draw_bold_text(Image& image, int x, int y, std::string_view text, Rgb color, int scale) {
  draw_text(image, x, y, text, color, scale);
  if (scale >= 2) draw_text(image, x + 1, y, text, color, scale);
}

}  // namespace

Rgb series_color(size_t index) {
  if (index < kPalette.size()) return kPalette[index];
  // HSV with S = 0.7, V = 0.85 and the hue stepped by the golden angle.
  const double hue =
      std::fmod(static_cast<double>(index - kPalette.size()) * 137.50776 + 15.0, 360.0);
  const double c = 0.85 * 0.7;
  const double h = hue / 60.0;
  const double x = c * (1.0 - std::abs(std::fmod(h, 2.0) - 1.0));
  // (r, g, b) before adding m, for each 60-degree sector of the hue circle.
  const std::array<std::array<double, 3>, 6> sectors = {std::array<double, 3>{c, x, 0},
                                                        {x, c, 0}, {0, c, x}, {0, x, c},
                                                        {x, 0, c}, {c, 0, x}};
  const auto& [r, g, b] = sectors[std::min(static_cast<size_t>(h), size_t{5})];
  const double m = 0.85 - c;
  const auto byte = [](double v) { return static_cast<uint8_t>(std::lround(v * 255.0)); };
  return Rgb{byte(r + m), byte(g + m), byte(b + m)};
}

Ticks nice_ticks(double lo, double hi, int target_intervals, bool integer_steps) {
  check_lazy(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, [&] {
    return "nice_ticks: expected a finite range lo <= hi, got [" + std::to_string(lo) + ", " +
           std::to_string(hi) + "]";
  });
  check_lazy(target_intervals >= 1 && target_intervals <= 100, [&] {
    return "nice_ticks: expected 1..100 target intervals, got " +
           std::to_string(target_intervals);
  });
  // A range too narrow to tell apart from its magnitude is treated as constant.
  if (hi - lo <= 1e-9 * std::max(std::abs(lo), std::abs(hi))) {
    const double widen = integer_steps ? 1.0 : (lo == 0.0 ? 1.0 : std::abs(lo) * 0.1);
    lo -= widen;
    hi += widen;
  }
  const double span = hi - lo;
  check_lazy(std::isfinite(span), [&] {
    return "nice_ticks: the range [" + std::to_string(lo) + ", " + std::to_string(hi) +
           "] is too wide for a double";
  });

  // Candidates m x 10^e around span / target; value i of the axis is (first + i) * m * 10^e,
  // computed by dividing by 10^-e for negative e so that 0.2 * 3 prints as 0.6.
  const auto value_of = [](double index, int m, int e) {
    return e >= 0 ? index * m * std::pow(10.0, e) : index * m / std::pow(10.0, -e);
  };
  const int k = static_cast<int>(std::floor(std::log10(span / target_intervals)));
  bool found = false;
  double best_score = 0.0, best_range = 0.0, best_first = 0.0, best_count = 0.0;
  int best_m = 1, best_e = 0;
  const int e_first = integer_steps ? std::max(k - 1, 0) : k - 1;
  const int e_last = integer_steps ? std::max(k + 1, 0) : k + 1;
  for (int e = e_first; e <= e_last; ++e) {
    for (const int m : {1, 2, 5}) {
      const double step = value_of(1.0, m, e);
      const double first = std::floor(lo / step + 1e-9);
      const double count = std::max(std::ceil(hi / step - 1e-9) - first, 1.0);
      const double score = std::abs(count - target_intervals);
      const double range = count * step;
      // Closest interval count; ties: the tighter range, then the larger step (later candidate).
      if (!found || score < best_score || (score == best_score && range <= best_range)) {
        found = true;
        best_score = score;
        best_range = range;
        best_first = first;
        best_count = count;
        best_m = m;
        best_e = e;
      }
    }
  }
  assert(found);
  Ticks t;
  t.step = value_of(1.0, best_m, best_e);
  for (double i = 0; i <= best_count; i += 1.0)
    t.values.push_back(value_of(best_first + i, best_m, best_e));
  t.lo = t.values.front();
  t.hi = t.values.back();
  const double max_abs = std::max(std::abs(t.lo), std::abs(t.hi));
  for (const double v : t.values) t.labels.push_back(format_tick(v, best_e, max_abs));
  return t;
}

int PlotArea::pixel_x(double value) const {
  return left + static_cast<int>(std::lround((value - x.lo) / (x.hi - x.lo) * (right - left)));
}

int PlotArea::pixel_y(double value) const {
  return bottom - static_cast<int>(std::lround((value - y.lo) / (y.hi - y.lo) * (bottom - top)));
}

LineChart& LineChart::set_title(std::string title) {
  title_ = std::move(title);
  return *this;
}

LineChart& LineChart::set_x_label(std::string label) {
  x_label_ = std::move(label);
  return *this;
}

LineChart& LineChart::set_y_label(std::string label) {
  y_label_ = std::move(label);
  return *this;
}

LineChart& LineChart::add_series(std::string name, std::vector<double> x, std::vector<double> y) {
  check_lazy(x.size() == y.size(), [&] {
    return "LineChart::add_series '" + name + "': expected as many x as y values, got " +
           std::to_string(x.size()) + " x and " + std::to_string(y.size()) + " y";
  });
  series_.push_back(Series{std::move(name), std::move(x), std::move(y)});
  return *this;
}

PlotArea LineChart::layout(int width, int height) const {
  return compute_layout(*this, width, height).area;
}

Image LineChart::render(int width, int height) const {
  const Layout l = compute_layout(*this, width, height);
  const PlotArea& a = l.area;
  const int s = l.scale;
  Image image(width, height, kWhite);

  for (const double v : a.x.values)
    draw_line(image, a.pixel_x(v), a.top, a.pixel_x(v), a.bottom, kGridColor);
  for (const double v : a.y.values)
    draw_line(image, a.left, a.pixel_y(v), a.right, a.pixel_y(v), kGridColor);
  draw_line(image, a.left, a.top, a.right, a.top, kFrameColor);
  draw_line(image, a.left, a.bottom, a.right, a.bottom, kFrameColor);
  draw_line(image, a.left, a.top, a.left, a.bottom, kFrameColor);
  draw_line(image, a.right, a.top, a.right, a.bottom, kFrameColor);

  for (size_t i = 0; i < a.x.values.size(); ++i) {
    const int px = a.pixel_x(a.x.values[i]);
    draw_line(image, px, a.bottom + 1, px, a.bottom + l.tick, kFrameColor);
    const std::string& label = a.x.labels[i];
    draw_text(image, px - text_width(label, s) / 2, a.bottom + l.tick + l.gap, label, kTextColor,
              s);
  }
  for (size_t i = 0; i < a.y.values.size(); ++i) {
    const int py = a.pixel_y(a.y.values[i]);
    draw_line(image, a.left - l.tick, py, a.left - 1, py, kFrameColor);
    const std::string& label = a.y.labels[i];
    draw_text(image, a.left - l.tick - l.gap - text_width(label, s), py - l.char_height / 2, label,
              kTextColor, s);
  }

  for (size_t i = 0; i < series_.size(); ++i) {
    const Series& series = series_[i];
    const Rgb color = series_color(i);
    std::vector<std::pair<int, int>> points;
    for (size_t j = 0; j < series.x.size(); ++j)
      if (std::isfinite(series.x[j]) && std::isfinite(series.y[j]))
        points.emplace_back(a.pixel_x(series.x[j]), a.pixel_y(series.y[j]));
    for (size_t j = 1; j < points.size(); ++j)
      draw_line(image, points[j - 1].first, points[j - 1].second, points[j].first, points[j].second,
                color, kLineThickness);
    if (points.size() <= kMarkerMaxPoints)
      for (const auto& [px, py] : points) fill_rect(image, px - 2, py - 2, 5, 5, color);
  }

  if (!title_.empty()) {
    const std::string title = fit_text(title_, width - 2 * l.pad, s);
    draw_bold_text(image, (width - text_width(title, s)) / 2, l.pad, title, kTextColor, s);
  }
  if (!x_label_.empty()) {
    const std::string label = fit_text(x_label_, a.right - a.left, s);
    draw_text(image, (a.left + a.right) / 2 - text_width(label, s) / 2,
              height - l.pad - l.char_height, label, kTextColor, s);
  }
  if (!y_label_.empty()) {
    const std::string label = fit_text(y_label_, a.bottom - a.top, s);
    draw_text_up(image, l.pad, (a.top + a.bottom) / 2 - text_width(label, s) / 2, label,
                 kTextColor, s);
  }
  const int n = static_cast<int>(series_.size());
  const int block = l.legend_columns * l.legend_cell + (l.legend_columns - 1) * l.spacing;
  const int legend_left = (a.left + a.right) / 2 - block / 2;
  const int legend_char_height = kGlyphHeight * l.legend_scale;
  for (int i = 0; i < n; ++i) {
    const int x = legend_left + (i % l.legend_columns) * (l.legend_cell + l.spacing);
    const int y = l.legend_top + (i / l.legend_columns) * (legend_char_height + l.gap);
    const int mid = y + legend_char_height / 2;
    const Rgb color = series_color(static_cast<size_t>(i));
    draw_line(image, x, mid, x + l.swatch - 1, mid, color, kLineThickness);
    fill_rect(image, x + l.swatch / 2 - 2, mid - 2, 5, 5, color);
    draw_text(image, x + l.swatch + l.gap, y, l.names[static_cast<size_t>(i)], kTextColor,
              l.legend_scale);
  }
  return image;
}

int grid_title_height(int width, std::string_view title) {
  if (title.empty()) return 0;
  const int s = width >= 600 ? 2 : 1;
  return (kGlyphHeight + 8) * s;
}

Image render_grid(const std::vector<LineChart>& charts, int cols, int panel_w, int panel_h,
                  std::string_view title) {
  check(!charts.empty(), "render_grid: expected at least one chart, got none");
  check_lazy(cols >= 1,
             [&] { return "render_grid: expected cols >= 1, got " + std::to_string(cols); });
  check_lazy(panel_w >= 1 && panel_h >= 1 && panel_w <= Image::kMaxSide &&
                 panel_h <= Image::kMaxSide,
             [&] {
               return "render_grid: expected panel sizes in [1, " +
                      std::to_string(Image::kMaxSide) + "], got " + std::to_string(panel_w) +
                      " x " + std::to_string(panel_h);
             });
  const int columns = static_cast<int>(std::min(static_cast<size_t>(cols), charts.size()));
  const int rows = static_cast<int>((charts.size() + static_cast<size_t>(columns) - 1) /
                                    static_cast<size_t>(columns));
  const int64_t width = static_cast<int64_t>(columns) * panel_w;
  const int band =
      grid_title_height(static_cast<int>(std::min<int64_t>(width, Image::kMaxSide)), title);
  const int64_t height = static_cast<int64_t>(rows) * panel_h + band;
  check_lazy(width <= Image::kMaxSide && height <= Image::kMaxSide, [&] {
    return "render_grid: expected a picture of at most " + std::to_string(Image::kMaxSide) +
           " pixels a side, got " + std::to_string(width) + " x " + std::to_string(height);
  });
  Image image(static_cast<int>(width), static_cast<int>(height), kWhite);
  if (band > 0) {
    const int s = band / (kGlyphHeight + 8);
    const std::string text = fit_text(title, static_cast<int>(width) - 8 * s, s);
    draw_bold_text(image, (static_cast<int>(width) - text_width(text, s)) / 2, 4 * s, text,
                   kTextColor, s);
  }
  for (size_t i = 0; i < charts.size(); ++i) {
    const int col = static_cast<int>(i) % columns;
    const int row = static_cast<int>(i) / columns;
    blit(image, charts[i].render(panel_w, panel_h), col * panel_w, band + row * panel_h);
  }
  return image;
}

}  // namespace bitgrad::viz
