// cifar.cpp: CIFAR-10/100 binary records into a Dataset, with file lookup in DIR or the tarball's
// subfolder and the optional label-name text files.
#include "datasets/cifar.hpp"

#include <cstring>
#include <filesystem>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/file_io.hpp"

namespace bitgrad::datasets {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kPixels = 3 * 32 * 32;

// From batches.meta.txt of cifar-10-binary.tar.gz.
const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};

// From fine_label_names.txt and coarse_label_names.txt of cifar-100-binary.tar.gz.
const std::vector<std::string> kCifar100FineNames = {
    "apple",       "aquarium_fish", "baby",      "bear",       "beaver",       "bed",
    "bee",         "beetle",        "bicycle",   "bottle",     "bowl",         "boy",
    "bridge",      "bus",           "butterfly", "camel",      "can",          "castle",
    "caterpillar", "cattle",        "chair",     "chimpanzee", "clock",        "cloud",
    "cockroach",   "couch",         "crab",      "crocodile",  "cup",          "dinosaur",
    "dolphin",     "elephant",      "flatfish",  "forest",     "fox",          "girl",
    "hamster",     "house",         "kangaroo",  "keyboard",   "lamp",         "lawn_mower",
    "leopard",     "lion",          "lizard",    "lobster",    "man",          "maple_tree",
    "motorcycle",  "mountain",      "mouse",     "mushroom",   "oak_tree",     "orange",
    "orchid",      "otter",         "palm_tree", "pear",       "pickup_truck", "pine_tree",
    "plain",       "plate",         "poppy",     "porcupine",  "possum",       "rabbit",
    "raccoon",     "ray",           "road",      "rocket",     "rose",         "sea",
    "seal",        "shark",         "shrew",     "skunk",      "skyscraper",   "snail",
    "snake",       "spider",        "squirrel",  "streetcar",  "sunflower",    "sweet_pepper",
    "table",       "tank",          "telephone", "television", "tiger",        "tractor",
    "train",       "trout",         "tulip",     "turtle",     "wardrobe",     "whale",
    "willow_tree", "wolf",          "woman",     "worm"};

const std::vector<std::string> kCifar100CoarseNames = {"aquatic_mammals",
                                                       "fish",
                                                       "flowers",
                                                       "food_containers",
                                                       "fruit_and_vegetables",
                                                       "household_electrical_devices",
                                                       "household_furniture",
                                                       "insects",
                                                       "large_carnivores",
                                                       "large_man-made_outdoor_things",
                                                       "large_natural_outdoor_scenes",
                                                       "large_omnivores_and_herbivores",
                                                       "medium_mammals",
                                                       "non-insect_invertebrates",
                                                       "people",
                                                       "reptiles",
                                                       "small_mammals",
                                                       "trees",
                                                       "vehicles_1",
                                                       "vehicles_2"};

// One label byte of each record, at `offset` within it, and the number of values it may take.
struct LabelField {
  int64_t offset;
  int64_t classes;
  const char* what;  // "label", "coarse label", "fine label"
};

struct Format {
  std::string reader;     // "load_cifar10" / "load_cifar100", for messages
  std::string subfolder;  // the tarball's folder
  std::vector<LabelField> fields;
  size_t use_field = 0;  // the field that becomes Dataset::labels
  std::string names_file;
  const std::vector<std::string>* default_names = nullptr;
  int64_t record_size() const { return static_cast<int64_t>(fields.size()) + kPixels; }
};

// The path of `name` in dir or dir/subfolder; throws listing both when neither exists.
fs::path find_file(const Format& format, const std::string& dir, const std::string& name) {
  const std::vector<fs::path> tries = {fs::path(dir) / name,
                                       fs::path(dir) / format.subfolder / name};
  std::string tried;
  for (const fs::path& p : tries) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p;
    tried += (tried.empty() ? "" : ", ") + p.string();
  }
  throw Error(format.reader + ": missing file '" + name + "' in '" + dir + "' (looked for " +
              tried + ")");
}

