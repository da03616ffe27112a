//===- Verifier.cpp - Semantic rules of Loom program instructions ---------===//
//
// The op table (OpTable.h, generated from the loom ops' TableGen) gives each
// opcode's operand and result counts, in-place capability and attributes,
// and marks the element-wise opcodes; checkShapes() holds the dtype and
// shape rule of every other opcode (docs/OpSemantics.md). Every failure
// names the instruction, its source location and the rule broken.
//
//===----------------------------------------------------------------------===//

#include "Verifier.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace loom::runtime {
namespace {

/// "[lo..hi, +length)": the pieces a rank-dependent start gives (one
/// start when lo = hi).
std::string pieceRange(int64_t lo, int64_t hi, int64_t length) {
  return "[" + std::to_string(lo) +
         (lo != hi ? ".." + std::to_string(hi) : std::string()) + ", +" +
         std::to_string(length) + ")";
}

std::string shapeStr(const std::vector<int64_t> &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i)
    r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

/// Checks one instruction.
class InstrChecker {
public:
  InstrChecker(const Program &p, size_t idx)
      : P(p), idx(idx), I(p.instructions()[idx]) {}

  [[noreturn]] void fail(const std::string &rule) const {
    throw ProgramError("invalid Loom program: " + P.describe(idx) + ": " +
                       rule);
  }

  const BufferInfo &in(size_t k) const { return P.buffers()[I.operands[k]]; }
  const BufferInfo &out(size_t k) const { return P.buffers()[I.results[k]]; }
  std::string inName(size_t k) const { return name("operand", k, in(k)); }
  std::string outName(size_t k) const { return name("result", k, out(k)); }
  static std::string name(const char *role, size_t k, const BufferInfo &b) {
    std::string s = std::string(role) + " " + std::to_string(k) + " (buffer " +
                    std::to_string(b.id);
    if (!b.name.empty())
      s += " '" + b.name + "'";
    return s + ", " + b.typeStr() + ")";
  }

  void checkStructure();
  void checkShapes();

private:
  void requireFloat(const BufferInfo &b, const std::string &what) const {
    if (!isFloat(b.dtype))
      fail(what + " must have a floating element type");
  }
  void requireInt(const BufferInfo &b, const std::string &what) const {
    if (!isInteger(b.dtype))
      fail(what + " must have an integer element type (i32 or i64)");
  }
  void sameDType(const BufferInfo &a, const std::string &an,
                 const BufferInfo &b, const std::string &bn) const {
    if (a.dtype != b.dtype)
      fail(bn + " must have the element type of " + an);
  }
  void sameShape(const BufferInfo &a, const std::string &an,
                 const BufferInfo &b, const std::string &bn) const {
    if (a.shape != b.shape)
      fail(bn + " must have the shape of " + an);
  }
  void expectShape(const BufferInfo &b, const std::string &bn,
                   const std::vector<int64_t> &shape) const {
    if (b.shape != shape)
      fail(bn + " must have shape " + shapeStr(shape));
  }
  void requireRank(const BufferInfo &b, const std::string &bn, size_t rank,
                   bool atLeast = false) const {
    if (atLeast ? b.shape.size() < rank : b.shape.size() != rank)
      fail(bn + " must have rank " + (atLeast ? ">= " : "") +
           std::to_string(rank));
  }
  /// A Float attribute, or its default when the instruction omits it.
  double floatAttr(const char *attrName) const {
    const AttrSpec *s = findOpSpec(I.op)->findAttr(attrName);
    return I.getFloat(attrName, s ? s->defaultFloat : 0);
  }
  int dimAttr(const char *attrName, size_t rank) const {
    int d = normalizeDim(I.getInt(attrName), rank);
    if (d < 0)
      fail("attribute '" + std::string(attrName) +
           "' = " + std::to_string(I.getInt(attrName)) +
           " is not a dimension of a rank " + std::to_string(rank) + " tensor");
    return d;
  }
  int64_t commSize() const { return P.communicators()[I.communicator].size; }
  void elementwise(size_t nIn);
  void checkCollective();
  /// The shapes of the gradient ops; false for other opcodes.
  bool checkGradientShapes();
  /// attention's q, k, v (operands 0-2).
  /// Attention's q, k, v (operands 0-2); `queriesWithinKeys`: the queries
  /// are positions of the keys' sequence (not so for a block of keys).
  void attentionOperands(bool queriesWithinKeys = true);
  /// An expert-parallel block of `local` experts: expert_start on every
  /// rank and the block within total_experts (default: local).
  void expertBlock(int64_t local);
  /// token_groups (default 1) divides the `tokens` and each expert's
  /// `slots`.
  void tokenGroups(int64_t tokens, int64_t slots);
  /// That a piece of `length` starting at the single-element, possibly
  /// rank-dependent attribute `name` (0 when absent) lies in [0, limit) on
  /// every rank; else "<what> [lo..hi, +length) lie outside the <limit>
  /// <of>".
  void pieceWithin(const char *name, int64_t length, int64_t limit,
                   const std::string &what, const std::string &of);
  /// A norm's x, w (operands 0-1) for a row of x.shape.back().
  void normOperands();

