// cifar.hpp: readers for the "binary version" of CIFAR-10 and CIFAR-100 (Krizhevsky 2009,
// https://www.cs.toronto.edu/~kriz/cifar.html), the format of cifar-10-binary.tar.gz and
// cifar-100-binary.tar.gz. Not here: the Python-pickle or MATLAB versions, or downloading.
#pragma once

#include <string>

#include "datasets/dataset.hpp"

namespace bitgrad::datasets {

// Loads CIFAR-10 as Dataset "cifar10": [N, 3, 32, 32] u8, 10 classes. Files: data_batch_1.bin ..
// data_batch_5.bin for kTrain (read in that order, 50,000 images) and test_batch.bin for kTest
// (10,000), each looked for in `dir` and then in `dir`/cifar-10-batches-bin (the tarball's folder).
// Each file is a sequence of 3,073-byte records: 1 label byte in [0, 10), then 3,072 pixel bytes,
// the 32x32 red plane, then green, then blue, each row-major, which is already [3, 32, 32].
// Class names: the non-empty lines of batches.meta.txt next to the data when it exists, else the
// standard ten (airplane .. truck). mean/stddev: (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435,
// 0.2616). Throws Error naming the file for: a missing file (listing every path tried), a size that
// is zero or not a multiple of 3,073 (stating both), a label >= 10 (stating the record index and
// value), a batches.meta.txt with other than 10 names.
Dataset load_cifar10(const std::string& dir, Split split);

// Which CIFAR-100 label to use: fine (100 classes) or coarse (20 superclasses).
enum class Cifar100Labels { kFine, kCoarse };

// Loads CIFAR-100 as Dataset "cifar100" (fine) or "cifar100-coarse": [N, 3, 32, 32] u8. Files:
// train.bin (50,000 images) or test.bin (10,000), looked for in `dir` and then in
// `dir`/cifar-100-binary. Records are 3,074 bytes: coarse label in [0, 20), fine label in [0, 100),
// then 3,072 pixel bytes as in CIFAR-10. Both labels are range-checked whichever is used. Class
// names: fine_label_names.txt or coarse_label_names.txt next to the data when present, else the
// standard names (apple .. worm; aquatic_mammals .. vehicles_2). mean/stddev:
// (0.5071, 0.4865, 0.4409) / (0.2673, 0.2564, 0.2762). Errors as for load_cifar10.
Dataset load_cifar100(const std::string& dir, Split split,
                      Cifar100Labels labels = Cifar100Labels::kFine);

}  // namespace bitgrad::datasets
