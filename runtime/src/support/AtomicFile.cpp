//===- AtomicFile.cpp - Files that are never left half-written ------------===//

#include "loom/runtime/AtomicFile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace loom::runtime {

std::string writeTemporaryBeside(const std::string &path,
                                 const std::string &bytes) {
  auto fail = [&](const std::string &msg) {
    throw std::runtime_error(path + ": " + msg);
  };
  std::string tmpl = path + ".tmp.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0)
    fail(std::string("cannot create a temporary file: ") +
         std::strerror(errno));
  const char *p = bytes.data();
  size_t left = bytes.size();
  while (left) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int e = w < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(name.data());
      fail(std::string("write failed: ") + std::strerror(e));
    }
    p += w;
    left -= static_cast<size_t>(w);
  }
  // Default permissions (mkstemp creates 0600).
  mode_t mask = umask(0);
  umask(mask);
  fchmod(fd, 0666 & ~mask);
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(name.data());
    fail(std::string("cannot flush: ") + std::strerror(errno));
  }
  return name.data();
}

void writeFileAtomically(const std::string &path, const std::string &bytes) {
  std::string tmp = writeTemporaryBeside(path, bytes);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(path +
                             ": cannot rename into place: " + std::strerror(e));
  }
}

} // namespace loom::runtime
