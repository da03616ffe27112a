//===- Rendezvous.cpp - Key-value stores for process rendezvous -----------===//
//
// The file store, the store of a launched job, and the bounded calls of
// Rendezvous.h. The TCP store is TcpStore.cpp (client) and
// TcpStoreServer.cpp (server).
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/comm/Rendezvous.h"

#include "LoomStore.h"
#include "loom/runtime/Communicator.h"
#include "loom/runtime/comm/LaunchEnv.h"

#include <gloo/common/error.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/hash_store.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

using namespace loom::runtime;
using namespace loom::runtime::store;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

/// Gloo's FileStore, with waits that honour milliseconds (Gloo's compares
/// whole seconds) and Loom's calls. Its calls finish at once (a file system
/// does not stall with a rank), so only waits use their timeout.
class FileStore final : public LoomStore {
public:
  explicit FileStore(const std::string &path) : impl_(path), path_(path) {}
  std::string describe() const override { return "the file store in " + path_; }
  void set(const std::string &key, const std::vector<char> &data) override {
    impl_.set(key, data);
  }
  void set(const std::string &key, const std::vector<char> &data,
           milliseconds) override {
    impl_.set(key, data);
  }
  std::vector<char> get(const std::string &key) override {
    return get(key, kDefaultTimeout);
  }
  std::vector<char> get(const std::string &key, milliseconds timeout) override {
    wait({key}, timeout);
    return impl_.get(key);
  }
  void wait(const std::vector<std::string> &keys) override {
    wait(keys, kDefaultTimeout);
  }
  void wait(const std::vector<std::string> &keys,
            const milliseconds &timeout) override {
    auto deadline = Clock::now() + timeout;
    while (!impl_.check(keys)) {
      if (Clock::now() >= deadline)
        GLOO_THROW_IO_EXCEPTION("Wait timeout for key(s): ",
                                ::gloo::MakeString(keys));
      std::this_thread::sleep_for(milliseconds(2));
    }
  }
  bool check(const std::vector<std::string> &keys, milliseconds) override {
    return impl_.check(keys);
  }
  /// Writes a temporary file and links it to the key's name: link() fails
  /// if the name exists, which makes the claim atomic.
  std::optional<std::vector<char>> setIfAbsent(const std::string &key,
                                               const std::vector<char> &data,
                                               milliseconds) override {
    std::string object = impl_.objectPath(key);
    std::string tmp = object + ".add." + std::to_string(::getpid());
    FILE *f = std::fopen(tmp.c_str(), "wb");
    bool ok = f && std::fwrite(data.data(), 1, data.size(), f) == data.size();
    if (f)
      ok = std::fclose(f) == 0 && ok;
    bool linked = ok && ::link(tmp.c_str(), object.c_str()) == 0;
    int error = errno;
    std::remove(tmp.c_str());
    if (linked)
      return std::nullopt;
    if (!ok || error != EEXIST)
      throw CommError(describe() + ": cannot add " + key + ": " +
                      std::strerror(error));
    return impl_.get(key);
  }

private:
  struct Impl : gloo::rendezvous::FileStore {
    using gloo::rendezvous::FileStore::check;
    using gloo::rendezvous::FileStore::FileStore;
    using gloo::rendezvous::FileStore::objectPath;
  } impl_;
  std::string path_;
};

bool isLoopback(const std::string &host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

/// Runs a bounded call of a store, turning Gloo's timeouts into CommError.
template <typename Fn>
auto bounded(RendezvousStore &store, const std::string &what, Fn fn) {
  try {
    return fn();
  } catch (const gloo::Exception &e) {
    throw CommError(describeStore(store) + ": " + what + ": " + e.what());
  }
}

} // namespace

std::shared_ptr<RendezvousStore>
loom::runtime::makeFileStore(const std::string &path) {
  ::mkdir(path.c_str(), 0777);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw CommError("FileStore: " + path + " is not a directory");
  return std::make_shared<FileStore>(path);
}

std::shared_ptr<RendezvousStore>
loom::runtime::makeLaunchStore(const LaunchInfo &launch, milliseconds timeout) {
  if (launch.worldSize == 1)
    return std::make_shared<gloo::rendezvous::HashStore>();
  if (launch.masterAddr.empty() || launch.masterPort <= 0)
    throw std::runtime_error(
        "launch environment: MASTER_ADDR and MASTER_PORT must name the "
        "rendezvous server (rank 0's host and a free port) for a world of " +
        std::to_string(launch.worldSize) + " ranks under " + launch.launcher);
  StoreAccess access{launch.jobId, launch.jobToken};
  std::unique_ptr<TcpStoreServer> server;
  if (launch.rank == 0 && !launch.launcherServesStore)
    server = std::make_unique<TcpStoreServer>(launch.masterPort, access,
                                              isLoopback(launch.masterAddr));
  return makeTcpStore(launch.masterAddr, launch.masterPort, timeout, access,
                      std::move(server), launch.launcherServesStore ? -1 : 0);
}

bool loom::runtime::storeHasKeys(RendezvousStore &store,
                                 const std::vector<std::string> &keys,
                                 milliseconds timeout) {
  if (auto *s = dynamic_cast<LoomStore *>(&store))
    return s->check(keys, timeout);
  try {
    store.wait(keys, milliseconds(1));
    return true;
  } catch (const gloo::Exception &) {
    return false;
  }
}

void loom::runtime::storeSet(RendezvousStore &store, const std::string &key,
                             const std::string &value, milliseconds timeout) {
  std::vector<char> data(value.begin(), value.end());
  bounded(store, "set " + key, [&] {
    if (auto *s = dynamic_cast<LoomStore *>(&store))
      s->set(key, data, timeout);
    else
      store.set(key, data);
  });
}

std::string loom::runtime::storeGet(RendezvousStore &store,
                                    const std::string &key,
                                    milliseconds timeout) {
  std::vector<char> data = bounded(store, "get " + key, [&] {
    if (auto *s = dynamic_cast<LoomStore *>(&store))
      return s->get(key, timeout);
    store.wait({key}, timeout);
    return store.get(key);
  });
  return std::string(data.begin(), data.end());
}

std::optional<std::string>
loom::runtime::storeSetIfAbsent(RendezvousStore &store, const std::string &key,
                                const std::string &value,
                                milliseconds timeout) {
  std::vector<char> data(value.begin(), value.end());
  auto existing = bounded(store, "add " + key, [&] {
    if (auto *s = dynamic_cast<LoomStore *>(&store))
      return s->setIfAbsent(key, data, timeout);
    // Gloo's stores have no atomic claim: check, then set.
    if (storeHasKeys(store, {key}))
      return std::optional<std::vector<char>>(store.get(key));
    store.set(key, data);
    return std::optional<std::vector<char>>();
  });
  if (!existing)
    return std::nullopt;
  return std::string(existing->begin(), existing->end());
}

std::string loom::runtime::describeStore(RendezvousStore &store) {
  if (auto *s = dynamic_cast<LoomStore *>(&store))
    return s->describe();
  return "the rendezvous store";
}
