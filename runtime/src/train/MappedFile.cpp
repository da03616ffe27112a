//===- MappedFile.cpp - A read-only memory map of a whole file ------------===//

#include "MappedFile.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace loom::runtime;

MappedFile::MappedFile(const std::string &path) : path_(path) {
  auto fail = [&](const std::string &why) {
    throw std::runtime_error(path + ": " + why);
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail(std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("not a regular file");
  }
  size_ = st.st_size;
  if (size_ > 0) {
    void *p = ::mmap(nullptr, static_cast<size_t>(size_), PROT_READ,
                     MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail(std::string("cannot map: ") + std::strerror(e));
    }
    data_ = static_cast<const uint8_t *>(p);
  }
  // The map keeps the file alive; the descriptor is not needed.
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_)
    ::munmap(const_cast<uint8_t *>(data_), static_cast<size_t>(size_));
}
