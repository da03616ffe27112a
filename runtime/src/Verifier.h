//===- Verifier.h - Semantic rules of Loom programs -------------*- C++ -*-===//

#ifndef LOOM_RUNTIME_SRC_VERIFIER_H
#define LOOM_RUNTIME_SRC_VERIFIER_H

#include "loom/runtime/Program.h"

namespace loom::runtime {

/// Checks every instruction of a decoded program (operand counts, attributes,
/// dtypes, shapes, communicators, aliasing, groups, events, reads before
/// writes). Throws ProgramError naming the instruction and the rule.
void verifyInstructions(const Program &program);

/// Normalizes a possibly negative dimension index against `rank`; returns -1
/// when out of range.
inline int normalizeDim(int64_t d, size_t rank) {
  int64_t r = static_cast<int64_t>(rank);
  if (d < -r || d >= r)
    return -1;
  return static_cast<int>(d < 0 ? d + r : d);
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_SRC_VERIFIER_H
