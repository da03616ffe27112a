//===- ExecutorComms.h - Communicator providers for the executor -*- C++
//-*-===//
//
// Adapts a CommunicatorProvider to the executor's CommunicatorFactory:
//
//   auto world = LocalWorld::create(4);                 // threads
//   opts.communicators = executorCommunicators(world->provider(rank));
//
//   auto comms = createGlooCommunicators(glooOptionsFromEnvironment());
//   opts.communicators = executorCommunicators(std::move(comms));  // processes
//
// The executor asks for the groups of its communicator table in table order
// on every rank, which is the order CommunicatorProvider requires.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_COMM_EXECUTORCOMMS_H
#define LOOM_RUNTIME_COMM_EXECUTORCOMMS_H

#include "loom/runtime/Runtime.h"
#include "loom/runtime/comm/CommunicatorProvider.h"

#include <memory>
#include <vector>

namespace loom::runtime {

inline CommunicatorFactory
executorCommunicators(std::shared_ptr<CommunicatorProvider> provider) {
  return [provider](const CommGroup &group) -> std::shared_ptr<Communicator> {
    std::vector<int> members(group.ranks.begin(), group.ranks.end());
    return provider->group(members);
  };
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_COMM_EXECUTORCOMMS_H
