//===- Json.cpp - A small strict JSON reader ------------------------------===//

#include "loom/runtime/train/Json.h"

#include <charconv>
#include <cstdio>

using namespace loom::runtime;

namespace {

constexpr int kMaxDepth = 64;

/// The length of the valid multi-byte UTF-8 sequence at `pos`, or 0.
size_t utf8Length(const std::string &s, size_t pos) {
  auto byte = [&](size_t i) -> unsigned {
    return pos + i < s.size() ? static_cast<unsigned char>(s[pos + i]) : 0;
  };
  auto cont = [&](size_t i) { return (byte(i) & 0xC0) == 0x80; };
  unsigned b = byte(0);
  if (b >= 0xC2 && b <= 0xDF)
    return cont(1) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    // No overlong forms (E0 80..9F) and no surrogates (ED A0..BF).
    if ((b == 0xE0 && byte(1) < 0xA0) || (b == 0xED && byte(1) > 0x9F))
      return 0;
    return cont(1) && cont(2) ? 3 : 0;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    // No overlong forms (F0 80..8F) and nothing past U+10FFFF.
    if ((b == 0xF0 && byte(1) < 0x90) || (b == 0xF4 && byte(1) > 0x8F))
      return 0;
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

class Parser {
public:
  explicit Parser(const std::string &text) : s_(text) {}

  JsonValue document() {
    skipSpace();
    JsonValue v = value(0);
    skipSpace();
    if (pos_ != s_.size())
      fail("unexpected text after the document");
    return v;
  }

private:
  [[noreturn]] void fail(const std::string &what) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw JsonError("line " + std::to_string(line) + ", column " +
                    std::to_string(column) + ": " + what);
  }
  bool atEnd() const { return pos_ >= s_.size(); }
  char peek() const { return atEnd() ? '\0' : s_[pos_]; }
  void skipSpace() {
    while (!atEnd() && (s_[pos_] == ' ' || s_[pos_] == '\t' ||
                        s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c, const char *what) {
    if (peek() != c)
      fail(atEnd() ? std::string("the text ends where ") + what + " is expected"
                   : std::string("expected ") + what);
    ++pos_;
  }
  bool literal(const char *word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(pos_, n, word) != 0)
      return false;
    pos_ += n;
    return true;
  }

  JsonValue value(int depth) {
    if (depth >= kMaxDepth)
      fail("nesting deeper than " + std::to_string(kMaxDepth));
    JsonValue v;
    char c = peek();
    if (c == '{') {
      v.kind = JsonValue::Kind::Object;
      object(v, depth);
    } else if (c == '[') {
      v.kind = JsonValue::Kind::Array;
      array(v, depth);
    } else if (c == '"') {
      v.kind = JsonValue::Kind::String;
      v.text = string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind = JsonValue::Kind::Number;
      v.text = number();
    } else if (literal("true")) {
      v.kind = JsonValue::Kind::Bool;
      v.boolean = true;
    } else if (literal("false")) {
      v.kind = JsonValue::Kind::Bool;
    } else if (!literal("null")) {
      fail(atEnd() ? "the text ends where a value is expected"
                   : "expected a value");
    }
    return v;
  }

  void object(JsonValue &v, int depth) {
    ++pos_;
    skipSpace();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    while (true) {
      skipSpace();
      if (peek() != '"')
        fail("expected a string key");
      size_t keyPos = pos_;
      std::string key = string();
      if (v.find(key)) {
        pos_ = keyPos;
        fail("duplicate key " + jsonQuote(key));
      }
      skipSpace();
      expect(':', "':'");
      skipSpace();
      v.members.emplace_back(std::move(key), value(depth + 1));
      skipSpace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}', "',' or '}'");
      return;
    }
  }

