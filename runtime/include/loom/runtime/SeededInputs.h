//===- SeededInputs.h - Deterministic inputs for a program ------*- C++ -*-===//

#ifndef LOOM_RUNTIME_SEEDEDINPUTS_H
#define LOOM_RUNTIME_SEEDEDINPUTS_H

#include "loom/runtime/HostTensor.h"
#include "loom/runtime/Program.h"

#include <cstdint>

namespace loom::runtime {

/// Values for input or parameter `buffer` of `program` from `seed`, the same
/// on every platform and independent of the program's other buffers:
/// normalization weights ("*norm*.weight", 1-D) are 1, biases ("*.bias") 0,
/// other floats N(0, 0.02) (GPT-2/Megatron initialization), and integers
/// uniform below the table rows or vocabulary the program indexes with them.
HostTensor seededInput(const Program &program, const BufferInfo &buffer,
                       uint64_t seed);

/// The whole tensor of input `binding` from `seed` (its buffer's values
/// when the binding is not a piece of a split tensor): the same on every
/// rank and for every plan, so that pieces cut from it (Pieces.h) agree.
HostTensor seededWholeInput(const Program &program, const Binding &binding,
                            uint64_t seed);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_SEEDEDINPUTS_H