  const Program &P;
  size_t idx;
  const InstrInfo &I;
};

void InstrChecker::checkStructure() {
  const OpSpec *spec = findOpSpec(I.op);
  if (!spec)
    fail("unknown opcode " + std::to_string(static_cast<int>(I.op)) +
         " (written by a newer compiler?)");
  std::string op = spec->name;
  int nIn = static_cast<int>(I.operands.size());
  int nOut = static_cast<int>(I.results.size());
  if (nIn < spec->minOperands ||
      (spec->maxOperands != OpSpec::kAnyNumber && nIn > spec->maxOperands)) {
    std::string want = std::to_string(spec->minOperands);
    if (spec->maxOperands == OpSpec::kAnyNumber)
      want = "at least " + want;
    else if (spec->maxOperands != spec->minOperands)
      want += " to " + std::to_string(spec->maxOperands);
    fail(op + " takes " + want + " operands, got " + std::to_string(nIn));
  }
  if (nOut != spec->numResults)
    fail(op + " has " + std::to_string(spec->numResults) + " results, got " +
         std::to_string(nOut));
  size_t nBuf = P.buffers().size();
  for (int k = 0; k < nIn; ++k)
    if (I.operands[k] >= nBuf)
      fail("operand " + std::to_string(k) + " is buffer " +
           std::to_string(I.operands[k]) + ", but there are only " +
           std::to_string(nBuf) + " buffers");
  for (int k = 0; k < nOut; ++k) {
    if (I.results[k] >= nBuf)
      fail("result " + std::to_string(k) + " is buffer " +
           std::to_string(I.results[k]) + ", but there are only " +
           std::to_string(nBuf) + " buffers");
    if (out(k).kind == BufferKind::Constant)
      fail(outName(k) + " is a constant and cannot be written");
  }

  // Attributes: known names, right kinds, required ones present.
  std::set<std::string> seen;
  for (const AttrValue &a : I.attrs) {
    if (!seen.insert(a.name).second)
      fail("attribute '" + a.name + "' appears twice");
    const AttrSpec *as = spec->findAttr(a.name);
    if (!as)
      fail(op + " has no attribute '" + a.name + "'");
    if (a.kind != as->kind)
      fail("attribute '" + a.name + "' must be of kind " +
           attrKindName(as->kind) + ", got " + attrKindName(a.kind));
    if (!a.terms.empty() && !as->rankDependent)
      fail("attribute '" + a.name + "' of " + op +
           " cannot depend on the rank's mesh coordinates");
    // A fill may write infinities (masks); every other float is a factor
    // or a hyperparameter.
    if (a.kind == AttrKind::Float && !std::isfinite(a.f) &&
        I.op != Opcode::Fill)
      fail("attribute '" + a.name + "' must be finite");
    if (a.kind == AttrKind::Bool && a.i != 0 && a.i != 1)
      fail("bool attribute '" + a.name + "' must be 0 or 1");
    if (a.kind == AttrKind::Ints && a.ints.size() > size_t(kMaxRank))
      fail("attribute '" + a.name + "' has more than " +
           std::to_string(kMaxRank) + " values");
    if (a.kind == AttrKind::String &&
        std::none_of(as->values.begin(), as->values.end(),
                     [&](const char *v) { return a.s == v; })) {
      std::string allowed;
      for (const char *v : as->values)
        allowed += std::string(allowed.empty() ? "" : ", ") + v;
      fail(a.name + " must be one of " + allowed + "; got '" + a.s + "'");
    }
    if (as->isDim) {
      size_t rank = I.operands.empty() ? 0 : in(0).shape.size();
      std::vector<int64_t> dims =
          a.kind == AttrKind::Ints ? a.ints : std::vector<int64_t>{a.i};
      for (int64_t d : dims)
        if (normalizeDim(d, rank) < 0)
          fail("attribute '" + a.name + "' = " + std::to_string(d) +
               " is not a dimension of a rank " + std::to_string(rank) +
               " tensor");
    }
  }
  for (const AttrSpec &s : spec->attrs)
    if (s.required && !seen.count(s.name))
      fail(op + " requires attribute '" + s.name + "' (" +
           attrKindName(s.kind) + ")");

  // Communicator and stream.
  if (isCollective(I.op)) {
    if (I.communicator < 0 ||
        static_cast<size_t>(I.communicator) >= P.communicators().size())
      fail(op + " needs a communicator; id " + std::to_string(I.communicator) +
           " is not in the table of " +
           std::to_string(P.communicators().size()));
  } else if (I.communicator != -1 &&
             (I.op != Opcode::GroupStart && I.op != Opcode::GroupEnd)) {
    fail(op + " is not a collective but names communicator " +
         std::to_string(I.communicator));
  } else if (I.communicator < -1 ||
             I.communicator >= static_cast<int64_t>(P.communicators().size())) {
    fail("communicator id " + std::to_string(I.communicator) +
         " is not in the table");
  }
  if (static_cast<unsigned>(I.stream) > 1)
    fail("unknown stream " + std::to_string(static_cast<int>(I.stream)));

  // Aliasing: results never partially overlap operands or each other.
  auto overlaps = [](const BufferInfo &a, const BufferInfo &b) {
    if (!a.inArena() || !b.inArena() || !a.size || !b.size)
      return false;
    return a.offset < b.offset + b.size && b.offset < a.offset + a.size;
  };
  for (int r = 0; r < nOut; ++r) {
    for (int r2 = r + 1; r2 < nOut; ++r2)
      if (overlaps(out(r), out(r2)))
        fail(outName(r) + " overlaps " + outName(r2));
    for (int k = 0; k < nIn; ++k) {
      if (!overlaps(out(r), in(k)))
        continue;
      bool same = out(r).offset == in(k).offset && out(r).size == in(k).size;
      bool allowed = spec->inPlace && same;
      if (!allowed)
        fail(outName(r) + " overlaps " + inName(k) +
             (spec->inPlace ? " (only an exact in-place alias is allowed)"
                            : " (" + op + " cannot run in place)"));
    }
  }
}

void InstrChecker::elementwise(size_t nIn) {
  const BufferInfo &y = out(0);
  requireFloat(y, outName(0));
  for (size_t k = 0; k < nIn; ++k) {
    sameShape(y, outName(0), in(k), inName(k));
    sameDType(y, outName(0), in(k), inName(k));
  }
}

void InstrChecker::checkCollective() {
  int64_t n = commSize();
  const BufferInfo *x = I.operands.empty() ? nullptr : &in(0);
  const BufferInfo *y = I.results.empty() ? nullptr : &out(0);
  switch (I.op) {
  case Opcode::AllReduce:
  case Opcode::CollectivePermute:
    sameShape(*x, inName(0), *y, outName(0));
    sameDType(*x, inName(0), *y, outName(0));
    break;
  case Opcode::AllGather: {
    sameDType(*x, inName(0), *y, outName(0));
    int d = dimAttr("gather_dim", x->shape.size());
    std::vector<int64_t> s = x->shape;
    if (s[d] > (int64_t(1) << 40) / n)
      fail(inName(0) + ": gathered dim is too large");
    s[d] *= n;
    expectShape(*y,
                outName(0) + " (gather_dim " + std::to_string(d) +
                    " times group size " + std::to_string(n) + ")",
                s);
    break;
  }
  case Opcode::ReduceScatter: {
    sameDType(*x, inName(0), *y, outName(0));
    int d = dimAttr("scatter_dim", x->shape.size());
    if (x->shape[d] % n)
      fail(inName(0) + ": scatter_dim " + std::to_string(d) + " of size " +
           std::to_string(x->shape[d]) +
           " is not divisible by the group size " + std::to_string(n));
    std::vector<int64_t> s = x->shape;
    s[d] /= n;
    expectShape(*y, outName(0), s);
    break;
  }
  case Opcode::AllToAll: {
    sameDType(*x, inName(0), *y, outName(0));
    int sd = dimAttr("split_dim", x->shape.size());
    int cd = dimAttr("concat_dim", x->shape.size());
    if (x->shape[sd] % n)
      fail(inName(0) + ": split_dim " + std::to_string(sd) + " of size " +
           std::to_string(x->shape[sd]) +
           " is not divisible by the group size " + std::to_string(n));
    std::vector<int64_t> s = x->shape;
    s[sd] /= n;
    if (s[cd] > (int64_t(1) << 40) / n)
      fail(inName(0) + ": concatenated dim is too large");
    s[cd] *= n;
    expectShape(*y, outName(0), s);
    break;
  }
  default:
    break;
  }
  // The table checked the value; a mean divides.
  if (I.getString("reduction", "sum") == "mean" && x && !isFloat(x->dtype))
    fail("reduction 'mean' needs a floating element type");
}

void InstrChecker::checkShapes() {
  const OpSpec &spec = *findOpSpec(I.op);
  if (spec.shapeRule == ShapeRule::Elementwise) {
    elementwise(I.operands.size());
    return;
  }
  if (checkGradientShapes())
    return;
  switch (I.op) {
  case Opcode::Fill:
  case Opcode::GroupStart:
  case Opcode::GroupEnd:
    return;
  case Opcode::Send:
  case Opcode::Recv:
    if (I.getInt("peer_shift") == 0)
      fail("peer_shift must not be 0 (a rank cannot send to itself)");
    return;
  case Opcode::EventRecord:
  case Opcode::EventWait:
    if (I.getInt("event") < 0)
      fail("event id must be >= 0");
    return;
  case Opcode::Copy:
    if (in(0).numel != out(0).numel)
      fail(outName(0) + " must have as many elements as " + inName(0));
    return;
  case Opcode::Convert:
    sameShape(in(0), inName(0), out(0), outName(0));
    return;
  case Opcode::Reshape:
    if (in(0).numel != out(0).numel)
      fail(outName(0) + " must have as many elements as " + inName(0));
    sameDType(in(0), inName(0), out(0), outName(0));
    return;
  case Opcode::RmsNorm:
  case Opcode::LayerNorm: {
    normOperands();
    const BufferInfo &x = in(0);
    sameShape(x, inName(0), out(0), outName(0));
    sameDType(x, inName(0), out(0), outName(0));
    if (I.operands.size() > 2) {
      expectShape(in(2), inName(2), {x.shape.back()});
      sameDType(x, inName(0), in(2), inName(2));
    }
    return;
  }
  case Opcode::Softmax:
    elementwise(1);
    if (normalizeDim(I.getInt("axis", -1), in(0).shape.size()) < 0)
      fail("axis " + std::to_string(I.getInt("axis", -1)) +
           " is not a dimension of " + inName(0));
    return;
  case Opcode::Rope:
    elementwise(1);
    requireRank(in(0), inName(0) + " ([B, S, N, D])", 4);
    if (in(0).shape[3] % 2)
      fail(inName(0) + ": head dim D must be even");
    if (floatAttr("theta") <= 0)
      fail("theta must be > 0");
    return;
  case Opcode::Attention:
    attentionOperands();
    sameShape(in(0), inName(0), out(0), outName(0));
    sameDType(in(0), inName(0), out(0), outName(0));
    return;
  case Opcode::AttentionBlock: {
    attentionOperands(/*queriesWithinKeys=*/false);
    sameShape(in(0), inName(0), out(0), outName(0));
    sameDType(in(0), inName(0), out(0), outName(0));
    if (out(1).dtype != DType::F32)
      fail(outName(1) + " (the log-sum-exp) must be f32");
    expectShape(
        out(1), outName(1),
        std::vector<int64_t>(in(0).shape.begin(), in(0).shape.end() - 1));
    return;
  }
  case Opcode::CrossEntropy: {
    const BufferInfo &l = in(0), &t = in(1);
    requireRank(l, inName(0), 1, true);
    requireFloat(l, inName(0));
    requireInt(t, inName(1));
    std::vector<int64_t> lead(l.shape.begin(), l.shape.end() - 1);
    expectShape(t, inName(1), lead);
    if (out(0).dtype != DType::F32 || !out(0).shape.empty())
      fail(outName(0) + " must be a scalar f32 (shape [])");
    if (l.shape.back() == 0)
      fail(inName(0) + ": vocabulary dimension is empty");
    if (I.operands.size() > 2) { // vocab-parallel: the log-sum-exp per row
      if (in(2).dtype != DType::F32)
        fail(inName(2) + " (the log-sum-exp) must be f32");
      expectShape(in(2), inName(2), lead);
    }
    return;
  }
  case Opcode::Embedding: {
    const BufferInfo &t = in(0), &ids = in(1);
    requireRank(t, inName(0) + " ([V, H])", 2);
    requireFloat(t, inName(0));
    requireInt(ids, inName(1));
    if (ids.shape.size() + 1 > kMaxRank)
      fail(inName(1) + " has too high a rank");
    std::vector<int64_t> s = ids.shape;
    s.push_back(t.shape[1]);
    expectShape(out(0), outName(0), s);
    sameDType(t, inName(0), out(0), outName(0));
    return;
  }
  case Opcode::Matmul: {
    const BufferInfo &a = in(0), &b = in(1);
    requireRank(a, inName(0), 2, true);
    requireRank(b, inName(1), 2, true);
    requireFloat(a, inName(0));
    sameDType(a, inName(0), b, inName(1));
    sameDType(a, inName(0), out(0), outName(0));
    size_t ra = a.shape.size(), rb = b.shape.size();
    std::vector<int64_t> batch(a.shape.begin(), a.shape.end() - 2);
    if (rb != 2 &&
        std::vector<int64_t>(b.shape.begin(), b.shape.end() - 2) != batch)
      fail("batch dims of " + inName(1) + " must equal those of " + inName(0) +
           " or be absent");
    bool ta = I.getBool("transpose_lhs"), tb = I.getBool("transpose_rhs");
    int64_t m = ta ? a.shape[ra - 1] : a.shape[ra - 2];
    int64_t ka = ta ? a.shape[ra - 2] : a.shape[ra - 1];
    int64_t kb = tb ? b.shape[rb - 1] : b.shape[rb - 2];
    int64_t n = tb ? b.shape[rb - 2] : b.shape[rb - 1];
    if (ka != kb)
      fail("contraction dims differ: " + inName(0) +
           " has K = " + std::to_string(ka) + ", " + inName(1) +
           " has K = " + std::to_string(kb));
    batch.push_back(m);
    batch.push_back(n);
    expectShape(out(0), outName(0), batch);
    return;
  }
  case Opcode::GroupedMatmul: {
    const BufferInfo &x = in(0), &w = in(1);
    requireRank(x, inName(0) + " ([E, C, K])", 3);
    requireRank(w, inName(1) + " ([E, K, N])", 3);
    requireFloat(x, inName(0));
    sameDType(x, inName(0), w, inName(1));
    sameDType(x, inName(0), out(0), outName(0));
    bool tw = I.getBool("transpose_weight");
    int64_t kw = tw ? w.shape[2] : w.shape[1];
    int64_t n = tw ? w.shape[1] : w.shape[2];
    if (w.shape[0] != x.shape[0])
      fail("expert counts differ between " + inName(0) + " and " + inName(1));
    if (kw != x.shape[2])
      fail("contraction dims differ: " + inName(0) +
           " has K = " + std::to_string(x.shape[2]) + ", " + inName(1) +
           " has K = " + std::to_string(kw));
    expectShape(out(0), outName(0), {x.shape[0], x.shape[1], n});
    return;
  }
  case Opcode::Transpose: {
    const BufferInfo &x = in(0);
    std::vector<int64_t> perm = I.getInts("permutation");
    if (perm.size() != x.shape.size())
      fail("permutation has " + std::to_string(perm.size()) +
           " entries for a rank " + std::to_string(x.shape.size()) +
           " operand");
    std::vector<bool> used(perm.size());
    std::vector<int64_t> s;
    for (int64_t p : perm) {
      if (p < 0 || p >= static_cast<int64_t>(perm.size()) || used[p])
        fail("permutation " + shapeStr(perm) + " is not a permutation");
      used[p] = true;
      s.push_back(x.shape[p]);
    }
    expectShape(out(0), outName(0), s);
    sameDType(x, inName(0), out(0), outName(0));
    return;
  }
  case Opcode::Slice: {
    const BufferInfo &x = in(0);
    const AttrValue *off = I.attr("offsets");
    std::vector<int64_t> sizes = I.getInts("sizes");
    if (off->ints.size() != x.shape.size() || sizes.size() != x.shape.size())
      fail("offsets and sizes need one entry per dimension of " + inName(0));
    for (size_t d = 0; d < sizes.size(); ++d) {
      int64_t lo = off->minValue(P.meshes(), d);
      int64_t hi = off->maxValue(P.meshes(), d);
      if (sizes[d] < 0 || lo < 0 || hi > x.shape[d] - sizes[d])
        fail("slice " + pieceRange(lo, hi, sizes[d]) +
             " is out of bounds in dim " + std::to_string(d) + " of " +
             inName(0));
    }
    expectShape(out(0), outName(0), sizes);
    sameDType(x, inName(0), out(0), outName(0));
    return;
  }
  case Opcode::Concat: {
    const BufferInfo &x0 = in(0);
    int d = dimAttr("dim", x0.shape.size());
    std::vector<int64_t> s = x0.shape;
    s[d] = 0;
    for (size_t k = 0; k < I.operands.size(); ++k) {
      const BufferInfo &x = in(k);
      sameDType(x0, inName(0), x, inName(k));
      if (x.shape.size() != x0.shape.size())
        fail(inName(k) + " must have the rank of " + inName(0));
      for (size_t j = 0; j < s.size(); ++j)
        if (static_cast<int>(j) != d && x.shape[j] != x0.shape[j])
          fail(inName(k) + " differs from " + inName(0) +
               " outside the concat dim");
      s[d] += x.shape[d];
    }
    expectShape(out(0), outName(0), s);
    sameDType(x0, inName(0), out(0), outName(0));
    return;
  }
  case Opcode::Broadcast: {
    const BufferInfo &x = in(0), &y = out(0);
    std::vector<int64_t> dims = I.getInts("dims");
    sameDType(x, inName(0), y, outName(0));
    if (dims.size() != x.shape.size())
      fail("dims needs one entry per dimension of " + inName(0));
    for (size_t i = 0; i < dims.size(); ++i) {
      if (dims[i] < 0 || dims[i] >= static_cast<int64_t>(y.shape.size()) ||
          (i && dims[i] <= dims[i - 1]))
        fail("dims " + shapeStr(dims) +
             " must be strictly increasing result dimensions");
      if (x.shape[i] != 1 && x.shape[i] != y.shape[dims[i]])
        fail(inName(0) + " dim " + std::to_string(i) +
             " must be 1 or equal result dim " + std::to_string(dims[i]));
    }
    return;
  }
  case Opcode::Reduce: {
    const BufferInfo &x = in(0);
    requireFloat(x, inName(0));
    sameDType(x, inName(0), out(0), outName(0));
    std::string kind = I.getString("kind");
    std::vector<bool> red(x.shape.size());
    for (int64_t d : I.getInts("dims")) {
      int n = normalizeDim(d, x.shape.size());
      if (n < 0 || red[n])
        fail("dims " + shapeStr(I.getInts("dims")) +
             " must be distinct dimensions of " + inName(0));
      red[n] = true;
    }
    bool keep = I.getBool("keep_dims");
    std::vector<int64_t> s;
    for (size_t d = 0; d < x.shape.size(); ++d) {
      if (!red[d])
        s.push_back(x.shape[d]);
      else if (keep)
        s.push_back(1);
      else if (x.shape[d] == 0 && kind != "sum")
        fail("cannot reduce an empty dimension with " + kind);
    }
    expectShape(out(0), outName(0), s);
    return;
  }
  case Opcode::Router: {
    const BufferInfo &l = in(0);
    requireRank(l, inName(0) + " ([T, E])", 2);
    requireFloat(l, inName(0));
    int64_t k = I.getInt("top_k");
    if (k < 1 || k > l.shape[1])
      fail("top_k " + std::to_string(k) + " must be in [1, " +
           std::to_string(l.shape[1]) + "]");
    expectShape(out(0), outName(0), {l.shape[0], k});
    sameDType(l, inName(0), out(0), outName(0));
    expectShape(out(1), outName(1), {l.shape[0], k});
    if (out(1).dtype != DType::I32)
      fail(outName(1) + " must be i32");
    return;
  }
  case Opcode::Dispatch: {
    const BufferInfo &x = in(0), &ids = in(1);
    requireRank(x, inName(0) + " ([T, H])", 2);
    requireFloat(x, inName(0));
    requireRank(ids, inName(1) + " ([T, k])", 2);
    requireInt(ids, inName(1));
    if (ids.shape[0] != x.shape[0])
      fail(inName(1) + " must have T = " + std::to_string(x.shape[0]) +
           " rows");
    int64_t e = I.getInt("num_experts"), c = I.getInt("capacity");
    if (e < 1 || c < 0)
      fail("num_experts must be >= 1 and capacity >= 0");
    expectShape(out(0), outName(0), {e, c, x.shape[1]});
    sameDType(x, inName(0), out(0), outName(0));
    expertBlock(e);
    tokenGroups(x.shape[0], c);
    return;
  }
  case Opcode::Combine: {
    const BufferInfo &y = in(0), &w = in(1), &ids = in(2);
    requireRank(y, inName(0) + " ([E, C, H])", 3);
    requireFloat(y, inName(0));
    requireRank(w, inName(1) + " ([T, k])", 2);
    sameDType(y, inName(0), w, inName(1));
    requireInt(ids, inName(2));
    sameShape(w, inName(1), ids, inName(2));
    expectShape(out(0), outName(0), {w.shape[0], y.shape[2]});
    sameDType(y, inName(0), out(0), outName(0));
    expertBlock(y.shape[0]);
    tokenGroups(w.shape[0], y.shape[1]);
    return;
  }
  case Opcode::AdamW: {
    const BufferInfo &p = in(0);
    for (size_t k = 0; k < 4; ++k) {
      requireFloat(in(k), inName(k));
      sameShape(p, inName(0), in(k), inName(k));
    }
    requireInt(in(4), inName(4));
    if (in(4).numel != 1)
      fail(inName(4) + " (the step) must hold one element");
    if (in(5).dtype != DType::F32 || in(5).numel != 1)
      fail(inName(5) + " (the learning rate) must be one f32");
    static const size_t kFrom[3] = {0, 2, 3};
    for (size_t r = 0; r < 3; ++r) {
      sameShape(in(kFrom[r]), inName(kFrom[r]), out(r), outName(r));
      sameDType(in(kFrom[r]), inName(kFrom[r]), out(r), outName(r));
    }
    double b1 = floatAttr("beta1"), b2 = floatAttr("beta2");
    if (b1 < 0 || b1 >= 1 || b2 < 0 || b2 >= 1)
      fail("beta1 and beta2 must be in [0, 1)");
    if (I.operands.size() > 6 &&
        (in(6).dtype != DType::F32 || in(6).numel != 1))
      fail(inName(6) + " (the gradient norm) must be one f32");
    if (floatAttr("max_grad_norm") < 0)
      fail("max_grad_norm must be >= 0");
    if (floatAttr("max_grad_norm") > 0 && I.operands.size() < 7)
      fail("max_grad_norm needs the gradient norm operand");
    return;
  }
  default:
    checkCollective();
    return;
  }
}

void InstrChecker::pieceWithin(const char *name, int64_t length, int64_t limit,
                               const std::string &what, const std::string &of) {
  int64_t lo = 0, hi = 0;
  if (const AttrValue *start = I.attr(name)) {
    lo = start->minValue(P.meshes(), 0);
    hi = start->maxValue(P.meshes(), 0);
  }
  if (lo < 0 || hi + length > limit)
    fail(what + " " + pieceRange(lo, hi, length) + " lie outside the " +
         std::to_string(limit) + " " + of);
}

void InstrChecker::expertBlock(int64_t local) {
  pieceWithin("expert_start", local, I.getInt("total_experts", local),
              "experts", "experts (total_experts)");
}

void InstrChecker::tokenGroups(int64_t tokens, int64_t slots) {
  int64_t groups = I.getInt("token_groups", 1);
  if (groups < 1 || tokens % groups != 0 || slots % groups != 0)
    fail("token_groups (" + std::to_string(groups) +
         ") must be >= 1 and divide the " + std::to_string(tokens) +
         " tokens and the " + std::to_string(slots) + " slots of each expert");
}

void InstrChecker::attentionOperands(bool queriesWithinKeys) {
  const BufferInfo &q = in(0), &k = in(1), &v = in(2);
  for (size_t j = 0; j < 3; ++j) {
    requireRank(in(j), inName(j) + " ([B, S, H, D])", 4);
    sameDType(q, inName(0), in(j), inName(j));
  }
  requireFloat(q, inName(0));
  sameShape(k, inName(1), v, inName(2));
  if (k.shape[0] != q.shape[0] || k.shape[3] != q.shape[3])
    fail(inName(1) + " must match " + inName(0) + " in batch and head dim");
  if (k.shape[2] == 0 || q.shape[2] % k.shape[2])
    fail("query heads " + std::to_string(q.shape[2]) +
         " must be a multiple of key/value heads " +
         std::to_string(k.shape[2]));
  if (!queriesWithinKeys)
    return;
  // The queries stand at query_offset .. query_offset + Sq - 1 of the keys'
  // positions on every rank (a piece of the sequence under context
  // parallelism).
  pieceWithin("query_offset", q.shape[1], k.shape[1], "query positions",
              "key positions");
}

void InstrChecker::normOperands() {
  const BufferInfo &x = in(0);
  requireRank(x, inName(0), 1, true);
  requireFloat(x, inName(0));
  expectShape(in(1), inName(1), {x.shape.back()});
  sameDType(x, inName(0), in(1), inName(1));
  if (floatAttr("epsilon") < 0)
    fail("epsilon must be >= 0");
}

bool InstrChecker::checkGradientShapes() {
  auto same = [&](const BufferInfo &a, const std::string &aName,
                  const BufferInfo &b, const std::string &bName) {
    sameShape(a, aName, b, bName);
    sameDType(a, aName, b, bName);
  };
  switch (I.op) {
  case Opcode::RmsNormGrad:
  case Opcode::LayerNormGrad:
    // x, w, dy -> dx, dw (, db).
    normOperands();
    same(in(0), inName(0), in(2), inName(2));
    same(in(0), inName(0), out(0), outName(0));
    for (size_t r = 1; r < I.results.size(); ++r)
      same(in(1), inName(1), out(r), outName(r));
    return true;
  case Opcode::SoftmaxGrad:
    elementwise(2);
    if (normalizeDim(I.getInt("axis", -1), in(0).shape.size()) < 0)
      fail("axis " + std::to_string(I.getInt("axis", -1)) +
           " is not a dimension of " + inName(0));
    return true;
  case Opcode::AttentionBlockGrad:
    // q, k, v, o, do, lse -> dq, dk, dv.
    attentionOperands(/*queriesWithinKeys=*/false);
    same(in(0), inName(0), in(3), inName(3));
    same(in(0), inName(0), in(4), inName(4));
    if (in(5).dtype != DType::F32)
      fail(inName(5) + " (the log-sum-exp) must be f32");
    expectShape(
        in(5), inName(5),
        std::vector<int64_t>(in(0).shape.begin(), in(0).shape.end() - 1));
    for (size_t r = 0; r < 3; ++r)
      same(in(r), inName(r), out(r), outName(r));
    return true;
  case Opcode::AttentionGrad:
    // q, k, v, o, do -> dq, dk, dv.
    attentionOperands();
    same(in(0), inName(0), in(3), inName(3));
    same(in(0), inName(0), in(4), inName(4));
    for (size_t r = 0; r < 3; ++r)
      same(in(r), inName(r), out(r), outName(r));
    return true;
  case Opcode::CrossEntropyGrad: {
    const BufferInfo &l = in(0), &t = in(1);
    requireRank(l, inName(0), 1, true);
    requireFloat(l, inName(0));
    requireInt(t, inName(1));
    expectShape(t, inName(1),
                std::vector<int64_t>(l.shape.begin(), l.shape.end() - 1));
    if (in(2).dtype != DType::F32 || !in(2).shape.empty())
      fail(inName(2) + " (the loss cotangent) must be a scalar f32");
    if (I.operands.size() > 3) { // vocab-parallel: the log-sum-exp per row
      if (in(3).dtype != DType::F32)
        fail(inName(3) + " (the log-sum-exp) must be f32");
      expectShape(in(3), inName(3),
                  std::vector<int64_t>(l.shape.begin(), l.shape.end() - 1));
    }
    same(l, inName(0), out(0), outName(0));
    return true;
  }
  case Opcode::EmbeddingGrad: {
    const BufferInfo &dy = in(0), &ids = in(1), &table = out(0);
    requireRank(table, outName(0) + " ([V, H])", 2);
    requireFloat(table, outName(0));
    requireInt(ids, inName(1));
    std::vector<int64_t> s = ids.shape;
    s.push_back(table.shape[1]);
    expectShape(dy, inName(0), s);
    sameDType(table, outName(0), dy, inName(0));
    return true;
  }
  case Opcode::RouterGrad: {
    const BufferInfo &l = in(0), &ids = in(1), &dw = in(2);
    requireRank(l, inName(0) + " ([T, E])", 2);
    requireFloat(l, inName(0));
    requireRank(ids, inName(1) + " ([T, k])", 2);
    requireInt(ids, inName(1));
    if (ids.shape[0] != l.shape[0] || ids.shape[1] < 1 ||
        ids.shape[1] > l.shape[1])
      fail(inName(1) +
           " must be [T, k] with T = " + std::to_string(l.shape[0]) +
           " and k in [1, " + std::to_string(l.shape[1]) + "]");
    expectShape(dw, inName(2), ids.shape);
    sameDType(l, inName(0), dw, inName(2));
    same(l, inName(0), out(0), outName(0));
    return true;
  }
  case Opcode::CombineGrad: {
    const BufferInfo &y = in(0), &w = in(1), &ids = in(2), &dout = in(3);
    requireRank(y, inName(0) + " ([E, C, H])", 3);
    requireFloat(y, inName(0));
    requireRank(w, inName(1) + " ([T, k])", 2);
    sameDType(y, inName(0), w, inName(1));
    requireInt(ids, inName(2));
    sameShape(w, inName(1), ids, inName(2));
    expectShape(dout, inName(3), {w.shape[0], y.shape[2]});
    sameDType(y, inName(0), dout, inName(3));
    same(y, inName(0), out(0), outName(0));
    same(w, inName(1), out(1), outName(1));
    expertBlock(y.shape[0]);
    tokenGroups(w.shape[0], y.shape[1]);
    return true;
  }
  default:
    return false;
  }
}

} // namespace

