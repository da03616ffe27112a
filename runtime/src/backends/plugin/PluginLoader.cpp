//===- PluginLoader.cpp - Finding and loading backend plugins -------------===//
//
// Built into every runtime, with no device headers: finds a plugin, loads it
// with dlopen, calls its one C entry point (BackendPlugin.h) and says
// precisely what is missing when it cannot (the plugin itself, a library it
// needs, or a device).
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Backend.h"
#include "loom/runtime/BackendPlugin.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

using namespace loom::runtime;

namespace {

std::string dirName(const std::string &path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

/// Directories to look in, most specific first.
std::vector<std::string> searchDirs() {
  std::vector<std::string> dirs;
  if (const char *env = std::getenv("LOOM_BACKEND_PATH")) {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t colon = list.find(':', start);
      std::string d =
          list.substr(start, colon == std::string::npos ? std::string::npos
                                                        : colon - start);
      if (!d.empty())
        dirs.push_back(d);
      if (colon == std::string::npos)
        break;
      start = colon + 1;
    }
  }
  // Next to this code's own library, then next to the executable and in its
  // ../lib (a build or an install puts plugins in lib/ beside bin/).
  Dl_info info{};
  if (dladdr(reinterpret_cast<void *>(&searchDirs), &info) && info.dli_fname)
    dirs.push_back(dirName(info.dli_fname));
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = '\0';
    std::string d = dirName(exe);
    dirs.push_back(d);
    dirs.push_back(d + "/../lib");
  }
  // Drop repeats (the executable's directory may come twice).
  std::vector<std::string> unique;
  std::vector<std::string> seen;
  for (const std::string &d : dirs) {
    char buf[PATH_MAX];
    std::string key = ::realpath(d.c_str(), buf) ? std::string(buf) : d;
    if (std::find(seen.begin(), seen.end(), key) != seen.end())
      continue;
    seen.push_back(key);
    unique.push_back(d);
  }
  return unique;
}

} // namespace

std::unique_ptr<Backend>
loom::runtime::loadBackendPlugin(const std::string &nameOrPath,
                                 const std::string &options) {
  bool byPath = nameOrPath.find('/') != std::string::npos;
  std::string file = byPath ? nameOrPath : "libloom_" + nameOrPath + ".so";
  std::vector<std::string> candidates;
  if (byPath) {
    candidates.push_back(file);
  } else {
    for (const std::string &d : searchDirs())
      candidates.push_back(d + "/" + file);
    candidates.push_back(file); // the dynamic loader's own path
  }
  std::string what =
      byPath ? "the backend plugin " + file : "the " + nameOrPath + " backend";

  std::string tried;
  for (const std::string &path : candidates) {
    bool isPath = path.find('/') != std::string::npos;
    if (isPath && ::access(path.c_str(), F_OK) != 0) {
      tried += "\n  " + path + ": not found";
      continue;
    }
    void *handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char *e = ::dlerror();
      std::string why = e ? e : "cannot load";
      if (isPath)
        // The file exists: a library it depends on is missing.
        throw std::runtime_error(
            "cannot load " + what + " " + path + ": " + why +
            " (are the libraries it needs, e.g. the CUDA runtime, cuBLAS "
            "and NCCL, on the loader path?)");
      tried += "\n  " + path + ": " + why;
      continue;
    }
    // The plugin stays loaded for the life of the process.
    auto create = reinterpret_cast<LoomCreateBackendPluginFn>(
        ::dlsym(handle, LOOM_BACKEND_PLUGIN_ENTRY));
    if (!create)
      throw std::runtime_error("cannot load " + what + " " + path +
                               ": it does not export " +
                               LOOM_BACKEND_PLUGIN_ENTRY);
    LoomBackendPlugin table{};
    char error[1024] = {};
    int st = create(options.c_str(), &table, error, sizeof(error));
    if (st != LOOM_OK)
      throw std::runtime_error(
          std::string(error[0] ? error
                               : "backend plugin: initialization "
                                 "failed") +
          " [" + path + "]");
    return wrapBackendPlugin(table);
  }
  throw std::runtime_error(
      "cannot load " + what + ": " + file +
      " was not found; this Loom runtime was built without it, or set "
      "LOOM_BACKEND_PATH to the directory that holds it. Looked in:" +
      tried);
}
