//===- Npy.h - Reading and writing NumPy .npy files -------------*- C++ -*-===//
//
// NumPy format versions 1.0-3.0, little-endian, C order. dtypes: '<f4'
// (f32), '<f2' (f16), '<i4' (i32), '<i8' (i64), and bf16 as 'bfloat16' (the
// name ml_dtypes registers with NumPy; `import ml_dtypes` before np.load).
// Also reads '|b1'/'|u1' as i32 and '<f8' as f32 for convenience.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_NPY_H
#define LOOM_RUNTIME_NPY_H

#include "loom/runtime/HostTensor.h"

#include <stdexcept>
#include <string>

namespace loom::runtime {

class NpyError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Reads a .npy file. Throws NpyError naming the file and the problem.
HostTensor readNpy(const std::string &path);
/// Parses .npy bytes already in memory.
HostTensor parseNpy(const void *data, size_t size,
                    const std::string &what = "<memory>");

/// Writes a .npy file atomically: the data goes to a temporary file in the
/// same directory, which is then renamed over `path`, so readers never see a
/// half-written file. Throws NpyError.
void writeNpy(const std::string &path, const HostTensor &tensor);
/// The .npy bytes of a tensor.
std::string serializeNpy(const HostTensor &tensor);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_NPY_H
