//===- LoaderFuzzer.cpp - libFuzzer target over the program loader --------===//
//
// Feeds arbitrary bytes to Program::load. Every input must either load (and
// then dump without trouble) or be rejected with a ProgramError; anything
// else (a crash, a sanitizer report, another exception) is a bug.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Program.h"

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    auto program = loom::runtime::Program::load(data, size);
    std::string text = program->dump();
    if (text.empty())
      std::abort();
  } catch (const loom::runtime::ProgramError &) {
    // Rejected: fine.
  }
  return 0;
}
