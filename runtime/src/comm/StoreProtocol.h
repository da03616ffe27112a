//===- StoreProtocol.h - The TCP store's wire format ------------*- C++ -*-===//
//
// One connection per client, framed requests (integers little-endian, as on
// the hosts we run on):
//
//   u8 op, u32 nkeys, { u32 len, bytes } * nkeys, [u32 len, bytes value],
//   [i64 timeout ms]
//
//   HELLO  job id and token (keys)  -> u8 admitted, u32 len, server's job id
//   SET    one key and a value      -> u8 1
//   GET    one key, returns at once -> u8 found, u32 len, bytes
//   WAIT   keys and a timeout       -> u8 1 when all are set, 0 on timeout
//   CHECK  keys                     -> u8 1 if all are set, else 0
//   ADD    one key and a value, set only if absent
//                                   -> u8 1 if set, else 0, u32 len, the
//                                      value the key already had
//
// A connection's first request must be a HELLO that names the server's job
// and token; the server answers a refused HELLO and closes the connection,
// and drops a client that sends anything else first.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_COMM_STOREPROTOCOL_H
#define LOOM_RUNTIME_SRC_COMM_STOREPROTOCOL_H

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <sys/socket.h>

namespace loom::runtime::store {

enum Op : uint8_t {
  kSet = 1,
  kGet = 2,
  kWait = 3,
  kCheck = 4,
  kHello = 5,
  kAdd = 6,
};

inline void putU32(std::vector<char> &b, uint32_t v) {
  b.insert(b.end(), reinterpret_cast<char *>(&v),
           reinterpret_cast<char *>(&v) + 4);
}
inline void putI64(std::vector<char> &b, int64_t v) {
  b.insert(b.end(), reinterpret_cast<char *>(&v),
           reinterpret_cast<char *>(&v) + 8);
}
inline void putBytes(std::vector<char> &b, const char *p, size_t n) {
  putU32(b, static_cast<uint32_t>(n));
  b.insert(b.end(), p, p + n);
}

/// A request: op, keys, then a value (SET, ADD) or a timeout (WAIT).
inline std::vector<char> request(Op op, const std::vector<std::string> &keys,
                                 const std::vector<char> *value = nullptr,
                                 int64_t timeoutMs = -1) {
  std::vector<char> b{static_cast<char>(op)};
  putU32(b, static_cast<uint32_t>(keys.size()));
  for (const std::string &k : keys)
    putBytes(b, k.data(), k.size());
  if (value)
    putBytes(b, value->data(), value->size());
  if (timeoutMs >= 0)
    putI64(b, timeoutMs);
  return b;
}

struct Request {
  uint8_t op = 0;
  std::vector<std::string> keys;
  std::string value;
  int64_t timeoutMs = 0;
};

/// Parses one request at the front of `buf`; returns the bytes consumed, 0
/// if it is incomplete, or -1 if it is malformed.
inline long parseRequest(const std::vector<char> &buf, Request &req) {
  size_t pos = 1;
  auto u32 = [&](uint32_t &v) {
    if (pos + 4 > buf.size())
      return false;
    std::memcpy(&v, buf.data() + pos, 4);
    pos += 4;
    return true;
  };
  auto bytes = [&](std::string &s) {
    uint32_t n;
    if (!u32(n) || pos + n > buf.size())
      return false;
    s.assign(buf.data() + pos, n);
    pos += n;
    return true;
  };
  if (buf.empty())
    return 0;
  req = Request();
  req.op = static_cast<uint8_t>(buf[0]);
  if (req.op < kSet || req.op > kAdd)
    return -1;
  uint32_t n;
  if (!u32(n))
    return 0;
  if (n > (1u << 20))
    return -1;
  for (uint32_t i = 0; i < n; ++i) {
    std::string k;
    if (!bytes(k))
      return 0;
    req.keys.push_back(std::move(k));
  }
  if ((req.op == kSet || req.op == kAdd) && !bytes(req.value))
    return 0;
  if (req.op == kWait) {
    if (pos + 8 > buf.size())
      return 0;
    std::memcpy(&req.timeoutMs, buf.data() + pos, 8);
    pos += 8;
  }
  bool oneKey = req.op == kSet || req.op == kGet || req.op == kAdd;
  if ((oneKey && req.keys.size() != 1) ||
      (req.op == kHello && req.keys.size() != 2))
    return -1;
  return static_cast<long>(pos);
}

inline bool sendAll(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

/// Compares secrets in time independent of where they differ.
inline bool sameSecret(const std::string &a, const std::string &b) {
  unsigned char diff = a.size() != b.size();
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

} // namespace loom::runtime::store

#endif // LOOM_RUNTIME_SRC_COMM_STOREPROTOCOL_H
