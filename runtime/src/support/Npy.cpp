//===- Npy.cpp - NumPy .npy reading and atomic writing --------------------===//

#include "loom/runtime/Npy.h"
#include "loom/runtime/AtomicFile.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

namespace loom::runtime {
namespace {

[[noreturn]] void fail(const std::string &what, const std::string &msg) {
  throw NpyError(what + ": " + msg);
}

/// The value text after 'key': in a header dict (up to the next top-level
/// comma or closing brace), or "" if absent.
std::string dictValue(const std::string &h, const std::string &key) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string::npos)
    return "";
  size_t colon = h.find(':', k);
  if (colon == std::string::npos)
    return "";
  size_t i = colon + 1;
  while (i < h.size() && h[i] == ' ')
    ++i;
  size_t start = i;
  int depth = 0;
  for (; i < h.size(); ++i) {
    char c = h[i];
    if (c == '(')
      ++depth;
    else if (c == ')')
      --depth;
    else if ((c == ',' || c == '}') && depth == 0)
      break;
  }
  return h.substr(start, i - start);
}

void dtypeOfDescr(const std::string &d, const std::string &what, DType &t,
                  std::string &convert) {
  if (d == "'<f4'")
    t = DType::F32;
  else if (d == "'<f2'")
    t = DType::F16;
  else if (d == "'<i4'")
    t = DType::I32;
  else if (d == "'<i8'")
    t = DType::I64;
  else if (d == "'bfloat16'" || d == "'<V2'")
    t = DType::BF16;
  else if (d == "'<f8'" || d == "'|b1'" || d == "'|u1'" || d == "'|i1'")
    convert = d;
  else
    fail(what, "unsupported dtype " + d +
                   " (expected '<f4', '<f2', 'bfloat16', '<i4' or '<i8')");
}

} // namespace

HostTensor parseNpy(const void *data, size_t size, const std::string &what) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  if (size < 10 || std::memcmp(p, "\x93NUMPY", 6) != 0)
    fail(what, "not a .npy file");
  uint8_t major = p[6];
  size_t headerLen, pos;
  if (major == 1) {
    headerLen = p[8] | (p[9] << 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12)
      fail(what, "truncated header");
    headerLen =
        p[8] | (p[9] << 8) | (size_t(p[10]) << 16) | (size_t(p[11]) << 24);
    pos = 12;
  } else {
    fail(what, "unsupported .npy version " + std::to_string(major));
  }
  if (headerLen > size - pos)
    fail(what, "truncated header");
  std::string h(reinterpret_cast<const char *>(p + pos), headerLen);
  pos += headerLen;

  DType dtype = DType::F32;
  std::string convert;
  dtypeOfDescr(dictValue(h, "descr"), what, dtype, convert);
  if (dictValue(h, "fortran_order") != "False")
    fail(what, "Fortran-order arrays are not supported (save a C-order "
               "array with np.ascontiguousarray)");
  std::string s = dictValue(h, "shape");
  if (s.size() < 2 || s.front() != '(' || s.back() != ')')
    fail(what, "malformed shape " + s);
  std::vector<int64_t> shape;
  size_t i = 1;
  while (i < s.size() - 1) {
    while (i < s.size() - 1 && (s[i] == ' ' || s[i] == ','))
      ++i;
    if (i >= s.size() - 1)
      break;
    if (s[i] < '0' || s[i] > '9')
      fail(what, "malformed shape " + s);
    int64_t v = 0;
    while (i < s.size() - 1 && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + (s[i] - '0');
      if (v > (int64_t(1) << 40))
        fail(what, "dimension too large in shape " + s);
      ++i;
    }
    shape.push_back(v);
    if (shape.size() > 16)
      fail(what, "rank too high in shape " + s);
  }

  int64_t numel = 1;
  for (int64_t d : shape) {
    numel *= d;
    if (numel > (int64_t(1) << 40))
      fail(what, "too many elements");
  }
  size_t srcSize = 4;
  if (!convert.empty())
    srcSize = convert == "'<f8'" ? 8 : 1;
  else
    srcSize = dtypeSize(dtype);
  size_t need = static_cast<size_t>(numel) * srcSize;
  if (size - pos < need)
    fail(what, "truncated data: " + std::to_string(size - pos) + " bytes for " +
                   std::to_string(need));

  if (convert.empty()) {
    HostTensor t(dtype, shape);
    if (need)
      std::memcpy(t.data(), p + pos, need);
    return t;
  }
  if (convert == "'<f8'") {
    HostTensor t(DType::F32, shape);
    for (int64_t k = 0; k < numel; ++k) {
      double d;
      std::memcpy(&d, p + pos + 8 * k, 8);
      t.as<float>()[k] = static_cast<float>(d);
    }
    return t;
  }
  HostTensor t(DType::I32, shape);
  for (int64_t k = 0; k < numel; ++k)
    t.as<int32_t>()[k] = convert == "'|i1'" ? static_cast<int8_t>(p[pos + k])
                                            : static_cast<int32_t>(p[pos + k]);
  return t;
}

HostTensor readNpy(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    fail(path, "cannot open");
  std::string bytes((std::istreambuf_iterator<char>(f)),
                    std::istreambuf_iterator<char>());
  return parseNpy(bytes.data(), bytes.size(), path);
}

std::string serializeNpy(const HostTensor &t) {
  const char *descr = "<f4";
  switch (t.dtype) {
  case DType::F32:
    descr = "<f4";
    break;
  case DType::F16:
    descr = "<f2";
    break;
  case DType::BF16:
    descr = "bfloat16";
    break;
  case DType::I32:
    descr = "<i4";
    break;
  case DType::I64:
    descr = "<i8";
    break;
  }
  std::string shape = "(";
  for (size_t i = 0; i < t.shape.size(); ++i)
    shape += std::to_string(t.shape[i]) + (t.shape.size() == 1      ? ","
                                           : i + 1 < t.shape.size() ? ", "
                                                                    : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that magic + version + length + header is a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>((header.size() >> 8) & 0xff);
  out += header;
  out.append(static_cast<const char *>(t.data()), t.byteSize());
  return out;
}

void writeNpy(const std::string &path, const HostTensor &t) {
  try {
    writeFileAtomically(path, serializeNpy(t));
  } catch (const std::runtime_error &e) {
    throw NpyError(e.what());
  }
}

} // namespace loom::runtime