// Appends the records of one file to `out` (pixels and the chosen labels).
void read_records(const Format& format, const fs::path& path, Dataset& out) {
  const std::string p = path.string();
  const std::vector<uint8_t> bytes = core::read_file(p);
  const auto size = static_cast<int64_t>(bytes.size());
  const int64_t record = format.record_size();
  check_lazy(size > 0 && size % record == 0, [&] {
    return format.reader + " '" + p + "': size " + std::to_string(size) +
           " bytes is not a positive multiple of the record size " + std::to_string(record);
  });
  const int64_t n = size / record;
  const size_t pixel_base = out.pixels.size();
  out.pixels.resize(pixel_base + static_cast<size_t>(n * kPixels));
  out.labels.reserve(out.labels.size() + static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* rec = bytes.data() + i * record;
    for (const LabelField& field : format.fields) {
      const int64_t value = rec[field.offset];
      check_lazy(value < field.classes, [&] {
        return format.reader + " '" + p + "': record " + std::to_string(i) + " has " + field.what +
               " " + std::to_string(value) + ", expected [0, " + std::to_string(field.classes) +
               ")";
      });
    }
    out.labels.push_back(rec[format.fields[format.use_field].offset]);
    std::memcpy(out.pixels.data() + pixel_base + static_cast<size_t>(i * kPixels),
                rec + format.fields.size(), static_cast<size_t>(kPixels));
  }
  out.count += n;
}

// The non-empty, whitespace-trimmed lines of `dir`/names_file when it exists, else the defaults.
std::vector<std::string> class_names(const Format& format, const fs::path& dir) {
  const fs::path path = dir / format.names_file;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return *format.default_names;
  const std::vector<uint8_t> bytes = core::read_file(path.string());
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    const size_t first = line.find_first_not_of(" \t\r");
    if (first != std::string_view::npos) {
      line = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
      names.emplace_back(line);
    }
    start = end + 1;
  }
  const size_t expected = format.default_names->size();
  check_lazy(names.size() == expected, [&] {
    return format.reader + " '" + path.string() + "': " + std::to_string(names.size()) +
           " class names, expected " + std::to_string(expected);
  });
  return names;
}

Dataset load(const Format& format, const std::string& dir, const std::vector<std::string>& files,
             const std::string& name, std::vector<float> mean, std::vector<float> stddev) {
  Dataset set;
  set.name = name;
  set.channels = 3;
  set.height = 32;
  set.width = 32;
  set.classes = format.fields[format.use_field].classes;
  // Find every file before reading any, so a missing batch is reported at once.
  std::vector<fs::path> paths;
  for (const std::string& file : files) paths.push_back(find_file(format, dir, file));
  for (const fs::path& path : paths) read_records(format, path, set);
  set.class_names = class_names(format, paths.front().parent_path());
  set.mean = std::move(mean);
  set.stddev = std::move(stddev);
  return set;
}

}  // namespace

Dataset load_cifar10(const std::string& dir, Split split) {
  Format format;
  format.reader = "load_cifar10";
  format.subfolder = "cifar-10-batches-bin";
  format.fields = {{0, 10, "label"}};
  format.names_file = "batches.meta.txt";
  format.default_names = &kCifar10Names;
  std::vector<std::string> files;
  if (split == Split::kTrain) {
    for (int i = 1; i <= 5; ++i) files.push_back("data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back("test_batch.bin");
  }
  return load(format, dir, files, "cifar10", {0.4914f, 0.4822f, 0.4465f},
              {0.2470f, 0.2435f, 0.2616f});
}

Dataset load_cifar100(const std::string& dir, Split split, Cifar100Labels labels) {
  const bool fine = labels == Cifar100Labels::kFine;
  Format format;
  format.reader = "load_cifar100";
  format.subfolder = "cifar-100-binary";
  format.fields = {{0, 20, "coarse label"}, {1, 100, "fine label"}};
  format.use_field = fine ? 1 : 0;
  format.names_file = fine ? "fine_label_names.txt" : "coarse_label_names.txt";
  format.default_names = fine ? &kCifar100FineNames : &kCifar100CoarseNames;
  const std::string file = split == Split::kTrain ? "train.bin" : "test.bin";
  return load(format, dir, {file}, fine ? "cifar100" : "cifar100-coarse",
              {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f});
}

}  // namespace bitgrad::datasets
