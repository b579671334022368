// progress.hpp: a one-line progress bar for long loops (batches done, loss, accuracy, images/s, time
// left). Redraws in place on a terminal; on a pipe or file it prints a line every ~10% instead.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace bitgrad::apps {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  // `done` of `total` steps; `images` processed so far in this loop.
  void update(int64_t done, double loss, double accuracy_percent, int64_t images);
  // Ends the line.
  void finish();

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
  int64_t last_reported_ = -1;
  std::string last_line_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace bitgrad::apps
