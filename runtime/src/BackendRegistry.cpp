//===- BackendRegistry.cpp - Creating backends, loading plugins -----------===//

#include "loom/runtime/Backend.h"

#include <climits>
#include <cstdlib>
#include <dlfcn.h>
#include <stdexcept>
#include <unistd.h>

namespace loom::runtime {

namespace {
using CreateFn = Backend *(*)(const char *);

std::unique_ptr<Backend> loadPlugin(const std::string &path,
                                    const std::string &options,
                                    std::string &error) {
  // The plugin stays loaded for the life of the process.
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *e = dlerror();
    error += "\n  " + path + ": " + (e ? e : "cannot load");
    return nullptr;
  }
  auto create = reinterpret_cast<CreateFn>(dlsym(handle, "loomCreateBackend"));
  if (!create) {
    error += "\n  " + path + ": no symbol loomCreateBackend";
    return nullptr;
  }
  Backend *b = create(options.c_str());
  if (!b) {
    error += "\n  " + path + ": loomCreateBackend returned null";
    return nullptr;
  }
  return std::unique_ptr<Backend>(b);
}
/// `<dir of the running program>/../lib`, where a build or an install
/// puts the plugins next to `bin/`; "" if unknown.
std::string besideExecutable() {
  char path[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n <= 0)
    return "";
  std::string exe(path, static_cast<size_t>(n));
  size_t slash = exe.rfind('/');
  return slash == std::string::npos ? "" : exe.substr(0, slash) + "/../lib";
}
} // namespace

std::unique_ptr<Backend> createBackend(const std::string &name,
                                       const std::string &options) {
  if (name == "cpu" || name.empty())
    return createCpuBackend();
  std::vector<std::string> candidates;
  if (name.find('/') != std::string::npos) {
    candidates.push_back(name);
  } else {
    std::string lib = "libloom_backend_" + name + ".so";
    if (const char *dir = std::getenv("LOOM_BACKEND_PATH"))
      candidates.push_back(std::string(dir) + "/" + lib);
    std::string beside = besideExecutable();
    if (!beside.empty())
      candidates.push_back(beside + "/" + lib);
    candidates.push_back(lib);
  }
  std::string error;
  for (const std::string &c : candidates)
    if (auto b = loadPlugin(c, options, error))
      return b;
  throw std::runtime_error("cannot create Loom backend '" + name +
                           "':" + error);
}

} // namespace loom::runtime
