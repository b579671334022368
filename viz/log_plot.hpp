// log_plot.hpp: reading the JSON-lines logs `bitgrad train` writes (one object per epoch) as
// columns, and plotting chosen keys of one or more logs as a grid of line charts (one panel per
// key, one series per log). Not here: smoothing, per-step logs, reading CSV or TensorBoard files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "viz/image.hpp"

namespace bitgrad::viz {

// One key of a log: a value per row, NaN where that line lacks the key or holds null (Json prints
// non-finite numbers as null).
struct LogColumn {
  std::string key;
  std::vector<double> values;
  int64_t bad_line = 0;  // first line holding a string, bool, array or object for this key; 0: none
  std::string bad_type;  // that value's JSON type
};

// A JSON-lines log as columns. Rows are the non-blank lines, in file order.
struct LogColumns {
  std::string path;
  std::vector<int64_t> lines;      // 1-based line number of each row
  std::vector<LogColumn> columns;  // every key seen, in first-seen order

  size_t rows() const { return lines.size(); }
  // The column of `key`, or nullptr when no line has it.
  const LogColumn* find(std::string_view key) const;
  // The values of `key`. Throws Error "'<path>': expected key '<key>' in the log, found none (keys:
  // ...)" when no line has it, and "'<path>' line N: expected a number for key '<key>', found a
  // <type>" when some line holds a non-number other than null.
  const std::vector<double>& numbers(std::string_view key) const;
  // As numbers(), but every row must hold a finite number (for the x axis); otherwise Error
  // "'<path>' line N: expected a number for key '<key>', found none".
  const std::vector<double>& complete_numbers(std::string_view key) const;
};

// Reads a JSON-lines file: each non-blank line one JSON object (core::Json's strict parser; "\r\n"
// line ends accepted). Throws Error naming the file when it cannot be read, and the file and line
// for a malformed line or a line that is not an object: "'<path>' line 3: JSON parse error at byte
// 12: ...". An empty file gives zero rows.
LogColumns read_jsonl_log(const std::string& path);

// The default legend label of a log: its file name without ".jsonl" and then ".log"
// ("runs/r20.log.jsonl" -> "r20").
std::string log_label(const std::string& path);

// Reads every log and draws one line chart per y key (panel title = the key, x label = x_key,
// one series per log in series_color order, so a log has the same colour in every panel), laid
// out in one row for up to 3 keys, else in ceil(sqrt(keys)) columns, under `title` when not empty.
// The picture is exactly width x height. `labels` name the logs in the legends: empty means
// log_label() of each path (the full path without suffixes when two labels would be equal).
// Throws Error for no paths or keys, a labels/paths count mismatch, an unreadable or malformed log,
// a log without rows, x_key missing on some line, a y key missing from a log, or panels smaller
// than LineChart's minimum.
Image plot_logs(const std::vector<std::string>& paths, const std::vector<std::string>& labels,
                const std::string& x_key, const std::vector<std::string>& y_keys,
                const std::string& title, int width = 1200, int height = 450);

}  // namespace bitgrad::viz
