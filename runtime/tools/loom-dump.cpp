//===- loom-dump.cpp - Print a Loom program as text -----------------------===//
//
// Usage: loom-dump PROGRAM.loom
// Verifies the program and prints its stable text form (for golden tests).
// Exit status 1 with the verifier's message on stderr if it is invalid.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Program.h"

#include <cstdio>
#include <cstring>
#include <exception>

int main(int argc, char **argv) {
  if (argc != 2 || !std::strcmp(argv[1], "--help") ||
      !std::strcmp(argv[1], "-h")) {
    std::fprintf(stderr,
                 "usage: %s PROGRAM\n"
                 "Verifies a Loom program and prints its text form.\n",
                 argv[0]);
    return argc == 2 ? 0 : 2;
  }
  try {
    auto program = loom::runtime::Program::loadFile(argv[1]);
    if (!program->hasChecksum())
      std::fprintf(stderr,
                   "loom-dump: warning: %s carries no checksum (format 1.0): "
                   "damage to it may go unnoticed\n",
                   argv[1]);
    std::fputs(program->dump().c_str(), stdout);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "loom-dump: %s\n", e.what());
    return 1;
  }
  return 0;
}
