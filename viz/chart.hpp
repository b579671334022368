// chart.hpp: LineChart, a line chart of named (x, y) series rendered to an Image: automatic axis
// ranges with "nice" ticks (1, 2 or 5 x 10^k), tick labels, grid lines, a legend, one distinct
// colour per series, 2-pixel continuous lines. render_grid puts several charts side by side.
// Not here: log axes, several y axes per panel, error bars, manual axis ranges, anti-aliasing.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "viz/image.hpp"

namespace bitgrad::viz {

inline constexpr Rgb kTextColor{40, 40, 40};
inline constexpr Rgb kGridColor{225, 225, 225};
inline constexpr Rgb kFrameColor{90, 90, 90};

// The colour of series `index`: the ten Tableau-10 colours first, then hues stepped by the golden
// angle (137.5 degrees), so every index gets its own colour, never white or a grey of the frame.
Rgb series_color(size_t index);

// Axis ticks: the axis spans [lo, hi] = [values.front(), values.back()], values are lo + i * step
// (i = 0 .. intervals), step = m x 10^k with m in {1, 2, 5}; labels are the values printed with
// just enough decimals for the step (exponent form for magnitudes >= 1e7 or steps < 1e-6).
struct Ticks {
  double lo = 0.0;
  double hi = 1.0;
  double step = 0.2;
  std::vector<double> values;
  std::vector<std::string> labels;
};

// Nice ticks covering the data range [lo, hi] (finite, lo <= hi; Error otherwise): of the steps
// 1, 2, 5 x 10^k, the one whose rounded-out range [floor(lo / step), ceil(hi / step)] * step has
// the number of intervals closest to `target_intervals` (ties: the tighter range, then the larger
// step). integer_steps keeps the step >= 1 (for epochs). A constant range (lo == hi, or a width
// below 1e-9 of its magnitude) is first widened, by 1 on each side for integer steps, else by 10%
// of |lo| (1 when lo is 0), so nothing divides by zero.
// Examples: [0, 1] -> 0, 0.2, ..., 1;  [83.1, 92.4] -> 82, 84, ..., 94;  [1, 3] integer -> 1, 2, 3.
Ticks nice_ticks(double lo, double hi, int target_intervals = 5, bool integer_steps = false);

// One named line. Points where x or y is NaN or infinite are skipped: the line joins the
// neighbouring finite points.
struct Series {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
};

// Where data lands in a chart rendered at a given size: the plotting rectangle (inclusive pixel
// bounds; y grows downwards) and the axes. pixel_x(ticks.x.lo) == left, pixel_x(x.hi) == right,
// pixel_y(y.lo) == bottom, pixel_y(y.hi) == top, linear (rounded to the nearest pixel) between.
struct PlotArea {
  int left = 0;
  int top = 0;
  int right = 0;
  int bottom = 0;
  Ticks x;
  Ticks y;
  int pixel_x(double value) const;
  int pixel_y(double value) const;
};

class LineChart {
 public:
  static constexpr int kMinWidth = 160;
  static constexpr int kMinHeight = 120;
  static constexpr int kLineThickness = 2;
  // Series with at most this many finite points also get a 5 x 5 square marker on each point, so
  // short runs (and single points) stay visible.
  static constexpr size_t kMarkerMaxPoints = 30;

  LineChart& set_title(std::string title);
  LineChart& set_x_label(std::string label);
  LineChart& set_y_label(std::string label);
  // Adds a series drawn in series_color(its index). Throws Error when x and y differ in length.
  LineChart& add_series(std::string name, std::vector<double> x, std::vector<double> y);

  const std::string& title() const { return title_; }
  const std::string& x_label() const { return x_label_; }
  const std::string& y_label() const { return y_label_; }
  const std::vector<Series>& series() const { return series_; }

  // The layout render(width, height) uses. Axis ranges come from the finite points of all series
  // (x ticks use integer steps when every finite x is an integer); with no finite point both axes
  // span [0, 1]. Throws Error when width < kMinWidth, height < kMinHeight, or the labels leave no
  // room for the plot.
  PlotArea layout(int width, int height) const;

  // The chart as a width x height picture on white: title on top, legend under it (entries in
  // aligned columns, as many as fit; at text scale 1 when it would otherwise take more than two
  // rows), grid, framed plot area, ticks and labels, y label rotated on the left, x label at the
  // bottom. Text scale 2 when both sides are >= 300 pixels, else 1; long texts are cut with "..".
  Image render(int width, int height) const;

 private:
  std::string title_;
  std::string x_label_;
  std::string y_label_;
  std::vector<Series> series_;
};

// Height of the title band render_grid puts above the panels of an image `width` pixels wide
// (0 for an empty title).
int grid_title_height(int width, std::string_view title);

// Charts rendered at panel_w x panel_h each, laid out left to right, top to bottom in
// min(cols, charts.size()) columns, under an optional centred title band. The image is
// columns * panel_w wide and rows * panel_h + grid_title_height(...) tall. Throws Error for no
// charts or cols < 1 (and whatever render throws).
Image render_grid(const std::vector<LineChart>& charts, int cols, int panel_w, int panel_h,
                  std::string_view title = {});

}  // namespace bitgrad::viz
