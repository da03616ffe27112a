//===- RankGroups.h - Which ranks form which groups -------------*- C++ -*-===//
//
// What a launcher tells its user before a multi-rank run, as Megatron-LM
// prints its parallel groups: the program's mesh (rank order: the last axis
// fastest) and, for each set of axes a collective of the program runs over,
// the groups of ranks it forms.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_LAUNCH_RANKGROUPS_H
#define LOOM_RUNTIME_LAUNCH_RANKGROUPS_H

#include "loom/runtime/Program.h"

#include <string>

namespace loom::runtime {

/// Lines such as
///   ranks: mesh @world [dp=2, tp=2], tp fastest
///     tp groups: {0,1} {2,3}
///     dp groups: {0,2} {1,3}
/// (at most `shown` groups per line, then how many more); empty for a
/// program on one rank.
std::string describeRankGroups(const Program &program, size_t shown = 8);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_LAUNCH_RANKGROUPS_H
