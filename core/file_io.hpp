// file_io.hpp: whole-file reading and atomic whole-file writing, with errors that name the path.
// Used by the safetensors reader/writer, the data sets and the CLI. Not here: memory mapping,
// streaming, or directory creation.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bitgrad::core {

// The whole file. Throws Error "cannot open '<path>': <strerror>" when it cannot be opened
// (missing, no permission) and "cannot read '<path>': <strerror>" when reading fails (e.g. a
// directory).
std::vector<uint8_t> read_file(const std::string& path);

// Replaces (or creates) `path` with exactly `bytes`, atomically: the data goes to a temporary file
// "<path>.tmp.<pid>.<n>" in the same directory (n counts calls in this process, so concurrent
// writers in one process never share a temporary), which is flushed with fsync and then renamed
// over `path`; the directory is fsynced afterwards (best effort). On any failure the temporary file
// is removed, `path` is left as it was, and Error "cannot write '<path>': <step>: <strerror>" is
// thrown. Readers therefore see either the old file or the complete new one, never a half-written
// one. New files get mode 0666 minus the umask. Thread-safe.
void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace bitgrad::core
