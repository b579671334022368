// plot.hpp: `bitgrad plot`, training-curve pictures (PNG) from the JSON-lines logs of `bitgrad
// train`. Kept out of commands.hpp so that it can be added without touching the other commands.
#pragma once

#include <string>
#include <vector>

namespace bitgrad::apps {

// `bitgrad plot LOG.jsonl [LOG2.jsonl ...] --y KEY[,KEY...] [--x KEY] [--labels A,B] [--title T]
// [--width W --height H] --out FILE.png [--json]`: one panel per y key, one series per log (see
// viz::plot_logs). Returns the exit code; throws bitgrad::Error for bad input.
int run_plot(const std::vector<std::string>& argv);

}  // namespace bitgrad::apps
