//===- LoomOpCosts.cpp - FLOPs and bytes of the loom ops ------------------===//
//
// The counts per op are listed in the description of CostOpInterface
// (LoomInterfaces.td), which is what users read: keep the two in step.
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"

using namespace mlir;
using namespace loom;

int64_t loom::getTensorBytes(Type type) {
  auto tensor = cast<ShapedType>(type);
  int64_t bits = tensor.getElementType().getIntOrFloatBitWidth();
  return tensor.getNumElements() * ((bits + 7) / 8);
}

int64_t loom::getTensorBytes(TypeRange types) {
  int64_t bytes = 0;
  for (Type type : types)
    bytes += getTensorBytes(type);
  return bytes;
}

int64_t loom::getNumElements(TypeRange types) {
  int64_t elements = 0;
  for (Type type : types)
    elements += cast<ShapedType>(type).getNumElements();
  return elements;
}

static double elements(Value v) {
  return static_cast<double>(cast<ShapedType>(v.getType()).getNumElements());
}

static int64_t dimSize(Value v, int64_t dim) {
  return cast<ShapedType>(v.getType()).getDimSize(dim);
}

//===----------------------------------------------------------------------===//
// Data movement: no arithmetic
//===----------------------------------------------------------------------===//

double FillOp::getVectorFlops() { return 0; }
double ConvertOp::getVectorFlops() { return 0; }
double TransposeOp::getVectorFlops() { return 0; }
double ConcatOp::getVectorFlops() { return 0; }
double BroadcastOp::getVectorFlops() { return 0; }
double DispatchOp::getVectorFlops() { return 0; }
double EmbeddingOp::getVectorFlops() { return 0; }
double SliceOp::getVectorFlops() { return 0; }
double ReshapeOp::getVectorFlops() { return 0; }

int64_t EmbeddingOp::getBytesRead() {
  // The ids and the rows gathered, not the whole table.
  return getTensorBytes(getIds().getType()) +
         getTensorBytes(getResult().getType());
}

int64_t SliceOp::getBytesRead() {
  return getTensorBytes(getResult().getType());
}

// A reshape is a view: the memory plan gives it its operand's bytes.
int64_t ReshapeOp::getBytesRead() { return 0; }
int64_t ReshapeOp::getBytesWritten() { return 0; }

//===----------------------------------------------------------------------===//
// Element-wise, normalization, position
//===----------------------------------------------------------------------===//

double GeluOp::getVectorFlops() {
  int perElement = getApproximate() == GeluApproximation::tanh ? 9 : 5;
  return perElement * elements(getResult());
}

double SiluOp::getVectorFlops() { return 4 * elements(getResult()); }
double SwigluOp::getVectorFlops() { return 5 * elements(getResult()); }
double RmsNormOp::getVectorFlops() { return 4 * elements(getResult()); }

double LayerNormOp::getVectorFlops() {
  return (getBias() ? 7 : 6) * elements(getResult());
}

double SoftmaxOp::getVectorFlops() { return 5 * elements(getResult()); }
double RopeOp::getVectorFlops() { return 3 * elements(getResult()); }

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

double MatmulOp::getMatmulFlops() {
  int64_t rank = cast<ShapedType>(getLhs().getType()).getRank();
  int64_t k = dimSize(getLhs(), getTransposeLhs() ? rank - 2 : rank - 1);
  return 2 * elements(getResult()) * k;
}

double MatmulOp::getVectorFlops() { return 0; }

double GroupedMatmulOp::getMatmulFlops() {
  return 2 * elements(getResult()) * dimSize(getInput(), 2);
}

double GroupedMatmulOp::getVectorFlops() { return 0; }

double AttentionOp::getMatmulFlops() {
  // q·kᵀ and p·v: 2·S_k·D multiply-adds per query position and head.
  return 4 * elements(getQuery()) * dimSize(getKey(), 1);
}

