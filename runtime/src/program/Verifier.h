//===- Verifier.h - Semantic rules of Loom programs -------------*- C++ -*-===//

#ifndef LOOM_RUNTIME_SRC_PROGRAM_VERIFIER_H
#define LOOM_RUNTIME_SRC_PROGRAM_VERIFIER_H

#include "loom/runtime/Program.h"

namespace loom::runtime {

/// Checks every instruction of a decoded program (operand counts, attributes,
/// dtypes, shapes, communicators, aliasing, groups, events, reads before
/// writes). Throws ProgramError naming the instruction and the rule.
void verifyInstructions(const Program &program);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_SRC_PROGRAM_VERIFIER_H
