//===- Program.cpp - Loading Loom programs --------------------------------===//
//
// Decoding a program file: flatbuffers::Verifier, then the structural rules
// (version, mesh, buffer table, communicators, bindings), then the
// per-instruction rules of Verifier.cpp.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Program.h"
#include "loom/runtime/Checksum.h"
#include "loom/runtime/ParseNumber.h"
#include "loom/runtime/TensorLimits.h"
#include "loom/runtime/program_generated.h"

#include "ProgramLoader.h"
#include "Verifier.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

namespace loom::runtime {

static_assert(static_cast<int>(fb::DType::BF16) ==
                      static_cast<int>(DType::BF16) &&
                  static_cast<int>(fb::DType::I64) ==
                      static_cast<int>(DType::I64),
              "DType must match the schema");
static_assert(static_cast<int>(fb::BufferKind::Parameter) ==
                      static_cast<int>(BufferKind::Parameter) &&
                  static_cast<int>(fb::BufferKind::State) ==
                      static_cast<int>(BufferKind::State) &&
                  fb::BufferKind::MAX == fb::BufferKind::State,
              "BufferKind must match the schema");
static_assert(static_cast<int>(fb::AttrKind::String) ==
                  static_cast<int>(AttrKind::String),
              "AttrKind must match the schema");

//===----------------------------------------------------------------------===//
// Small types
//===----------------------------------------------------------------------===//

std::string BufferInfo::typeStr() const {
  std::string s = dtypeName(dtype);
  s += "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += ",";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::vector<int64_t>
AttrValue::resolve(const std::vector<Mesh> &meshes,
                   const std::vector<std::vector<int64_t>> &coords) const {
  std::vector<int64_t> v =
      kind == AttrKind::Ints ? ints : std::vector<int64_t>{i};
  for (const AffineTerm &t : terms) {
    int64_t n = meshes[t.mesh].axisSizes[t.axis];
    int64_t c = ((coords[t.mesh][t.axis] + t.shift) % n + n) % n;
    for (size_t k = 0; k < v.size() && k < t.coeffs.size(); ++k)
      v[k] += t.coeffs[k] * c;
  }
  return v;
}

int64_t AttrValue::minValue(const std::vector<Mesh> &meshes, size_t idx) const {
  int64_t v = kind == AttrKind::Ints ? ints[idx] : i;
  for (const AffineTerm &t : terms)
    v += std::min<int64_t>(0, t.coeffs[idx] *
                                  (meshes[t.mesh].axisSizes[t.axis] - 1));
  return v;
}

int64_t AttrValue::maxValue(const std::vector<Mesh> &meshes, size_t idx) const {
  int64_t v = kind == AttrKind::Ints ? ints[idx] : i;
  for (const AffineTerm &t : terms)
    v += std::max<int64_t>(0, t.coeffs[idx] *
                                  (meshes[t.mesh].axisSizes[t.axis] - 1));
  return v;
}

const Mesh &Program::mesh() const {
  static const Mesh kOneRank;
  return meshes_.empty() ? kOneRank : meshes_.front();
}

std::vector<std::vector<int64_t>> Program::coords(int64_t rank) const {
  std::vector<std::vector<int64_t>> coords;
  for (const Mesh &m : meshes_)
    coords.push_back(m.coords(rank));
  return coords;
}

const AttrValue *InstrInfo::attr(const char *name) const {
  for (const AttrValue &a : attrs)
    if (a.name == name)
      return &a;
  return nullptr;
}

bool InstrInfo::getBool(const char *name, bool dflt) const {
  const AttrValue *a = attr(name);
  return a ? a->i != 0 : dflt;
}
double InstrInfo::getFloat(const char *name, double dflt) const {
  const AttrValue *a = attr(name);
  return a ? a->f : dflt;
}
int64_t InstrInfo::getInt(const char *name, int64_t dflt) const {
  const AttrValue *a = attr(name);
  return a ? a->i : dflt;
}
std::vector<int64_t> InstrInfo::getInts(const char *name) const {
  const AttrValue *a = attr(name);
  return a ? a->ints : std::vector<int64_t>{};
}
std::string InstrInfo::getString(const char *name,
                                 const std::string &dflt) const {
  const AttrValue *a = attr(name);
  return a ? a->s : dflt;
}

int64_t Program::findInput(const std::string &name) const {
  for (const Binding &b : inputs_)
    if (b.name == name)
      return b.buffer;
  return -1;
}

int64_t Program::findOutput(const std::string &name) const {
  for (const Binding &b : outputs_)
    if (b.name == name)
      return b.buffer;
  return -1;
}

std::string Program::describe(size_t i) const {
  std::string s = "instruction " + std::to_string(i);
  if (i < instrs_.size()) {
    const char *n = opcodeName(instrs_[i].op);
    s += std::string(" (") + (n ? n : "?") + ")";
    if (!instrs_[i].loc.empty())
      s += " at " + instrs_[i].loc;
  }
  return s;
}

//===----------------------------------------------------------------------===//
// Loader
//===----------------------------------------------------------------------===//

namespace {
/// Where the `checksum` field of a size-prefixed, structurally verified
/// program lies in its bytes, if it has one.
std::optional<size_t> checksumOffset(const uint8_t *bytes, size_t size) {
  const fb::Program *program = fb::GetSizePrefixedProgram(bytes);
  const uint8_t *field =
      reinterpret_cast<const flatbuffers::Table *>(program)->GetAddressOf(
          fb::Program::VT_CHECKSUM);
  if (!field)
    return std::nullopt;
  size_t offset = static_cast<size_t>(field - bytes);
  if (offset + sizeof(uint64_t) > size)
    return std::nullopt;
  return offset;
}

[[noreturn]] void fail(const std::string &msg) {
  throw ProgramError("invalid Loom program: " + msg);
}

std::string str(const flatbuffers::String *s) {
  return s ? s->str() : std::string();
}

/// Bytes and element counts stay far below overflow: dims <= 2^40 and
/// products <= 2^50 (checkedNumElements), at most 8 bytes per element.
/// Bounds of rank-dependent terms: |value| stays below 2^40 + 8 * 2^54.
constexpr int64_t kMaxCoeff = int64_t(1) << 30;

/// flatbuffers::Verifier checks a vector's length field but not that 8-byte
/// elements are 8-byte aligned; the builder always aligns non-empty ones.
template <typename T> bool elementsAligned(const flatbuffers::Vector<T> *v) {
  return !v || v->size() == 0 ||
         reinterpret_cast<uintptr_t>(v->data()) % alignof(T) == 0;
}

void *alignedAlloc(size_t bytes) {
  size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  return std::aligned_alloc(64, rounded);
}
} // namespace

std::shared_ptr<const Program> ProgramLoader::load(const void *data,
                                                   size_t size, bool isStage) {
  if (!data || size < 8)
    fail("file is empty or truncated (" + std::to_string(size) + " bytes)");
  if (size >= FLATBUFFERS_MAX_BUFFER_SIZE)
    fail("file is larger than the 2 GiB FlatBuffers limit");
  // The verifier needs the buffer aligned; copy into aligned storage.
  std::unique_ptr<uint8_t, void (*)(void *)> bytes(
      static_cast<uint8_t *>(alignedAlloc(size)), std::free);
  std::memcpy(bytes.get(), data, size);
  // A program is a size-prefixed FlatBuffer: [u32 size][root offset]["LOOM"].
  if (fb::ProgramBufferHasIdentifier(bytes.get()))
    fail("the program has no size prefix (emit it with "
         "loom::fb::FinishSizePrefixedProgramBuffer)");
  if (size < 12 ||
      !fb::ProgramBufferHasIdentifier(bytes.get() + sizeof(uint32_t)))
    fail("not a Loom program (file identifier is not \"LOOM\")");
  uint32_t prefix = flatbuffers::ReadScalar<uint32_t>(bytes.get());
  if (prefix != size - sizeof(uint32_t))
    fail("the file holds " + std::to_string(size) +
         " bytes but its size prefix says " +
         std::to_string(uint64_t(prefix) + sizeof(uint32_t)) +
         (prefix > size - sizeof(uint32_t) ? " (truncated)" : ""));
  flatbuffers::Verifier::Options vopts;
  vopts.max_depth = 16;
  vopts.max_tables = 100000000;
  flatbuffers::Verifier verifier(bytes.get(), size, vopts);
  if (!fb::VerifySizePrefixedProgramBuffer(verifier))
    fail("the file is malformed or truncated (FlatBuffers verification "
         "failed)");
  const fb::Program *p = fb::GetSizePrefixedProgram(bytes.get());

  std::shared_ptr<Program> prog(new Program());
  Program &P = *prog;

  // Version.
  P.major_ = p->version()->major();
  P.minor_ = p->version()->minor();
  if (P.major_ != kFormatMajor)
    fail("format version " + std::to_string(P.major_) + "." +
         std::to_string(P.minor_) + " is not supported (this runtime reads " +
         std::to_string(kFormatMajor) + ".x)");

  // Integrity, before anything is decoded: from 1.1 on the file carries a
  // checksum of all its bytes.
  if (std::optional<size_t> field = checksumOffset(bytes.get(), size)) {
    uint64_t stored = flatbuffers::ReadScalar<uint64_t>(bytes.get() + *field);
    uint64_t computed =
        programChecksum(bytes.get(), size, *field, *field + sizeof(uint64_t));
    if (stored != computed)
      fail("the checksum does not match: the file is damaged (stored " +
           std::to_string(stored) + ", computed " + std::to_string(computed) +
           ")");
    P.hasChecksum_ = true;
    P.contentHash_ = computed;
  } else if (P.minor_ >= 1) {
    fail("format " + std::to_string(P.major_) + "." + std::to_string(P.minor_) +
         " programs carry a checksum, and this one has none (damaged?)");
  } else {
    P.contentHash_ = programChecksum(bytes.get(), size);
  }
  P.name_ = str(p->name());
  if (p->metadata())
    for (const fb::KeyValue *kv : *p->metadata())
      P.metadata_.emplace_back(kv->key()->str(), str(kv->value()));

  // Meshes: format 1.1's named meshes, or 1.0's one mesh.
  auto readMesh =
      [&](const std::string &name,
          const flatbuffers::Vector<flatbuffers::Offset<fb::MeshAxis>> *axes) {
        Mesh M;
        M.name = name;
        std::string what = "mesh '" + name + "'";
        for (const fb::MeshAxis *a : *axes) {
          std::string n = a->name()->str();
          if (n.empty())
            fail(what + ": axis " + std::to_string(M.axisNames.size()) +
                 " has an empty name");
          if (M.axisIndex(n) >= 0)
            fail(what + ": axis '" + n + "' appears twice");
          if (a->size() < 1 || a->size() > (int64_t(1) << 24))
            fail(what + ": axis '" + n + "' has size " +
                 std::to_string(a->size()) + " (must be in [1, 2^24])");
          M.axisNames.push_back(n);
          M.axisSizes.push_back(a->size());
          if (checkedMeshSize(M.axisSizes.data(), M.axisSizes.size()) < 0)
            fail(what + " has more than 2^31 ranks");
        }
        if (!P.meshes_.empty() && M.size() != P.meshes_[0].size())
          fail(what + " has " + std::to_string(M.size()) + " ranks but mesh '" +
               P.meshes_[0].name + "' has " +
               std::to_string(P.meshes_[0].size()) +
               "; the meshes of a program span the same ranks");
        for (const Mesh &other : P.meshes_)
          if (other.name == name)
            fail(what + " is declared twice");
        P.meshes_.push_back(std::move(M));
      };
  if (p->meshes() && p->meshes()->size()) {
    for (const fb::Mesh *m : *p->meshes()) {
      if (m->name()->str().empty())
        fail("mesh " + std::to_string(P.meshes_.size()) + " has an empty name");
      readMesh(m->name()->str(), m->axes());
    }
  } else if (p->mesh() && p->mesh()->size()) {
    readMesh("mesh", p->mesh());
  }

  // Constants, copied to aligned storage.
  if (p->constants() && p->constants()->size()) {
    P.constantsSize_ = p->constants()->size();
    P.constants_ = std::unique_ptr<uint8_t, void (*)(void *)>(
        static_cast<uint8_t *>(alignedAlloc(P.constantsSize_)), std::free);
    std::memcpy(P.constants_.get(), p->constants()->data(), P.constantsSize_);
  }

  // Buffers.
  P.arenaSize_ = p->arena_size();
  if (P.arenaSize_ > uint64_t(kMaxArenaBytes))
    fail("arena size " + std::to_string(P.arenaSize_) + " exceeds 2^50 bytes");
  if (p->buffers()) {
    uint32_t idx = 0;
    for (const fb::Buffer *b : *p->buffers()) {
      BufferInfo B;
      std::string what = "buffer " + std::to_string(idx);
      B.id = b->id();
      B.name = str(b->name());
      if (!B.name.empty())
        what += " '" + B.name + "'";
      if (B.id != idx)
        fail(what + ": id " + std::to_string(B.id) +
             " does not equal its index in the buffer table");
      if (static_cast<unsigned>(b->dtype()) >= kNumDTypes)
        fail(what + ": unknown dtype " + std::to_string(int(b->dtype())));
      B.dtype = static_cast<DType>(b->dtype());
      if (b->kind() > fb::BufferKind::MAX)
        fail(what + ": unknown kind " + std::to_string(int(b->kind())));
      B.kind = static_cast<BufferKind>(b->kind());
      if (!elementsAligned(b->shape()))
        fail(what + ": shape vector is misaligned");
      if (b->shape()) {
        if (b->shape()->size() > kMaxRank)
          fail(what + ": rank " + std::to_string(b->shape()->size()) +
               " exceeds the maximum rank " + std::to_string(kMaxRank));
        B.shape.assign(b->shape()->begin(), b->shape()->end());
        B.numel = checkedNumElements(B.shape.data(), B.shape.size());
        for (int64_t d : B.shape)
          if (d < 0 || d > kMaxTensorDim)
            fail(what + ": dimension " + std::to_string(d) +
                 " is negative or above 2^40");
        if (B.numel < 0)
          fail(what + ": more than 2^50 elements");
      }
      B.offset = b->offset();
      B.size = b->size();
      uint64_t expect = static_cast<uint64_t>(B.numel) * dtypeSize(B.dtype);
      if (B.size != expect)
        fail(what + ": byte size " + std::to_string(B.size) +
             " does not match " + B.typeStr() + " (" + std::to_string(expect) +
             " bytes)");
      if (B.offset % dtypeSize(B.dtype) != 0)
        fail(what + ": offset " + std::to_string(B.offset) +
             " is not aligned to its element size " +
             std::to_string(dtypeSize(B.dtype)));
      uint64_t limit = B.inArena() ? P.arenaSize_ : P.constantsSize_;
      if (B.offset > limit || B.size > limit - B.offset)
        fail(what + ": bytes [" + std::to_string(B.offset) + ", " +
             std::to_string(B.offset + B.size) + ") lie outside the " +
             (B.inArena() ? "arena of " : "constants blob of ") +
             std::to_string(limit) + " bytes");
      P.buffers_.push_back(std::move(B));
      ++idx;
    }
  }

  // Parameters and state persist across runs: nothing else may partially
  // overlap them.
  {
    std::vector<const BufferInfo *> arena;
    for (const BufferInfo &b : P.buffers_)
      if (b.inArena() && b.size)
        arena.push_back(&b);
    std::sort(arena.begin(), arena.end(),
              [](const BufferInfo *a, const BufferInfo *b) {
                return a->offset < b->offset;
              });
    for (const BufferInfo &par : P.buffers_) {
      if (!isPersistent(par.kind) || !par.size)
        continue;
      for (const BufferInfo *o : arena) {
        if (o == &par || o->offset >= par.offset + par.size)
          continue;
        if (o->offset + o->size <= par.offset)
          continue;
        if (o->offset == par.offset && o->size == par.size)
          continue; // an alias of the whole parameter
        fail("buffer " + std::to_string(o->id) + " '" + o->name +
             "' overlaps " + bufferKindName(par.kind) + " buffer " +
             std::to_string(par.id) + " '" + par.name +
             "' (it persists across runs)");
      }
    }
  }

  // Communicators.
  if (p->communicators()) {
    uint32_t idx = 0;
    for (const fb::Communicator *c : *p->communicators()) {
      CommInfo C;
      C.id = c->id();
      std::string what = "communicator " + std::to_string(idx);
      if (C.id != idx)
        fail(what + ": id " + std::to_string(C.id) +
             " does not equal its index in the communicator table");
      if (c->axes()->size() == 0)
        fail(what + ": spans no mesh axes");
      C.mesh = c->mesh();
      if (C.mesh >= P.meshes_.size())
        fail(what + ": names mesh " + std::to_string(C.mesh) +
             ", but the program has " + std::to_string(P.meshes_.size()) +
             " meshes");
      const Mesh &mesh = P.meshes_[C.mesh];
      for (const flatbuffers::String *a : *c->axes()) {
        int ax = mesh.axisIndex(a->str());
        if (ax < 0)
          fail(what + ": axis '" + a->str() + "' is not an axis of mesh '" +
               mesh.name + "' " + mesh.str());
        if (std::find(C.axes.begin(), C.axes.end(), ax) != C.axes.end())
          fail(what + ": axis '" + a->str() + "' appears twice");
        C.axes.push_back(ax);
        C.axisNames.push_back(a->str());
      }
      C.size = mesh.groupSize(C.axes);
      P.comms_.push_back(std::move(C));
      ++idx;
    }
  }

  // Bindings.
  auto readBindings =
      [&](const flatbuffers::Vector<flatbuffers::Offset<fb::Binding>> *v,
          std::vector<Binding> &out, bool isInput) {
        if (!v)
          return;
        const char *which = isInput ? "input" : "output";
        for (const fb::Binding *b : *v) {
          Binding B{b->name()->str(), b->buffer(), {}, b->mesh()};
          if (b->sharding())
            for (const fb::DimAxes *dim : *b->sharding()) {
              std::vector<std::string> axes;
              if (dim->axes())
                for (const flatbuffers::String *axis : *dim->axes())
                  axes.push_back(axis->str());
              B.sharding.push_back(std::move(axes));
            }
          if (B.name.empty())
            fail(std::string(which) + " binding with an empty name");
          // Runners read and write `<name>.npy`: a name is a file name,
          // never a path.
          if (B.name == "." || B.name == ".." ||
              B.name.find_first_of(std::string("/\\\0", 3)) !=
                  std::string::npos)
            fail(std::string(which) + " '" + B.name +
                 "' must not be '.', '..' or contain '/', '\\' or NUL: it "
                 "names a file");
          for (const Binding &o : out)
            if (o.name == B.name)
              fail(std::string(which) + " '" + B.name + "' is bound twice");
          if (B.buffer >= P.buffers_.size())
            fail(std::string(which) + " '" + B.name + "' binds buffer " +
                 std::to_string(B.buffer) + ", but there are only " +
                 std::to_string(P.buffers_.size()) + " buffers");
          if (!B.sharding.empty()) {
            const BufferInfo &buf = P.buffers_[B.buffer];
            if (B.mesh >= P.meshes_.size())
              fail(std::string(which) + " '" + B.name +
                   "' is split over mesh " + std::to_string(B.mesh) +
                   ", which the program does not have");
            const Mesh &mesh = P.meshes_[B.mesh];
            if (B.sharding.size() != buf.shape.size())
              fail(std::string(which) + " '" + B.name + "' has a sharding of " +
                   std::to_string(B.sharding.size()) +
                   " dimensions for a buffer of rank " +
                   std::to_string(buf.shape.size()));
            std::set<std::string> used;
            for (const auto &axes : B.sharding)
              for (const std::string &axis : axes)
                if (mesh.axisIndex(axis) < 0 || !used.insert(axis).second)
                  fail(std::string(which) + " '" + B.name +
                       "' is split over '" + axis + "', not an axis of mesh '" +
                       mesh.name + "' (or twice)");
          }
          BufferKind k = P.buffers_[B.buffer].kind;
          bool ok = isPersistent(k) || (isInput ? k == BufferKind::Input
                                                : k == BufferKind::Output);
          if (!ok)
            fail(std::string(which) + " '" + B.name + "' binds buffer " +
                 std::to_string(B.buffer) + " of kind " + bufferKindName(k) +
                 " (must be " + (isInput ? "input" : "output") +
                 ", parameter or state)");
          out.push_back(std::move(B));
        }
      };
  readBindings(p->inputs(), P.inputs_, true);
  readBindings(p->outputs(), P.outputs_, false);
  for (const BufferInfo &b : P.buffers_)
    if (b.kind == BufferKind::Input &&
        std::none_of(P.inputs_.begin(), P.inputs_.end(),
                     [&](const Binding &x) { return x.buffer == b.id; }))
      fail("input buffer " + std::to_string(b.id) + " '" + b.name +
           "' has no input binding, so nothing can fill it");

  // Instructions: decode, then verify.
  if (p->instructions()) {
    for (const fb::Instruction *in : *p->instructions()) {
      InstrInfo I;
      I.op = static_cast<Opcode>(in->opcode());
      if (in->operands())
        I.operands.assign(in->operands()->begin(), in->operands()->end());
      if (in->results())
        I.results.assign(in->results()->begin(), in->results()->end());
      I.communicator = in->communicator();
      I.stream = static_cast<StreamKind>(in->stream());
      I.loc = str(in->loc());
      std::string what = "instruction " + std::to_string(P.instrs_.size());
      if (in->attrs()) {
        for (const fb::Attr *a : *in->attrs()) {
          AttrValue A;
          A.name = a->name()->str();
          if (static_cast<unsigned>(a->kind()) > 4)
            fail(what + ": attribute '" + A.name + "' has unknown kind " +
                 std::to_string(int(a->kind())));
          A.kind = static_cast<AttrKind>(a->kind());
          if (!elementsAligned(a->ints()))
            fail(what + ": attribute '" + A.name + "' has a misaligned vector");
          A.i = a->i();
          A.f = a->f();
          if (a->ints())
            A.ints.assign(a->ints()->begin(), a->ints()->end());
          A.s = str(a->s());
          if (a->terms()) {
            for (const fb::AffineTerm *t : *a->terms()) {
              AffineTerm T;
              if (!elementsAligned(t->coeffs()))
                fail(what + ": attribute '" + A.name +
                     "' has a misaligned vector");
              T.mesh = static_cast<int>(t->mesh());
              if (t->mesh() >= P.meshes_.size())
                fail(what + ": attribute '" + A.name + "' depends on mesh " +
                     std::to_string(t->mesh()) + ", but the program has " +
                     std::to_string(P.meshes_.size()) + " meshes");
              const Mesh &mesh = P.meshes_[T.mesh];
              T.axis = mesh.axisIndex(t->axis()->str());
              if (T.axis < 0)
                fail(what + ": attribute '" + A.name + "' depends on axis '" +
                     t->axis()->str() + "', which is not an axis of mesh '" +
                     mesh.name + "' " + mesh.str());
              T.coeffs.assign(t->coeffs()->begin(), t->coeffs()->end());
              T.shift = t->shift();
              size_t want = A.kind == AttrKind::Ints ? A.ints.size() : 1;
              if (T.coeffs.size() != want)
                fail(what + ": attribute '" + A.name + "' has a term with " +
                     std::to_string(T.coeffs.size()) +
                     " coefficients, expected " + std::to_string(want));
              for (int64_t c : T.coeffs)
                if (c < -kMaxCoeff || c > kMaxCoeff)
                  fail(what + ": attribute '" + A.name +
                       "' has a coefficient outside [-2^30, 2^30]");
              if (T.shift < -kMaxCoeff || T.shift > kMaxCoeff)
                fail(what + ": attribute '" + A.name +
                     "' has a shift outside [-2^30, 2^30]");
              A.terms.push_back(std::move(T));
            }
            if (A.terms.size() > 8)
              fail(what + ": attribute '" + A.name +
                   "' has more than 8 rank-dependent terms");
            std::vector<int64_t> base =
                A.kind == AttrKind::Ints ? A.ints : std::vector<int64_t>{A.i};
            for (int64_t v : base)
              if (v < -kMaxTensorDim || v > kMaxTensorDim)
                fail(what + ": attribute '" + A.name +
                     "' has rank-dependent terms and a base value outside "
                     "[-2^40, 2^40]");
          }
          I.attrs.push_back(std::move(A));
        }
      }
      P.instrs_.push_back(std::move(I));
    }
  }
  if (P.minor_ < kFormatMinor)
    upgrade(P);
  verifyInstructions(P);
  if (p->stages() && p->stages()->size()) {
    if (isStage)
      fail("a pipeline program's stage holds stages of its own");
    loadStages(P, *p->stages());
  }
  return prog;
}

void ProgramLoader::loadStages(
    Program &P,
    const flatbuffers::Vector<flatbuffers::Offset<fb::Stage>> &stages) {
  if (!P.buffers_.empty() || !P.instrs_.empty() || !P.inputs_.empty() ||
      !P.outputs_.empty())
    fail("a pipeline program holds its stages' programs and no buffers, "
         "bindings or instructions of its own");
  const Mesh &mesh = P.mesh();
  int pp = mesh.axisIndex("pp");
  if (pp < 0)
    fail("a pipeline program's mesh " + mesh.str() + " has no 'pp' axis");
  if (static_cast<int64_t>(stages.size()) != mesh.axisSizes[pp])
    fail("the program has " + std::to_string(stages.size()) +
         " stages for a 'pp' axis of size " +
         std::to_string(mesh.axisSizes[pp]));
  for (const fb::Stage *stage : stages) {
    std::string what = "stage " + std::to_string(P.stages_.size());
    std::shared_ptr<const Program> program;
    try {
      program = load(stage->program()->data(), stage->program()->size(), true);
    } catch (const ProgramError &e) {
      // The stage's own problem, without a second "invalid Loom program".
      std::string cause = e.what();
      const std::string prefix = "invalid Loom program: ";
      if (cause.compare(0, prefix.size(), prefix) == 0)
        cause = cause.substr(prefix.size());
      fail(what + ": " + cause);
    }
    const Mesh &own = program->mesh();
    if (own.axisNames != mesh.axisNames || own.axisSizes != mesh.axisSizes)
      fail(what + " runs on mesh " + own.str() + ", not the program's " +
           mesh.str());
    P.stages_.push_back(std::move(program));
  }
}

size_t Program::stageOf(int64_t rank) const {
  if (stages_.empty())
    return 0;
  const Mesh &m = mesh();
  int pp = m.axisIndex("pp");
  int64_t stride = 1;
  for (size_t a = pp + 1; a < m.axisSizes.size(); ++a)
    stride *= m.axisSizes[a];
  return static_cast<size_t>((rank / stride) % m.axisSizes[pp]);
}

std::string Program::metadataValue(const std::string &key) const {
  for (const auto &[k, v] : metadata_)
    if (k == key)
      return v;
  return "";
}

const Program &Program::forRank(int64_t rank) const {
  return stages_.empty() ? *this : *stages_[stageOf(rank)];
}

std::shared_ptr<const Program>
programForRank(const std::shared_ptr<const Program> &program, int64_t rank) {
  if (!program->isPipeline())
    return program;
  return program->stages()[program->stageOf(rank)];
}

std::string formatActionSpans(const std::vector<InstructionSpan> &spans) {
  std::string text;
  for (const InstructionSpan &s : spans)
    text += (text.empty() ? "" : ";") + s.action + ":" +
            std::to_string(s.first) + "-" + std::to_string(s.last);
  return text;
}

std::vector<InstructionSpan> Program::actionSpans() const {
  std::vector<InstructionSpan> spans;
  std::string text = metadataValue("pipeline.action_spans");
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find(';', at);
    if (end == std::string::npos)
      end = text.size();
    std::string entry = text.substr(at, end - at);
    at = end + 1;
    // The action's name may hold no ':' or '-' after its last ':'.
    size_t colon = entry.rfind(':'), dash = entry.rfind('-');
    if (colon == std::string::npos || dash == std::string::npos || dash < colon)
      continue;
    int64_t first = 0, last = 0;
    if (parseInteger(entry.substr(colon + 1, dash - colon - 1), 0, INT64_MAX,
                     first) ||
        parseInteger(entry.substr(dash + 1), 0, INT64_MAX, last) ||
        first > last)
      continue;
    spans.push_back({entry.substr(0, colon), static_cast<size_t>(first),
                     static_cast<size_t>(last)});
  }
  return spans;
}

std::shared_ptr<const Program> Program::load(const void *data, size_t size) {
  return ProgramLoader::load(data, size);
}

std::shared_ptr<const Program> Program::loadFile(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw ProgramError("cannot open Loom program '" + path + "'");
  std::vector<char> buf((std::istreambuf_iterator<char>(f)),
                        std::istreambuf_iterator<char>());
  try {
    return load(buf.data(), buf.size());
  } catch (const ProgramError &e) {
    throw ProgramError(path + ": " + e.what());
  }
}

bool sealProgram(std::vector<uint8_t> &bytes) {
  if (bytes.size() < 12 ||
      !fb::ProgramBufferHasIdentifier(bytes.data() + sizeof(uint32_t)))
    return false;
  flatbuffers::Verifier verifier(bytes.data(), bytes.size());
  if (!fb::VerifySizePrefixedProgramBuffer(verifier))
    return false;
  std::optional<size_t> field = checksumOffset(bytes.data(), bytes.size());
  if (!field)
    return false;
  uint64_t sum = programChecksum(bytes.data(), bytes.size(), *field,
                                 *field + sizeof(uint64_t));
  flatbuffers::WriteScalar<uint64_t>(bytes.data() + *field, sum);
  return true;
}

std::string verifyProgram(const void *data, size_t size) noexcept {
  try {
    Program::load(data, size);
    return "";
  } catch (const std::exception &e) {
    return e.what();
  } catch (...) {
    return "invalid Loom program: unknown error";
  }
}

} // namespace loom::runtime