double AttentionOp::getVectorFlops() {
  double scores = elements(getQuery()) / dimSize(getQuery(), 3) *
                  static_cast<double>(dimSize(getKey(), 1));
  return 6 * scores;
}

// A block of keys costs what attention does over those keys.
double AttentionBlockOp::getMatmulFlops() {
  return 4 * elements(getQuery()) * dimSize(getKey(), 1);
}

double AttentionBlockOp::getVectorFlops() {
  double scores = elements(getQuery()) / dimSize(getQuery(), 3) *
                  static_cast<double>(dimSize(getKey(), 1));
  return 6 * scores;
}

//===----------------------------------------------------------------------===//
// Loss, reductions, mixture of experts, optimizer
//===----------------------------------------------------------------------===//

double CrossEntropyOp::getVectorFlops() { return 4 * elements(getLogits()); }

double ReduceOp::getVectorFlops() {
  double flops = elements(getInput());
  if (getKind() == ReduceKind::mean)
    flops += elements(getResult());
  if (getKind() == ReduceKind::sum_squares)
    flops += elements(getInput());
  return flops;
}

double RouterOp::getVectorFlops() {
  double tokens = dimSize(getLogits(), 0);
  double experts = dimSize(getLogits(), 1);
  double k = static_cast<int64_t>(getTopK());
  double perToken = k * experts;
  if (getSoftmaxBeforeTopk())
    perToken += 5 * experts + (getNormalize() ? 2 * k : 0);
  else
    perToken += 5 * k;
  return tokens * perToken;
}

double CombineOp::getVectorFlops() {
  return 2 * elements(getWeights()) * dimSize(getInput(), 2);
}

double AdamWOp::getVectorFlops() { return 15 * elements(getParam()); }

//===----------------------------------------------------------------------===//
// Gradients (counted as their kernels compute them)
//===----------------------------------------------------------------------===//

double GeluGradOp::getVectorFlops() {
  int perElement = getApproximate() == GeluApproximation::tanh ? 14 : 10;
  return perElement * elements(getInputGrad());
}

double SiluGradOp::getVectorFlops() { return 7 * elements(getInputGrad()); }

double RmsNormGradOp::getVectorFlops() {
  // Sums of x² and x·w·dy per row, dx, and x·r·dy summed into dw.
  return 9 * elements(getInputGrad());
}

double LayerNormGradOp::getVectorFlops() {
  return 13 * elements(getInputGrad());
}

double SoftmaxGradOp::getVectorFlops() { return 4 * elements(getInputGrad()); }

double AttentionGradOp::getMatmulFlops() {
  // Recomputed q·kᵀ, then do·vᵀ, dS·k, dSᵀ·q and Pᵀ·do: five products of
  // the forward's size, where the forward has two.
  return 10 * elements(getQuery()) * dimSize(getKey(), 1);
}

double AttentionGradOp::getVectorFlops() {
  double scores = elements(getQuery()) / dimSize(getQuery(), 3) *
                  static_cast<double>(dimSize(getKey(), 1));
  return 9 * scores;
}

double AttentionBlockGradOp::getMatmulFlops() {
  return 10 * elements(getQuery()) * dimSize(getKey(), 1);
}

double AttentionBlockGradOp::getVectorFlops() {
  double scores = elements(getQuery()) / dimSize(getQuery(), 3) *
                  static_cast<double>(dimSize(getKey(), 1));
  return 9 * scores;
}

double CrossEntropyGradOp::getVectorFlops() {
  return 6 * elements(getLogits());
}

double EmbeddingGradOp::getVectorFlops() { return elements(getResultGrad()); }

double RouterGradOp::getVectorFlops() { return 8 * elements(getLogits()); }

double CombineGradOp::getVectorFlops() {
  // One multiply per element for the input cotangent and a multiply-add
  // per element for the weight cotangents.
  return 3 * elements(getResultGrad()) * dimSize(getWeights(), 1);
}
