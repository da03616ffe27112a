//===- SeededInputs.cpp - Deterministic inputs for a program --------------===//

#include "loom/runtime/SeededInputs.h"
#include "loom/runtime/Pieces.h"

#include <cmath>
#include <string>

namespace loom::runtime {
namespace {

/// SplitMix64 steps: a stream per (seed, buffer name).
uint64_t splitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

class Generator {
public:
  Generator(uint64_t seed, const std::string &name) : state(seed) {
    for (char c : name)
      state = splitMix(state ^ static_cast<uint8_t>(c));
  }
  uint64_t next() { return state = splitMix(state); }
  /// Uniform in [0, 1).
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }
  /// Standard normal (Box-Muller).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2.0 * M_PI * u2);
  }

private:
  uint64_t state;
};

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The exclusive bound of integer input `buffer`: the rows of the table an
/// embedding looks it up in, or the vocabulary of the logits it targets.
int64_t integerBound(const Program &program, uint32_t buffer) {
  int64_t bound = 0;
  for (const InstrInfo &instr : program.instructions()) {
    if (instr.operands.size() < 2 || instr.operands[1] != buffer)
      continue;
    const BufferInfo &first = program.buffers()[instr.operands[0]];
    int64_t b = instr.op == Opcode::Embedding      ? first.shape[0]
                : instr.op == Opcode::CrossEntropy ? first.shape.back()
                                                   : 0;
    if (b > 0)
      bound = bound ? std::min(bound, b) : b;
  }
  return bound > 0 ? bound : 2;
}

} // namespace

HostTensor seededInput(const Program &program, const BufferInfo &buffer,
                       uint64_t seed) {
  HostTensor tensor(buffer.dtype, buffer.shape);
  Generator gen(seed, buffer.name);
  int64_t n = tensor.numel();
  if (isInteger(buffer.dtype)) {
    uint64_t bound = static_cast<uint64_t>(integerBound(program, buffer.id));
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = static_cast<int64_t>(gen.next() % bound);
      if (buffer.dtype == DType::I32)
        tensor.as<int32_t>()[i] = static_cast<int32_t>(v);
      else
        tensor.as<int64_t>()[i] = v;
    }
    return tensor;
  }
  bool isNorm = buffer.shape.size() == 1 &&
                buffer.name.find("norm") != std::string::npos &&
                endsWith(buffer.name, ".weight");
  bool isBias = endsWith(buffer.name, ".bias");
  for (int64_t i = 0; i < n; ++i) {
    float v = isNorm   ? 1.0f
              : isBias ? 0.0f
                       : static_cast<float>(0.02 * gen.normal());
    if (buffer.dtype == DType::F32)
      tensor.as<float>()[i] = v;
    else if (buffer.dtype == DType::BF16)
      tensor.as<uint16_t>()[i] = f32ToBf16(v);
    else if (buffer.dtype == DType::F16)
      tensor.as<uint16_t>()[i] = f32ToF16(v);
  }
  return tensor;
}

HostTensor seededWholeInput(const Program &program, const Binding &binding,
                            uint64_t seed) {
  BufferInfo whole = program.buffers()[binding.buffer];
  whole.shape = wholeShape(program, binding);
  return seededInput(program, whole, seed);
}

} // namespace loom::runtime
