//===- Checksum.h - The checksum of a program file --------------*- C++ -*-===//
//
// A program file carries a 64-bit FNV-1a hash of all its bytes, computed
// with the 8 bytes of its `checksum` field taken as zero (format 1.1). Any
// change of a single byte changes the hash (each FNV-1a step is a bijection
// of the state), so every bit flip of a file is refused before the file is
// decoded; the hash is for damage, not for an attacker. Header-only: the
// compiler seals what it writes, the loader checks what it reads.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_CHECKSUM_H
#define LOOM_RUNTIME_CHECKSUM_H

#include <cstddef>
#include <cstdint>

namespace loom::runtime {

/// FNV-1a over `size` bytes, with the bytes in [skipBegin, skipEnd) read as
/// zero.
inline uint64_t programChecksum(const uint8_t *data, size_t size,
                                size_t skipBegin = 0, size_t skipEnd = 0) {
  uint64_t hash = 14695981039346656037ull;
  for (size_t i = 0; i < size; ++i) {
    uint8_t byte = i >= skipBegin && i < skipEnd ? 0 : data[i];
    hash = (hash ^ byte) * 1099511628211ull;
  }
  return hash;
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_CHECKSUM_H
