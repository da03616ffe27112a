//===- NpyFuzzer.cpp - libFuzzer target over the .npy reader --------------===//
//
// Feeds arbitrary bytes to parseNpy (what loom-run reads from --inputs). An
// NpyError is the expected answer to a bad file; a crash, a hang, an
// allocation beyond the input's size or a tensor whose bytes disagree with
// its shape is a bug.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Npy.h"

#include <cstdlib>

using namespace loom::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    HostTensor t = parseNpy(data, size, "fuzz.npy");
    if (t.byteSize() != static_cast<size_t>(t.numel()) * dtypeSize(t.dtype) ||
        t.byteSize() > size)
      std::abort();
  } catch (const NpyError &) {
  }
  return 0;
}
