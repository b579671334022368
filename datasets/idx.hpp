// idx.hpp: the IDX file format of MNIST and Fashion-MNIST (raw or gzipped), and loading a whole
// MNIST-like split, as a Dataset (u8 pixels) or as float images plus integer labels.
// Not here: other IDX element types (only unsigned bytes), batching, shuffling or augmentation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "datasets/dataset.hpp"

namespace bitgrad::datasets {

// One IDX array: dimensions as stored (big-endian u32 on disk) and the row-major u8 payload.
struct IdxArray {
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // product(shape) bytes
};

// Reads an IDX file, gzipped (detected by the magic bytes 1f 8b) or raw. Accepted magics are
// 0x00000803 (rank 3, images) and 0x00000801 (rank 1, labels), both of unsigned bytes. Throws Error
// naming the file for: a missing or unreadable file; a bad magic or element-type byte (the values
// found are printed); a rank other than 1 or 3; a header cut short; a payload shorter or longer
// than the dimensions say (truncated or trailing bytes); a corrupt or truncated gzip stream.
// Decompression stops as soon as the output exceeds the declared size, so a hostile file cannot
// exhaust memory.
IdxArray read_idx(const std::string& path);

// A whole split of an MNIST-like data set.
struct ImageSet {
  core::Tensor images;          // [N, 1, rows, cols] float in [0, 1] (pixel / 255); 28x28 for MNIST
  std::vector<int64_t> labels;  // N labels in [0, classes)
  int64_t classes = 10;
};

// Loads the training split ("train-images-idx3-ubyte" + "train-labels-idx1-ubyte") or the test
// split
// ("t10k-..."), each file found under `dir` with or without ".gz" (the ".gz" name is tried first;
// the "train-images.idx3-ubyte" spelling of some mirrors is accepted too). This is the layout of
// Debian's dataset-fashion-mnist in /usr/share/datasets/fashion-mnist and of the original MNIST.
// Throws Error when a file is missing (listing the names tried), when the images are not rank 3 or
// the labels not rank 1, when the counts differ, or when a label is >= 10.
ImageSet load_mnist_like(const std::string& dir, bool train);

// The same files as load_mnist_like, as Dataset "mnist" / "fashion-mnist": [N, 1, 28, 28] u8
// pixels, 10 classes, with the same lookup and errors. Class names: "0" .. "9" for MNIST;
// "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
// "Ankle boot" for Fashion-MNIST. mean/stddev: 0.1307/0.3081 (MNIST), 0.2860/0.3530
// (Fashion-MNIST).
Dataset load_mnist(const std::string& dir, Split split);
Dataset load_fashion_mnist(const std::string& dir, Split split);

}  // namespace bitgrad::datasets
