//===- Dump.cpp - Stable text form of a Loom program ----------------------===//
//
// The text printed by `loom-dump`, meant for golden tests: one line per
// buffer, communicator, binding and instruction, in table order, with floats
// printed to round-trip precision.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime/Program.h"

#include <cstdio>
#include <sstream>

namespace loom::runtime {
namespace {

std::string quote(const std::string &s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      r += '\\';
      r += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\%02X", c);
      r += buf;
    } else {
      r += static_cast<char>(c);
    }
  }
  return r + "\"";
}

std::string fmtFloat(double f) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.9g", f);
  std::string s = buf;
  if (s.find_first_of(".eni") == std::string::npos)
    s += ".0";
  return s;
}

std::string fmtInts(const std::vector<int64_t> &v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string fmtAttr(const AttrValue &a, const std::vector<Mesh> &meshes) {
  std::string s = a.name + " = ";
  switch (a.kind) {
  case AttrKind::Int:
    s += std::to_string(a.i);
    break;
  case AttrKind::Float:
    s += fmtFloat(a.f);
    break;
  case AttrKind::Bool:
    s += a.i ? "true" : "false";
    break;
  case AttrKind::Ints:
    s += fmtInts(a.ints);
    break;
  case AttrKind::String:
    s += quote(a.s);
    break;
  }
  for (const AffineTerm &t : a.terms) {
    s += " + ";
    s += a.kind == AttrKind::Ints ? fmtInts(t.coeffs)
                                  : std::to_string(t.coeffs.at(0));
    const Mesh &mesh = meshes[t.mesh];
    // Axes of the first mesh go by their name alone.
    std::string ax = (t.mesh ? "@" + mesh.name + "." : std::string()) +
                     mesh.axisNames[t.axis];
    if (t.shift == 0)
      s += " * " + ax;
    else
      s += " * ((" + ax + " + " + std::to_string(t.shift) + ") mod " +
           std::to_string(mesh.axisSizes[t.axis]) + ")";
  }
  return s;
}

} // namespace

std::string Program::dump() const {
  std::ostringstream os;
  os << "loom.program " << quote(name_) << " version " << major_ << "."
     << minor_ << "\n";
  for (const auto &kv : metadata_)
    os << "metadata " << quote(kv.first) << " = " << quote(kv.second) << "\n";
  if (meshes_.empty())
    os << "mesh []\n";
  for (const Mesh &m : meshes_)
    os << "mesh @" << m.name << " " << m.str() << "\n";
  os << "arena " << arenaSize_ << "\n";
  os << "constants " << constantsSize_ << "\n";
  for (const BufferInfo &b : buffers_) {
    os << "buffer %" << b.id << " " << quote(b.name) << " "
       << bufferKindName(b.kind) << " " << b.typeStr() << " offset " << b.offset
       << " size " << b.size << "\n";
  }
  for (const CommInfo &c : comms_) {
    os << "comm #" << c.id << " @" << meshes_[c.mesh].name << " [";
    for (size_t i = 0; i < c.axisNames.size(); ++i)
      os << (i ? ", " : "") << c.axisNames[i];
    os << "] size " << c.size << "\n";
  }
  // A piece of a split tensor: `piece @world [{dp}, {}]`.
  auto piece = [&](const Binding &b) {
    if (!b.isSharded())
      return std::string();
    std::string s = " piece @" + meshes_[b.mesh].name + " [";
    for (size_t d = 0; d < b.sharding.size(); ++d) {
      s += d ? ", {" : "{";
      for (size_t a = 0; a < b.sharding[d].size(); ++a)
        s += (a ? ", " : "") + b.sharding[d][a];
      s += "}";
    }
    return s + "]";
  };
  for (const Binding &b : inputs_)
    os << "input " << quote(b.name) << " = %" << b.buffer << piece(b) << "\n";
  for (const Binding &b : outputs_)
    os << "output " << quote(b.name) << " = %" << b.buffer << piece(b) << "\n";
  for (size_t i = 0; i < instrs_.size(); ++i) {
    const InstrInfo &I = instrs_[i];
    os << i << ": ";
    for (size_t k = 0; k < I.results.size(); ++k)
      os << (k ? ", %" : "%") << I.results[k];
    if (!I.results.empty())
      os << " = ";
    const char *n = opcodeName(I.op);
    os << (n ? n : "?") << "(";
    for (size_t k = 0; k < I.operands.size(); ++k)
      os << (k ? ", %" : "%") << I.operands[k];
    os << ")";
    if (I.communicator >= 0)
      os << " comm #" << I.communicator;
    if (I.stream == StreamKind::Comm)
      os << " stream comm";
    if (!I.attrs.empty()) {
      os << " {";
      for (size_t k = 0; k < I.attrs.size(); ++k)
        os << (k ? ", " : "") << fmtAttr(I.attrs[k], meshes_);
      os << "}";
    }
    if (!I.loc.empty())
      os << " loc(" << quote(I.loc) << ")";
    os << "\n";
  }
  // A pipeline program: each stage's program, after a `stage` line.
  for (size_t i = 0; i < stages_.size(); ++i)
    os << "stage " << i << "\n" << stages_[i]->dump();
  return os.str();
}

} // namespace loom::runtime