void verifyInstructions(const Program &P) {
  const auto &instrs = P.instructions();
  std::vector<bool> written(P.buffers().size());
  for (const BufferInfo &b : P.buffers())
    written[b.id] = b.kind == BufferKind::Constant ||
                    b.kind == BufferKind::Input || isPersistent(b.kind);
  std::set<int64_t> events;
  int64_t openGroup = -1;
  for (size_t i = 0; i < instrs.size(); ++i) {
    InstrChecker c(P, i);
    c.checkStructure();
    c.checkShapes();
    const InstrInfo &I = instrs[i];

    for (size_t k = 0; k < I.operands.size(); ++k)
      if (!written[I.operands[k]])
        c.fail(c.inName(k) + " is read before any instruction writes it");
    for (uint32_t r : I.results)
      written[r] = true;

    switch (I.op) {
    case Opcode::GroupStart:
      if (openGroup >= 0)
        c.fail("group_start inside the group opened by instruction " +
               std::to_string(openGroup) + " (groups do not nest)");
      openGroup = static_cast<int64_t>(i);
      break;
    case Opcode::GroupEnd:
      if (openGroup < 0)
        c.fail("group_end without a matching group_start");
      openGroup = -1;
      break;
    case Opcode::Send:
    case Opcode::Recv:
      break;
    default:
      if (openGroup >= 0)
        c.fail("only send and recv may appear between group_start "
               "(instruction " +
               std::to_string(openGroup) + ") and group_end");
      break;
    }
    if (I.op == Opcode::EventRecord)
      events.insert(I.getInt("event"));
    if (I.op == Opcode::EventWait && !events.count(I.getInt("event")))
      c.fail("waits on event " + std::to_string(I.getInt("event")) +
             ", which no earlier event_record records");
  }
  if (openGroup >= 0)
    throw ProgramError(
        "invalid Loom program: " + P.describe(static_cast<size_t>(openGroup)) +
        ": group_start has no matching group_end");
}

} // namespace loom::runtime
