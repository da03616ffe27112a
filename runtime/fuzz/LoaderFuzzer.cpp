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
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // Seal well-formed inputs first, so that mutations reach the verifier's
  // rules instead of stopping at the checksum.
  std::vector<uint8_t> bytes(data, data + size);
  loom::runtime::sealProgram(bytes);
  try {
    auto program = loom::runtime::Program::load(bytes.data(), bytes.size());
    std::string text = program->dump();
    if (text.empty())
      std::abort();
  } catch (const loom::runtime::ProgramError &) {
    // Rejected: fine.
  }
  return 0;
}
