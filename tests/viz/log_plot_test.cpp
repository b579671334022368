// log_plot_test.cpp: reading JSON-lines training logs (values, gaps, line numbers in errors) and
// plot_logs pictures (size, one panel per key, one colour per log, errors naming file and key).
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "viz/chart.hpp"
#include "viz/image.hpp"
#include "viz/log_plot.hpp"

namespace {

using bitgrad::viz::Image;
using bitgrad::viz::series_color;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

// Three epochs as `bitgrad train` writes them.
const std::string kThreeEpochs =
    R"({"epoch":1,"lr":0.0989,"train_loss":0.6022,"train_top1":77.25,"test_top1":84.63,)"
    R"("test_top5":99.79,"best_top1":84.63,"images_per_s":509.3,"epoch_seconds":117.6})"
    "\n"
    R"({"epoch":2,"lr":0.0957,"train_loss":0.3437,"train_top1":87.43,"test_top1":87.53,)"
    R"("test_top5":99.88,"best_top1":87.53,"images_per_s":459.8,"epoch_seconds":130.3})"
    "\n"
    R"({"epoch":3,"lr":0.0905,"train_loss":0.2983,"train_top1":89.07,"test_top1":87.84,)"
    R"("test_top5":99.87,"best_top1":87.84,"images_per_s":484.2,"epoch_seconds":123.7})"
    "\n";

bool has_color(const Image& image, int x0, int y0, int x1, int y1, bitgrad::viz::Rgb color) {
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x)
      if (image.at(x, y) == color) return true;
  return false;
}

}  // namespace

TEST_CASE("read_jsonl_log reads a three-epoch training log as columns", "[viz]") {
  bitgrad::test::TempDir dir;
  const std::string path = dir.file("run.log.jsonl");
  write_text(path, kThreeEpochs);
  const bitgrad::viz::LogColumns log = bitgrad::viz::read_jsonl_log(path);
  CHECK(log.path == path);
  CHECK(log.rows() == 3);
  CHECK(log.lines == std::vector<int64_t>{1, 2, 3});
  REQUIRE(log.columns.size() == 9);
  CHECK(log.columns[0].key == "epoch");
  CHECK(log.columns[8].key == "epoch_seconds");
  CHECK(log.numbers("epoch") == std::vector<double>{1.0, 2.0, 3.0});
  CHECK(log.numbers("test_top1") == std::vector<double>{84.63, 87.53, 87.84});
  CHECK(log.complete_numbers("train_loss") == std::vector<double>{0.6022, 0.3437, 0.2983});
  CHECK(log.find("peak_rss_mib") == nullptr);
}

TEST_CASE("read_jsonl_log: blank lines, CRLF, null and absent keys become gaps", "[viz]") {
  bitgrad::test::TempDir dir;
  const std::string path = dir.file("gaps.jsonl");
  write_text(path,
             "{\"epoch\":1,\"loss\":0.5}\r\n"
             "\n"
             "   \n"
             "{\"epoch\":2,\"loss\":null,\"extra\":7}\r\n"
             "{\"epoch\":3}\n"
             "{\"epoch\":4,\"loss\":0.25,\"note\":\"resumed\"}");  // no final newline
  const bitgrad::viz::LogColumns log = bitgrad::viz::read_jsonl_log(path);
  CHECK(log.lines == std::vector<int64_t>{1, 4, 5, 6});
  const std::vector<double>& loss = log.numbers("loss");
  REQUIRE(loss.size() == 4);
  CHECK(loss[0] == 0.5);
  CHECK(std::isnan(loss[1]));
  CHECK(std::isnan(loss[2]));
  CHECK(loss[3] == 0.25);
  const std::vector<double>& extra = log.numbers("extra");  // first seen on the second row
  REQUIRE(extra.size() == 4);
  CHECK(std::isnan(extra[0]));
  CHECK(extra[1] == 7.0);
  CHECK(std::isnan(extra[3]));
  CHECK(log.complete_numbers("epoch") == std::vector<double>{1, 2, 3, 4});
  // A string where a number is expected names the line (the file's line 6).
  const std::string message = bitgrad::test::error_message([&] { log.numbers("note"); });
  CHECK(message.find("'" + path + "' line 6") != std::string::npos);
  CHECK(message.find("found a string") != std::string::npos);
  // The x axis needs a number on every line: line 4 has loss null.
  CHECK(bitgrad::test::error_message([&] { log.complete_numbers("loss"); })
            .find("line 4: expected a number for key 'loss', found none") != std::string::npos);
}

TEST_CASE("read_jsonl_log: a corrupt line is an Error naming file and line", "[viz]") {
  bitgrad::test::TempDir dir;
  const std::string path = dir.file("corrupt.log.jsonl");
  write_text(path, "{\"epoch\":1,\"loss\":0.5}\n\n{\"epoch\":2,\"loss\":0.4\n{\"epoch\":3}\n");
  const std::string message =
      bitgrad::test::error_message([&] { bitgrad::viz::read_jsonl_log(path); });
  CHECK(message.find("'" + path + "' line 3: JSON parse error") != std::string::npos);
  CHECK(message.find('\n') == std::string::npos);

  write_text(path, "{\"epoch\":1}\n[1, 2]\n");
  CHECK(bitgrad::test::error_message([&] { bitgrad::viz::read_jsonl_log(path); })
            .find("line 2: expected a JSON object, found array") != std::string::npos);

  const std::string missing = dir.file("missing.jsonl");
  CHECK(bitgrad::test::error_message([&] { bitgrad::viz::read_jsonl_log(missing); })
            .find("'" + missing + "'") != std::string::npos);

  write_text(path, kThreeEpochs);
  const bitgrad::viz::LogColumns log = bitgrad::viz::read_jsonl_log(path);
  const std::string no_key = bitgrad::test::error_message([&] { log.numbers("test_acc"); });
  CHECK(no_key.find("'" + path + "': expected key 'test_acc'") != std::string::npos);
  CHECK(no_key.find("keys: epoch, lr, train_loss") != std::string::npos);
}

