//===- Text.h - loom-sim's error line and number formats --------*- C++ -*-===//
//
// What every mode of loom-sim prints the same way: an error as one line
// "loom-sim: error: ..." (exit code 1), numbers with a fixed number of
// decimals, and the file-name test that tells a .csv or .svg argument.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TOOLS_LOOM_SIM_TEXT_H
#define LOOM_TOOLS_LOOM_SIM_TEXT_H

#include <cstdio>
#include <string>

namespace loom::sim {

/// Prints "loom-sim: error: MESSAGE" and returns the exit code, 1.
inline int fail(const std::string &message) {
  std::fprintf(stderr, "loom-sim: error: %s\n", message.c_str());
  return 1;
}

/// `v` with `digits` decimals ("0.2727").
inline std::string fixed(double v, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, v);
  return buffer;
}

inline bool endsWith(const std::string &s, const std::string &tail) {
  return s.size() >= tail.size() &&
         s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

} // namespace loom::sim

#endif // LOOM_TOOLS_LOOM_SIM_TEXT_H
