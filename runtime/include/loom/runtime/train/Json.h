//===- Json.h - A small strict JSON reader ----------------------*- C++ -*-===//
//
// Enough JSON to read back what Loom writes (checkpoint metadata): RFC 8259
// exactly, refusing what a lenient reader would guess at — trailing commas,
// comments, duplicate keys, control characters or invalid UTF-8 in strings,
// lone surrogates, leading zeros, trailing text — so that a damaged file is
// reported, not half-read. Numbers keep their text; asInt64 reads them
// exactly.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_JSON_H
#define LOOM_RUNTIME_TRAIN_JSON_H

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace loom::runtime {

class JsonError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  /// A string's value, or a number's literal text.
  std::string text;
  std::vector<JsonValue> items;
  /// An object's members in file order (keys are unique).
  std::vector<std::pair<std::string, JsonValue>> members;

  /// The member `key` of an object, or nullptr.
  const JsonValue *find(const std::string &key) const;

  /// Typed access; each throws JsonError("KEY: expected ...") naming `what`
  /// when the value is of another kind or (numbers) not an exact integer in
  /// range.
  const std::string &asString(const std::string &what) const;
  int64_t asInt64(const std::string &what) const;
  uint64_t asUInt64(const std::string &what) const;
  const std::vector<JsonValue> &asArray(const std::string &what) const;
};

/// Parses one JSON document (nesting at most 64 deep). Throws JsonError
/// "line L, column C: what is wrong".
JsonValue parseJson(const std::string &text);

/// `text` as a JSON string literal, quotes included: ", \ and control
/// characters escaped, UTF-8 as it is. Throws JsonError for bytes that are
/// not UTF-8 (JSON cannot hold them).
std::string jsonQuote(const std::string &text);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_JSON_H
