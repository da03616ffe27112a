//===- ProgramLoader.h - Decoding program files -----------------*- C++ -*-===//

#ifndef LOOM_RUNTIME_SRC_PROGRAM_PROGRAMLOADER_H
#define LOOM_RUNTIME_SRC_PROGRAM_PROGRAMLOADER_H

#include "loom/runtime/Program.h"
#include "loom/runtime/program_generated.h"

namespace loom::runtime {

/// Decodes and verifies programs; the one friend of Program.
class ProgramLoader {
public:
  /// `isStage`: the program is a pipeline program's stage, which may not
  /// hold stages itself (checked before anything nested is read).
  static std::shared_ptr<const Program> load(const void *data, size_t size,
                                             bool isStage = false);

private:
  /// Rewrites a program of an older minor version of the format into the
  /// current one before it is verified (Upgrade.cpp).
  static void upgrade(Program &program);
  static void upgradeFrom10(Program &program);
  /// Loads a pipeline program's stage programs (format 1.4).
  static void
  loadStages(Program &program,
             const flatbuffers::Vector<flatbuffers::Offset<fb::Stage>> &stages);
};

} // namespace loom::runtime

#endif // LOOM_RUNTIME_SRC_PROGRAM_PROGRAMLOADER_H
