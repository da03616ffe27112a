//===- LaunchTestUtil.h - Programs and files for launcher tests -*- C++ -*-===//

#ifndef LOOM_RUNTIME_TEST_LAUNCH_LAUNCHTESTUTIL_H
#define LOOM_RUNTIME_TEST_LAUNCH_LAUNCHTESTUTIL_H

#include "ProgramBuilder.h"
#include "loom/runtime/Npy.h"
#include "loom/runtime/Program.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace loom::test {

/// y = all_reduce(x) over the mesh [tp=`ranks`] and loss = sum(y), for
/// x: f32[2]. With one rank the program is replicated (no mesh to share).
inline std::shared_ptr<const runtime::Program> allReduceSum(int ranks) {
  ProgramBuilder b("all_reduce_sum");
  b.mesh = {{"tp", ranks}};
  int32_t tp = b.comm({"tp"});
  uint32_t x = b.input("x", DType::F32, {2});
  uint32_t y = b.output("y", DType::F32, {2});
  uint32_t loss = b.output("loss", DType::F32, {});
  b.op(Opcode::AllReduce, {x}, {y}, {TAttr::S("reduction", "sum")}, tp);
  b.op(Opcode::Reduce, {y}, {loss},
       {TAttr::S("kind", "sum"), TAttr::Is("dims", {0})});
  std::vector<uint8_t> bytes = b.finish();
  return runtime::Program::load(bytes.data(), bytes.size());
}

/// A directory removed with everything in it at the end of the test.
class TempDir {
public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "loom-launch-XXXXXX")
            .string();
    if (!::mkdtemp(pattern.data()))
      ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string &path() const { return path_; }
  std::string operator/(const std::string &name) const {
    return path_ + "/" + name;
  }

private:
  std::string path_;
};

inline std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void writeX(const std::string &dir, std::vector<float> values) {
  std::filesystem::create_directories(dir);
  int64_t n = static_cast<int64_t>(values.size());
  runtime::writeNpy(dir + "/x.npy", runtime::HostTensor::f32({n}, values));
}

} // namespace loom::test

#endif // LOOM_RUNTIME_TEST_LAUNCH_LAUNCHTESTUTIL_H
