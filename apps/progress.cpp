// progress.cpp: drawing the progress line.
#include "apps/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace bitgrad::apps {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total),
      tty_(isatty(fileno(stdout)) != 0),
      start_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t done, double loss, double accuracy_percent, int64_t images) {
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0.0 ? static_cast<double>(images) / secs : 0.0;
  const double left = done > 0 ? secs * static_cast<double>(total_ - done) / static_cast<double>(done)
                               : 0.0;
  constexpr int kWidth = 24;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  char line[256];
  std::snprintf(line, sizeof line, "%s [%s] %lld/%lld loss %.4f acc %.2f%% %.0f img/s %.0fs left",
                label_.c_str(), bar.c_str(), static_cast<long long>(done),
                static_cast<long long>(total_), loss, accuracy_percent, rate, left);
  last_line_ = line;
  if (tty_) {
    std::printf("\r%s\033[K", line);
    std::fflush(stdout);
    return;
  }
  const int64_t tenth = total_ >= 10 ? done * 10 / total_ : done;
  if (tenth != last_reported_) {
    last_reported_ = tenth;
    std::printf("%s\n", line);
    std::fflush(stdout);
  }
}

void Progress::finish() {
  if (tty_) std::printf("\n");
  std::fflush(stdout);
}

}  // namespace bitgrad::apps
