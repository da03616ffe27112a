//===- LoomStore.h - What Loom's stores add to Gloo's -----------*- C++ -*-===//
//
// The file and TCP stores implement Gloo's Store and this interface, which
// the helpers of Rendezvous.h (storeSet, storeSetIfAbsent, ...) use when a
// store has it: calls that give up after their own timeout (a failure path
// must not wait a whole deadline on a store that stalled with its host), an
// atomic set-if-absent (a rank claims its place in a job), and a description
// for messages.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_COMM_LOOMSTORE_H
#define LOOM_RUNTIME_SRC_COMM_LOOMSTORE_H

#include <gloo/rendezvous/store.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace loom::runtime::store {

/// Every call throws CommError naming the store on failure or timeout.
class LoomStore : public gloo::rendezvous::Store {
public:
  using Store::wait;

  /// Whether all `keys` are set, answered within `timeout`.
  virtual bool check(const std::vector<std::string> &keys,
                     std::chrono::milliseconds timeout) = 0;
  virtual void set(const std::string &key, const std::vector<char> &data,
                   std::chrono::milliseconds timeout) = 0;
  /// The value of `key`, waiting up to `timeout` for it to be set.
  virtual std::vector<char> get(const std::string &key,
                                std::chrono::milliseconds timeout) = 0;
  /// Sets `key` unless it is set; returns the value it already had if so.
  virtual std::optional<std::vector<char>>
  setIfAbsent(const std::string &key, const std::vector<char> &data,
              std::chrono::milliseconds timeout) = 0;
  /// "the rendezvous store at 127.0.0.1:29500, served by world rank 0".
  virtual std::string describe() const = 0;

  // Gloo's calls without a timeout.
  using Store::get;
  using Store::set;
};

} // namespace loom::runtime::store

#endif // LOOM_RUNTIME_SRC_COMM_LOOMSTORE_H
