// log_plot.cpp: JSON-lines log reading (core::Json per line) and the panel grid of plot_logs.
#include "viz/log_plot.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_map>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/json.hpp"
#include "viz/chart.hpp"

namespace bitgrad::viz {

namespace {

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

std::string strip_suffix(std::string s, std::string_view suffix) {
  if (s.size() > suffix.size() && s.ends_with(suffix)) s.resize(s.size() - suffix.size());
  return s;
}

}  // namespace

const LogColumn* LogColumns::find(std::string_view key) const {
  for (const LogColumn& c : columns)
    if (c.key == key) return &c;
  return nullptr;
}

const std::vector<double>& LogColumns::numbers(std::string_view key) const {
  const LogColumn* c = find(key);
  check_lazy(c != nullptr, [&] {
    std::string keys;
    for (const LogColumn& other : columns) keys += (keys.empty() ? "" : ", ") + other.key;
    return "'" + path + "': expected key '" + std::string(key) +
           "' in the log, found none (keys: " + (keys.empty() ? "none" : keys) + ")";
  });
  check_lazy(c->bad_line == 0, [&] {
    return "'" + path + "' line " + std::to_string(c->bad_line) + ": expected a number for key '" +
           c->key + "', found a " + c->bad_type;
  });
  return c->values;
}

const std::vector<double>& LogColumns::complete_numbers(std::string_view key) const {
  const std::vector<double>& values = numbers(key);
  for (size_t row = 0; row < values.size(); ++row)
    check_lazy(std::isfinite(values[row]), [&] {
      return "'" + path + "' line " + std::to_string(lines[row]) + ": expected a number for key '" +
             std::string(key) + "', found none";
    });
  return values;
}

LogColumns read_jsonl_log(const std::string& path) {
  const std::vector<uint8_t> bytes = core::read_file(path);
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  LogColumns log;
  log.path = path;
  std::unordered_map<std::string, size_t> index;
  int64_t line_number = 0;
  for (size_t start = 0; start < text.size();) {
    const size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    if (is_blank(line)) continue;
    if (line.ends_with('\r')) line.remove_suffix(1);

    core::Json record;
    try {
      record = core::Json::parse(line);
    } catch (const Error& e) {
      throw Error("'" + path + "' line " + std::to_string(line_number) + ": " + e.what());
    }
    check_lazy(record.is_object(), [&] {
      return "'" + path + "' line " + std::to_string(line_number) +
             ": expected a JSON object, found " + std::string(core::Json::type_name(record.type()));
    });
    log.lines.push_back(line_number);
    for (LogColumn& c : log.columns) c.values.push_back(kMissing);
    for (const auto& [key, value] : record.as_object()) {
      auto [it, inserted] = index.try_emplace(key, log.columns.size());
      if (inserted) {
        LogColumn c;
        c.key = key;
        c.values.assign(log.rows(), kMissing);
        log.columns.push_back(std::move(c));
      }
      LogColumn& c = log.columns[it->second];
      if (value.is_number()) {
        c.values.back() = value.as_number();
      } else if (!value.is_null() && c.bad_line == 0) {
        c.bad_line = line_number;
        c.bad_type = std::string(core::Json::type_name(value.type()));
      }
    }
  }
  return log;
}

std::string log_label(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return strip_suffix(strip_suffix(std::move(name), ".jsonl"), ".log");
}

Image plot_logs(const std::vector<std::string>& paths, const std::vector<std::string>& labels,
                const std::string& x_key, const std::vector<std::string>& y_keys,
                const std::string& title, int width, int height) {
  check(!paths.empty(), "plot_logs: expected at least one log, got none");
  check(!y_keys.empty(), "plot_logs: expected at least one y key, got none");
  check_lazy(labels.empty() || labels.size() == paths.size(), [&] {
    return "plot_logs: expected one label per log (" + std::to_string(paths.size()) + "), got " +
           std::to_string(labels.size());
  });

  std::vector<LogColumns> logs;
  for (const std::string& path : paths) {
    logs.push_back(read_jsonl_log(path));
    check_lazy(logs.back().rows() > 0, [&] {
      return "'" + path + "': expected at least one JSON line in the log, found none";
    });
  }
  std::vector<std::string> names = labels;
  if (names.empty()) {
    for (const std::string& path : paths) names.push_back(log_label(path));
    if (std::set<std::string>(names.begin(), names.end()).size() != names.size())
      for (size_t i = 0; i < paths.size(); ++i)
        names[i] = strip_suffix(strip_suffix(paths[i], ".jsonl"), ".log");
  }

  std::vector<LineChart> charts;
  for (const std::string& key : y_keys) {
    LineChart chart;
    chart.set_title(key).set_x_label(x_key);
    for (size_t i = 0; i < logs.size(); ++i)
      chart.add_series(names[i], logs[i].complete_numbers(x_key), logs[i].numbers(key));
    charts.push_back(std::move(chart));
  }

  const int n = static_cast<int>(charts.size());
  const int cols = n <= 3 ? n : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int rows = (n + cols - 1) / cols;
  check_lazy(width >= 1 && height >= 1 && width <= Image::kMaxSide && height <= Image::kMaxSide,
             [&] {
               return "plot_logs: expected a picture size in [1, " +
                      std::to_string(Image::kMaxSide) + "], got " + std::to_string(width) + " x " +
                      std::to_string(height);
             });
  const int band = grid_title_height(width, title);
  const int panel_w = width / cols;
  const int panel_h = (height - band) / rows;
  check_lazy(panel_w >= LineChart::kMinWidth && panel_h >= LineChart::kMinHeight, [&] {
    return "plot_logs: a " + std::to_string(width) + " x " + std::to_string(height) +
           " picture gives " + std::to_string(n) + " panels of " + std::to_string(panel_w) + " x " +
           std::to_string(panel_h) + " pixels; expected at least " +
           std::to_string(LineChart::kMinWidth) + " x " + std::to_string(LineChart::kMinHeight) +
           " (make the picture larger)";
  });
  const Image grid = render_grid(charts, cols, panel_w, panel_h, title);
  if (grid.width() == width && grid.height() == height) return grid;
  Image image(width, height, kWhite);  // the remainder of width / cols and height / rows
  blit(image, grid, 0, 0);
  return image;
}

}  // namespace bitgrad::viz
