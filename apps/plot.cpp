// plot.cpp: `bitgrad plot` (training curves of one or more JSON-lines logs as a PNG). Wiring only:
// reading, charting and PNG writing are viz library calls.
#include "apps/plot.hpp"

#include <cstdio>
#include <string>
#include <vector>

#include "apps/args.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "viz/image.hpp"
#include "viz/log_plot.hpp"

namespace bitgrad::apps {

namespace {

// "a,b,c" -> {"a", "b", "c"}; an empty item is an Error naming the option.
std::vector<std::string> split_list(const std::string& text, const std::string& option) {
  std::vector<std::string> items;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const size_t length = comma == std::string::npos ? std::string::npos : comma - start;
    items.push_back(text.substr(start, length));
    check_lazy(!items.back().empty(), [&] {
      return "plot: --" + option + " expects a comma-separated list without empty items, got '" +
             text + "'";
    });
    if (comma == std::string::npos) return items;
    start = comma + 1;
  }
}

}  // namespace

int run_plot(const std::vector<std::string>& argv) {
  Args args("plot");
  args.option("y", "train_loss,test_top1", "KEYS", "comma-separated log keys, one panel each")
      .option("x", "epoch", "KEY", "log key of the x axis (every line must have it)")
      .option("labels", "", "A,B", "legend names of the logs, in order (default: file names)")
      .option("title", "", "TEXT", "title above the panels")
      .option("width", "1200", "PIXELS", "picture width")
      .option("height", "450", "PIXELS", "picture height")
      .option("out", "", "FILE.png", "the PNG to write (required; its directory must exist)")
      .flag("json", "print what was written as one JSON object on the last line")
      .flag("help", "show this help");
  args.parse(argv);
  if (args.on("help")) {
    std::printf("usage: bitgrad plot LOG.jsonl [LOG2.jsonl ...] --out FILE.png [options]\n%s",
                args.help().c_str());
    return 0;
  }
  const std::vector<std::string>& logs = args.positional();
  check(!logs.empty(), "plot: expected at least one LOG.jsonl argument, got none");
  const std::string out = args.str("out");
  check(!out.empty(), "plot: expected --out FILE.png, got none");
  const std::vector<std::string> y_keys = split_list(args.str("y"), "y");
  const std::vector<std::string> labels = args.str("labels").empty()
                                              ? std::vector<std::string>{}
                                              : split_list(args.str("labels"), "labels");
  const int width = static_cast<int>(args.integer("width", 160, viz::Image::kMaxSide));
  const int height = static_cast<int>(args.integer("height", 120, viz::Image::kMaxSide));

  const viz::Image image =
      viz::plot_logs(logs, labels, args.str("x"), y_keys, args.str("title"), width, height);
  viz::write_png(out, image);
  std::printf("plot: wrote %s (%d x %d, %zu panel%s, %zu log%s)\n", out.c_str(), image.width(),
              image.height(), y_keys.size(), y_keys.size() == 1 ? "" : "s", logs.size(),
              logs.size() == 1 ? "" : "s");
  if (args.on("json")) {
    core::Json j = core::Json::object();
    core::Json keys = core::Json::array();
    for (const std::string& k : y_keys) keys.push_back(k);
    core::Json paths = core::Json::array();
    for (const std::string& p : logs) paths.push_back(p);
    j.set("out", out).set("width", image.width()).set("height", image.height());
    j.set("x", args.str("x")).set("y", std::move(keys)).set("logs", std::move(paths));
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace bitgrad::apps
