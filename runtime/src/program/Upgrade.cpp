//===- Upgrade.cpp - Reading programs of older minor versions -------------===//
//
// A reader accepts every minor version of its major. What changed in each
// minor is undone here, on the decoded program, before the verifier sees it:
//
// 1.0 -> 1.1: instruction attributes took the names of the loom ops'
//   attributes (matmul transpose_a/transpose_b -> transpose_lhs/_rhs,
//   grouped_matmul transpose_w -> transpose_weight); combine's `capacity`
//   became the dimension it always equalled; adamw's learning rate became
//   its sixth operand (a scalar f32) instead of the attribute `lr`;
//   all_reduce's and reduce_scatter's `reduction` became required.
// 1.1 -> 1.2: only additions (the State buffer kind, the gradient opcodes,
//   sqrt, rope's `inverse`, adamw's optional gradient-norm operand and
//   `max_grad_norm`): nothing to undo.
//
//===----------------------------------------------------------------------===//

#include "ProgramLoader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace loom::runtime {
namespace {

void rename(InstrInfo &instr, const char *from, const char *to) {
  for (AttrValue &a : instr.attrs)
    if (a.name == from)
      a.name = to;
}

void erase(InstrInfo &instr, const char *name) {
  instr.attrs.erase(
      std::remove_if(instr.attrs.begin(), instr.attrs.end(),
                     [&](const AttrValue &a) { return a.name == name; }),
      instr.attrs.end());
}

} // namespace

void ProgramLoader::upgrade(Program &P) {
  if (P.major_ != 1)
    return;
  if (P.minor_ == 0)
    upgradeFrom10(P);
  P.minor_ = kFormatMinor;
}

void ProgramLoader::upgradeFrom10(Program &P) {
  // Learning rates of adamw instructions, to append to the constants.
  std::vector<std::pair<size_t, float>> rates;
  for (size_t index = 0; index < P.instrs_.size(); ++index) {
    InstrInfo &instr = P.instrs_[index];
    switch (instr.op) {
    case Opcode::Matmul:
      rename(instr, "transpose_a", "transpose_lhs");
      rename(instr, "transpose_b", "transpose_rhs");
      break;
    case Opcode::GroupedMatmul:
      rename(instr, "transpose_w", "transpose_weight");
      break;
    case Opcode::Combine: {
      // 1.0 required capacity == dim 1 of the expert outputs.
      const AttrValue *capacity = instr.attr("capacity");
      if (capacity && !instr.operands.empty() &&
          instr.operands[0] < P.buffers_.size()) {
        const BufferInfo &y = P.buffers_[instr.operands[0]];
        if (y.shape.size() == 3 && capacity->i != y.shape[1])
          throw ProgramError("invalid Loom program: " + P.describe(index) +
                             ": capacity " + std::to_string(capacity->i) +
                             " must equal dim 1 of operand 0");
      }
      erase(instr, "capacity");
      break;
    }
    case Opcode::AdamW: {
      const AttrValue *lr = instr.attr("lr");
      if (lr && instr.operands.size() == 5) {
        rates.push_back({index, static_cast<float>(lr->f)});
        erase(instr, "lr");
      }
      break;
    }
    case Opcode::AllReduce:
    case Opcode::ReduceScatter:
      if (!instr.attr("reduction")) {
        AttrValue sum;
        sum.name = "reduction";
        sum.kind = AttrKind::String;
        sum.s = "sum";
        instr.attrs.push_back(sum);
      }
      break;
    default:
      break;
    }
  }
  if (!rates.empty()) {
    // One scalar f32 constant per rate, after the existing constants.
    uint64_t base = (P.constantsSize_ + 7) / 8 * 8;
    uint64_t size = base + rates.size() * sizeof(float);
    std::unique_ptr<uint8_t, void (*)(void *)> blob(
        static_cast<uint8_t *>(std::aligned_alloc(64, (size + 63) / 64 * 64)),
        std::free);
    if (!blob)
      throw ProgramError("cannot allocate the program's constants");
    std::memset(blob.get(), 0, size);
    if (P.constantsSize_)
      std::memcpy(blob.get(), P.constants_.get(), P.constantsSize_);
    for (size_t k = 0; k < rates.size(); ++k) {
      auto [index, rate] = rates[k];
      BufferInfo b;
      b.id = static_cast<uint32_t>(P.buffers_.size());
      b.name = "adamw." + std::to_string(index) + ".lr";
      b.dtype = DType::F32;
      b.kind = BufferKind::Constant;
      b.offset = base + k * sizeof(float);
      b.size = sizeof(float);
      std::memcpy(blob.get() + b.offset, &rate, sizeof(float));
      P.instrs_[index].operands.push_back(b.id);
      P.buffers_.push_back(std::move(b));
    }
    P.constants_ = std::move(blob);
    P.constantsSize_ = size;
  }
}

} // namespace loom::runtime
