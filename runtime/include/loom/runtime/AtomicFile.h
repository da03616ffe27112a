//===- AtomicFile.h - Files that are never left half-written ----*- C++ -*-===//

#ifndef LOOM_RUNTIME_ATOMICFILE_H
#define LOOM_RUNTIME_ATOMICFILE_H

#include <stdexcept>
#include <string>

namespace loom::runtime {

/// Writes `bytes` to a temporary file beside `path`, flushes it to disk and
/// renames it over `path`: readers see the old file or the whole new one.
/// Throws std::runtime_error "PATH: reason"; the temporary is removed.
void writeFileAtomically(const std::string &path, const std::string &bytes);

/// The first half of writeFileAtomically: writes `bytes` to a new temporary
/// file beside `path` (PATH.tmp.XXXXXX), flushed to disk, and returns its
/// name; renaming it over `path` is the caller's (e.g. once a whole set of
/// files is written). Throws std::runtime_error; nothing is left behind.
std::string writeTemporaryBeside(const std::string &path,
                                 const std::string &bytes);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_ATOMICFILE_H
