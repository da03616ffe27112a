//===- MappedFile.h - A read-only memory map of a whole file ----*- C++ -*-===//
//
// Token files can be gigabytes: they are mapped, never read into memory, so
// that opening one is instant and only the pages a batch touches are read.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_MAPPEDFILE_H
#define LOOM_RUNTIME_TRAIN_MAPPEDFILE_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace loom::runtime {

/// A regular file mapped read-only (PROT_READ, MAP_PRIVATE). An empty file
/// has size 0 and no mapping. Throws std::runtime_error "PATH: reason" when
/// the file cannot be opened, is not a regular file or cannot be mapped.
///
/// The map sees the file as it is on disk: a file truncated by another
/// process while mapped makes reads past its new end fault (SIGBUS), as
/// with any memory map; training data is not expected to change under a run.
class MappedFile {
public:
  explicit MappedFile(const std::string &path);
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  const std::string &path() const { return path_; }
  const uint8_t *data() const { return data_; }
  int64_t size() const { return size_; }

private:
  std::string path_;
  const uint8_t *data_ = nullptr;
  int64_t size_ = 0;
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_MAPPEDFILE_H
