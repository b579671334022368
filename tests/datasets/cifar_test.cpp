// cifar_test.cpp: CIFAR-10/100 binary files written by the test (a few records each) read back
// exactly, in both directory layouts, with fine and coarse labels and the label-name files; every
// corrupt case (missing file, bad size, label out of range, wrong name count) raises an Error that
// names the file.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "datasets/cifar.hpp"
#include "test_util.hpp"
#include "tests/datasets/dataset_files.hpp"

namespace bitgrad::test {
namespace {

namespace fs = std::filesystem;
using datasets::Cifar100Labels;
using datasets::Dataset;
using datasets::Split;

// True when image i of the set holds exactly the pixels cifar_pixels(id).
bool image_is(const Dataset& set, int64_t i, int id) {
  const auto img = set.image(i);
  const std::vector<uint8_t> want = cifar_pixels(id);
  return std::vector<uint8_t>(img.begin(), img.end()) == want;
}

TEST_CASE("cifar10: the test batch reads back exactly", "[datasets]") {
  TempDir dir;
  write_bytes(dir.file("test_batch.bin"), cifar_records({{0}, {9}, {3}}, {10, 11, 12}));
  const Dataset set = datasets::load_cifar10(dir.path().string(), Split::kTest);
  set.validate();
  CHECK(set.name == "cifar10");
  CHECK(set.count == 3);
  CHECK(set.channels == 3);
  CHECK(set.height == 32);
  CHECK(set.width == 32);
  CHECK(set.classes == 10);
  CHECK(set.labels == std::vector<int64_t>{0, 9, 3});
  CHECK(image_is(set, 0, 10));
  CHECK(image_is(set, 1, 11));
  CHECK(image_is(set, 2, 12));
  // R plane first: pixel (c=1, y=0, x=0) is record byte 1 + 1024.
  CHECK(set.image(0)[1024] == cifar_pixels(10)[1024]);
  CHECK(set.class_names == std::vector<std::string>{"airplane", "automobile", "bird", "cat", "deer",
                                                    "dog", "frog", "horse", "ship", "truck"});
  CHECK(set.mean == std::vector<float>{0.4914f, 0.4822f, 0.4465f});
  CHECK(set.stddev == std::vector<float>{0.2470f, 0.2435f, 0.2616f});
}

TEST_CASE("cifar10: the five training batches are concatenated in order", "[datasets]") {
  TempDir dir;
  const std::vector<std::vector<int>> ids = {{1}, {2, 3}, {4}, {5}, {6, 7}};
  std::vector<int64_t> want_labels;
  for (size_t b = 0; b < ids.size(); ++b) {
    std::vector<std::vector<uint8_t>> labels;
    for (const int id : ids[b]) {
      labels.push_back({static_cast<uint8_t>(id % 10)});
      want_labels.push_back(id % 10);
    }
    write_bytes(dir.file("data_batch_" + std::to_string(b + 1) + ".bin"),
                cifar_records(labels, ids[b]));
  }
  const Dataset set = datasets::load_cifar10(dir.path().string(), Split::kTrain);
  REQUIRE(set.count == 7);
  CHECK(set.labels == want_labels);
  for (int i = 0; i < 7; ++i) CHECK(image_is(set, i, i + 1));
  CHECK(set.pixels.size() == 7u * 3072u);
}

TEST_CASE("cifar10: the tarball's subfolder and batches.meta.txt", "[datasets]") {
  TempDir dir;
  fs::create_directories(dir.path() / "cifar-10-batches-bin");
  write_bytes(dir.file("cifar-10-batches-bin/test_batch.bin"), cifar_records({{4}, {2}}, {0, 1}));
  // The official file ends with blank lines; a \r from a Windows copy is ignored too.
  write_text(dir.file("cifar-10-batches-bin/batches.meta.txt"),
             "n0\nn1\r\nn2\nn3\nn4\nn5\nn6\nn7\nn8\n  n9 \n\n\n");
  const Dataset set = datasets::load_cifar10(dir.path().string(), Split::kTest);
  CHECK(set.labels == std::vector<int64_t>{4, 2});
  CHECK(image_is(set, 1, 1));
  CHECK(set.class_names ==
        std::vector<std::string>{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"});

  SECTION("a names file with the wrong count is an error") {
    write_text(dir.file("cifar-10-batches-bin/batches.meta.txt"), "a\nb\nc\n");
    const std::string msg =
        error_message([&] { datasets::load_cifar10(dir.path().string(), Split::kTest); });
    CHECK_THAT(
        msg, Catch::Contains("batches.meta.txt") && Catch::Contains("3 class names, expected 10"));
  }
}

TEST_CASE("cifar100: fine and coarse labels and names", "[datasets]") {
  TempDir dir;
  // (coarse, fine) per record.
  write_bytes(dir.file("train.bin"), cifar_records({{19, 99}, {0, 0}, {5, 42}}, {3, 4, 5}));

  const Dataset fine = datasets::load_cifar100(dir.path().string(), Split::kTrain);
  fine.validate();
  CHECK(fine.name == "cifar100");
  CHECK(fine.classes == 100);
  CHECK(fine.labels == std::vector<int64_t>{99, 0, 42});
  REQUIRE(fine.class_names.size() == 100);
  CHECK(fine.class_names[0] == "apple");
  CHECK(fine.class_names[42] == "leopard");
  CHECK(fine.class_names[99] == "worm");
  CHECK(image_is(fine, 0, 3));
  CHECK(image_is(fine, 2, 5));
  CHECK(fine.mean == std::vector<float>{0.5071f, 0.4865f, 0.4409f});
  CHECK(fine.stddev == std::vector<float>{0.2673f, 0.2564f, 0.2762f});

  const Dataset coarse =
      datasets::load_cifar100(dir.path().string(), Split::kTrain, Cifar100Labels::kCoarse);
  coarse.validate();
  CHECK(coarse.name == "cifar100-coarse");
  CHECK(coarse.classes == 20);
  CHECK(coarse.labels == std::vector<int64_t>{19, 0, 5});
  REQUIRE(coarse.class_names.size() == 20);
  CHECK(coarse.class_names.front() == "aquatic_mammals");
  CHECK(coarse.class_names.back() == "vehicles_2");
  CHECK(coarse.pixels == fine.pixels);
}

TEST_CASE("cifar100: the tarball's subfolder and the label-name files", "[datasets]") {
  TempDir dir;
  fs::create_directories(dir.path() / "cifar-100-binary");
  write_bytes(dir.file("cifar-100-binary/test.bin"), cifar_records({{1, 7}}, {9}));
  std::string names;
  for (int i = 0; i < 100; ++i) names += "f" + std::to_string(i) + "\n";
  write_text(dir.file("cifar-100-binary/fine_label_names.txt"), names);

  const Dataset fine = datasets::load_cifar100(dir.path().string(), Split::kTest);
  CHECK(fine.labels == std::vector<int64_t>{7});
  CHECK(fine.class_names[7] == "f7");
  CHECK(image_is(fine, 0, 9));
  // No coarse_label_names.txt: the built-in names.
  const Dataset coarse =
      datasets::load_cifar100(dir.path().string(), Split::kTest, Cifar100Labels::kCoarse);
  CHECK(coarse.labels == std::vector<int64_t>{1});
  CHECK(coarse.class_names[1] == "fish");
}

TEST_CASE("cifar: missing files list the paths looked for", "[datasets]") {
  TempDir dir;
  const std::string d = dir.path().string();
  std::string msg = error_message([&] { datasets::load_cifar10(d, Split::kTest); });
  CHECK_THAT(msg,
             Catch::Contains("missing file 'test_batch.bin'") &&
                 Catch::Contains((dir.path() / "test_batch.bin").string()) &&
                 Catch::Contains((dir.path() / "cifar-10-batches-bin/test_batch.bin").string()));

  // One training batch of five missing: reported by name before any file is read.
  for (int b = 1; b <= 5; ++b) {
    if (b != 3) write_bytes(dir.file("data_batch_" + std::to_string(b) + ".bin"), {1, 2, 3});
  }
  msg = error_message([&] { datasets::load_cifar10(d, Split::kTrain); });
  CHECK_THAT(msg, Catch::Contains("missing file 'data_batch_3.bin'"));

  msg = error_message([&] { datasets::load_cifar100(d, Split::kTrain); });
  CHECK_THAT(msg, Catch::Contains("load_cifar100") && Catch::Contains("missing file 'train.bin'") &&
                      Catch::Contains("cifar-100-binary/train.bin"));
}

TEST_CASE("cifar: sizes that are not whole records", "[datasets]") {
  TempDir dir;
  const std::string d = dir.path().string();
  std::vector<uint8_t> bytes = cifar_records({{1}, {2}}, {0, 1});
  bytes.resize(bytes.size() + 5);
  write_bytes(dir.file("test_batch.bin"), bytes);
  std::string msg = error_message([&] { datasets::load_cifar10(d, Split::kTest); });
  CHECK_THAT(msg, Catch::Contains(dir.file("test_batch.bin")) &&
                      Catch::Contains("size 6151 bytes") && Catch::Contains("record size 3073"));

  write_bytes(dir.file("test_batch.bin"), {});
  msg = error_message([&] { datasets::load_cifar10(d, Split::kTest); });
  CHECK_THAT(msg, Catch::Contains("size 0 bytes"));

  // A CIFAR-10 record (3,073 bytes) is not a CIFAR-100 record (3,074).
  write_bytes(dir.file("test.bin"), cifar_records({{1}, {2}}, {0, 1}));
  msg = error_message([&] { datasets::load_cifar100(d, Split::kTest); });
  CHECK_THAT(msg, Catch::Contains(dir.file("test.bin")) && Catch::Contains("size 6146 bytes") &&
                      Catch::Contains("record size 3074"));
}

TEST_CASE("cifar: labels out of range name the record and value", "[datasets]") {
  TempDir dir;
  const std::string d = dir.path().string();
  write_bytes(dir.file("test_batch.bin"), cifar_records({{1}, {10}, {2}}, {0, 1, 2}));
  std::string msg = error_message([&] { datasets::load_cifar10(d, Split::kTest); });
  CHECK_THAT(msg, Catch::Contains(dir.file("test_batch.bin")) &&
                      Catch::Contains("record 1 has label 10, expected [0, 10)"));

  // Both CIFAR-100 labels are checked, whichever one is used.
  write_bytes(dir.file("test.bin"), cifar_records({{3, 5}, {20, 5}}, {0, 1}));
  msg = error_message([&] { datasets::load_cifar100(d, Split::kTest); });
  CHECK_THAT(msg, Catch::Contains("record 1 has coarse label 20, expected [0, 20)"));
  write_bytes(dir.file("test.bin"), cifar_records({{3, 100}}, {0}));
  msg = error_message([&] { datasets::load_cifar100(d, Split::kTest, Cifar100Labels::kCoarse); });
  CHECK_THAT(msg, Catch::Contains("record 0 has fine label 100, expected [0, 100)"));
}

}  // namespace
}  // namespace bitgrad::test