  void array(JsonValue &v, int depth) {
    ++pos_;
    skipSpace();
    if (peek() == ']') {
      ++pos_;
      return;
    }
    while (true) {
      skipSpace();
      v.items.push_back(value(depth + 1));
      skipSpace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']', "',' or ']'");
      return;
    }
  }

  std::string number() {
    size_t start = pos_;
    auto digits = [&] {
      size_t from = pos_;
      while (!atEnd() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
      return pos_ - from;
    };
    if (peek() == '-')
      ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (peek() >= '0' && peek() <= '9')
        fail("a number has a leading zero");
    } else if (digits() == 0) {
      fail("expected a digit");
    }
    if (peek() == '.') {
      ++pos_;
      if (digits() == 0)
        fail("expected a digit after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-')
        ++pos_;
      if (digits() == 0)
        fail("expected a digit in the exponent");
    }
    return s_.substr(start, pos_ - start);
  }

  unsigned hex4() {
    unsigned v = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      char c = peek();
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= unsigned(c - 'A' + 10);
      else
        fail("expected four hex digits after \\u");
    }
    return v;
  }

  static void appendUtf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    ++pos_;
    std::string out;
    while (true) {
      if (atEnd())
        fail("the text ends inside a string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20)
        fail("a control character inside a string (escape it)");
      if (c >= 0x80) {
        size_t n = utf8Length(s_, pos_);
        if (n == 0)
          fail("invalid UTF-8 inside a string");
        out.append(s_, pos_, n);
        pos_ += n;
        continue;
      }
      ++pos_;
      if (c != '\\') {
        out += char(c);
        continue;
      }
      char e = peek();
      ++pos_;
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        unsigned cp = hex4();
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          fail("a lone low surrogate \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (!literal("\\u"))
            fail("a high surrogate \\u escape without its low half");
          unsigned low = hex4();
          if (low < 0xDC00 || low > 0xDFFF)
            fail("a high surrogate \\u escape without its low half");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        --pos_;
        fail("an unknown escape in a string");
      }
    }
  }

  const std::string &s_;
  size_t pos_ = 0;
};

const char *kindName(JsonValue::Kind kind) {
  switch (kind) {
  case JsonValue::Kind::Null:
    return "null";
  case JsonValue::Kind::Bool:
    return "a boolean";
  case JsonValue::Kind::Number:
    return "a number";
  case JsonValue::Kind::String:
    return "a string";
  case JsonValue::Kind::Array:
    return "an array";
  case JsonValue::Kind::Object:
    return "an object";
  }
  return "?";
}

template <typename T>
T integerOf(const JsonValue &v, const std::string &what, const char *range) {
  T out{};
  const char *first = v.text.data(), *last = first + v.text.size();
  auto [end, ec] =
      v.kind == JsonValue::Kind::Number
          ? std::from_chars(first, last, out)
          : std::from_chars_result{first, std::errc::invalid_argument};
  if (ec != std::errc() || end != last)
    throw JsonError(
        what + ": expected an integer in " + range + ", got " +
        (v.kind == JsonValue::Kind::Number ? v.text : kindName(v.kind)));
  return out;
}

} // namespace

const JsonValue *JsonValue::find(const std::string &key) const {
  for (const auto &[k, v] : members)
    if (k == key)
      return &v;
  return nullptr;
}

const std::string &JsonValue::asString(const std::string &what) const {
  if (kind != Kind::String)
    throw JsonError(what + ": expected a string, got " + kindName(kind));
  return text;
}

int64_t JsonValue::asInt64(const std::string &what) const {
  return integerOf<int64_t>(*this, what, "[-2^63, 2^63)");
}

uint64_t JsonValue::asUInt64(const std::string &what) const {
  return integerOf<uint64_t>(*this, what, "[0, 2^64)");
}

const std::vector<JsonValue> &
JsonValue::asArray(const std::string &what) const {
  if (kind != Kind::Array)
    throw JsonError(what + ": expected an array, got " + kindName(kind));
  return items;
}

JsonValue loom::runtime::parseJson(const std::string &text) {
  return Parser(text).document();
}

std::string loom::runtime::jsonQuote(const std::string &text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      // JSON text is UTF-8: other bytes have no representation.
      size_t n = utf8Length(text, i);
      if (n == 0)
        throw JsonError("byte " + std::to_string(i) + " of " +
                        jsonQuote(text.substr(0, i)) +
                        "... is not valid UTF-8");
      out.append(text, i, n);
      i += n;
      continue;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
    ++i;
  }
  return out + "\"";
}