TEST_CASE("log_label strips the directory and the .log.jsonl suffixes", "[viz]") {
  CHECK(bitgrad::viz::log_label("runs/issue3/fmnist-r20.log.jsonl") == "fmnist-r20");
  CHECK(bitgrad::viz::log_label("a.jsonl") == "a");
  CHECK(bitgrad::viz::log_label("plain") == "plain");
}

TEST_CASE("plot_logs draws one panel per key and one colour per log", "[viz]") {
  bitgrad::test::TempDir dir;
  const std::string a = dir.file("a.log.jsonl"), b = dir.file("b.log.jsonl");
  write_text(a, kThreeEpochs);
  write_text(b,
             "{\"epoch\":1,\"train_loss\":0.9,\"test_top1\":70.0}\n"
             "{\"epoch\":2,\"train_loss\":0.5,\"test_top1\":80.0}\n"
             "{\"epoch\":3,\"train_loss\":0.4,\"test_top1\":82.5}\n"
             "{\"epoch\":4,\"train_loss\":0.35,\"test_top1\":83.0}\n");
  const Image image =
      bitgrad::viz::plot_logs({a, b}, {}, "epoch", {"train_loss", "test_top1"}, "", 800, 300);
  REQUIRE(image.width() == 800);
  REQUIRE(image.height() == 300);
  // Both logs appear in both panels (left and right halves), in the same colours.
  for (const int left : {0, 400})
    for (size_t i = 0; i < 2; ++i)
      CHECK(has_color(image, left, 0, left + 399, 299, series_color(i)));
  CHECK_FALSE(has_color(image, 0, 0, 799, 299, series_color(2)));

  // The picture equals the charts built by hand from the same columns.
  bitgrad::viz::LineChart loss;
  loss.set_title("train_loss").set_x_label("epoch");
  loss.add_series("a", {1, 2, 3}, {0.6022, 0.3437, 0.2983});
  loss.add_series("b", {1, 2, 3, 4}, {0.9, 0.5, 0.4, 0.35});
  const Image left = loss.render(400, 300);
  size_t mismatches = 0;
  for (int y = 0; y < 300; ++y)
    for (int x = 0; x < 400; ++x) mismatches += image.at(x, y) != left.at(x, y);
  CHECK(mismatches == 0);

  // Four keys: a 2 x 2 grid under a title, exactly the requested size (with odd sizes too).
  const Image four = bitgrad::viz::plot_logs({a}, {"run a"}, "epoch",
                                             {"train_loss", "test_top1", "lr", "test_top5"},
                                             "four panels", 901, 651);
  REQUIRE(four.width() == 901);
  REQUIRE(four.height() == 651);
  const int band = bitgrad::viz::grid_title_height(901, "four panels");
  const int pw = 450, ph = (651 - band) / 2;
  for (const int col : {0, 1})
    for (const int row : {0, 1})
      CHECK(has_color(four, col * pw, band + row * ph, col * pw + pw - 1, band + row * ph + ph - 1,
                      series_color(0)));
  CHECK(has_color(four, 0, 0, 900, band - 1, bitgrad::viz::kTextColor));
}

TEST_CASE("plot_logs errors name the file, the key and the size", "[viz]") {
  bitgrad::test::TempDir dir;
  const std::string a = dir.file("a.log.jsonl"), empty = dir.file("empty.log.jsonl");
  write_text(a, kThreeEpochs);
  write_text(empty, "\n");
  CHECK(bitgrad::test::error_message([&] {
          bitgrad::viz::plot_logs({a}, {}, "epoch", {"test_top1", "val_loss"}, "", 800, 300);
        }).find("'" + a + "': expected key 'val_loss'") != std::string::npos);
  CHECK(bitgrad::test::error_message([&] {
          bitgrad::viz::plot_logs({a}, {}, "step", {"test_top1"}, "", 800, 300);
        }).find("expected key 'step'") != std::string::npos);
  CHECK(bitgrad::test::error_message([&] {
          bitgrad::viz::plot_logs({a, a}, {"one"}, "epoch", {"test_top1"}, "", 800, 300);
        }).find("one label per log (2), got 1") != std::string::npos);
  CHECK(bitgrad::test::error_message([&] {
          bitgrad::viz::plot_logs({empty}, {}, "epoch", {"test_top1"}, "", 800, 300);
        }).find("'" + empty + "': expected at least one JSON line") != std::string::npos);
  CHECK(bitgrad::test::error_message([&] {
          bitgrad::viz::plot_logs({a}, {}, "epoch", {"test_top1", "lr", "train_loss"}, "", 400,
                                  300);
        }).find("panels of 133 x 300") != std::string::npos);
  CHECK_THROWS_AS(bitgrad::viz::plot_logs({}, {}, "epoch", {"lr"}, "", 800, 300), bitgrad::Error);
  CHECK_THROWS_AS(bitgrad::viz::plot_logs({a}, {}, "epoch", {}, "", 800, 300), bitgrad::Error);
}
