// file_io.cpp: POSIX implementation of read_file and write_file_atomic (open/write/fsync/rename).
#include "core/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <system_error>

#include "core/error.hpp"

namespace bitgrad::core {

namespace {

// strerror() is not thread-safe; the generic category gives the same text.
std::string errno_text(int err) { return std::generic_category().message(err); }

// Closes a descriptor on scope exit unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  // Closes now and reports the result (close can report delayed write errors).
  int close_now() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::vector<uint8_t> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open '" + path + "': " + errno_text(errno));
  FdCloser closer(fd);

  std::vector<uint8_t> bytes;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    bytes.reserve(static_cast<size_t>(st.st_size));
  }
  // Read until EOF rather than trusting st_size: the file may change while we read it.
  size_t used = 0;
  while (true) {
    if (bytes.size() - used < 65536) bytes.resize(used + std::max<size_t>(65536, used / 2));
    const ssize_t n = ::read(fd, bytes.data() + used, bytes.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read '" + path + "': " + errno_text(errno));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  bytes.resize(used);
  bytes.shrink_to_fit();
  return bytes;
}

void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  auto fail = [&](const std::string& step, int err, bool remove_tmp) {
    if (remove_tmp) ::unlink(tmp.c_str());
    throw Error("cannot write '" + path + "': " + step + ": " + errno_text(err));
  };

  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) fail("cannot create temporary file '" + tmp + "'", errno, false);
  {
    FdCloser closer(fd);
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int err = errno;
        closer.close_now();
        fail("write failed", err, true);
      }
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
      const int err = errno;
      closer.close_now();
      fail("fsync failed", err, true);
    }
    if (closer.close_now() != 0) fail("close failed", errno, true);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename failed", errno, true);

  // Make the rename itself durable; failure here does not undo a completed write.
  const int dir_fd = ::open(directory_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace bitgrad::core
