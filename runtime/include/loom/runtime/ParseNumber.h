//===- ParseNumber.h - Numbers from command-line text -----------*- C++ -*-===//
//
// The one parser of the numbers that tools take as text (loom-run's --nproc,
// --steps, --timeout; loom-models' --layers, --capacity-factor ...). A value
// is all of the text, in plain decimal, and within the range the caller
// states; anything else is refused with a message, never wrapped, clamped or
// read as far as it parses (std::stol reads "12abc" as 12, a cast to int
// wraps 2147483648 to a negative count).
//
// Header-only and free of exceptions: the runtime's tools and the compiler's
// (built with -fno-exceptions) share it.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_PARSENUMBER_H
#define LOOM_RUNTIME_PARSENUMBER_H

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace loom::runtime {

/// What is wrong with a number, worded to follow the name of what it sets
/// ("--steps must be in [1, 2147483647], got 2147483648").
using NumberProblem = std::optional<std::string>;

/// "must be in [MIN, MAX], got TEXT".
template <typename T>
std::string rangeProblem(T min, T max, std::string_view text) {
  auto show = [](T v) {
    std::string s = std::to_string(v);
    if constexpr (std::is_floating_point_v<T>) {
      // to_string prints six decimals; the range reads better without.
      s.erase(s.find_last_not_of('0') + 1);
      if (!s.empty() && s.back() == '.')
        s.pop_back();
    }
    return s;
  };
  return "must be in [" + show(min) + ", " + show(max) + "], got " +
         std::string(text);
}

/// Parses all of `text` ("-12", "300") as a decimal integer in [min, max]
/// into `value`; leaves `value` alone on failure. A value beyond 64 bits is
/// out of range, not a syntax error.
inline NumberProblem parseInteger(std::string_view text, int64_t min,
                                  int64_t max, int64_t &value) {
  size_t i = text.size() > 1 && text[0] == '-' ? 1 : 0;
  if (i == text.size())
    return "needs an integer, got '" + std::string(text) + "'";
  bool negative = i == 1;
  // Accumulate toward the sign so that INT64_MIN parses too.
  int64_t v = 0;
  bool overflow = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c < '0' || c > '9')
      return "needs an integer, got '" + std::string(text) + "'";
    int digit = c - '0';
    overflow = overflow || __builtin_mul_overflow(v, 10, &v) ||
               (negative ? __builtin_sub_overflow(v, digit, &v)
                         : __builtin_add_overflow(v, digit, &v));
  }
  if (overflow || v < min || v > max)
    return rangeProblem(min, max, text);
  value = v;
  return std::nullopt;
}

/// Parses all of `text` as a plain decimal number ("2", "0.5", "1e-3"; not
/// "inf", "nan" or hexadecimal) in [min, max] into `value`.
inline NumberProblem parseReal(std::string_view text, double min, double max,
                               double &value) {
  std::string s(text);
  size_t i = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
  bool digits = false;
  for (size_t j = i; j < s.size(); ++j)
    digits |= s[j] >= '0' && s[j] <= '9';
  bool plain =
      digits && s.find_first_not_of("0123456789.eE+-", i) == std::string::npos;
  char *end = nullptr;
  double v = plain ? std::strtod(s.c_str(), &end) : 0;
  if (!plain || end != s.c_str() + s.size())
    return "needs a number, got '" + s + "'";
  if (!std::isfinite(v) || v < min || v > max)
    return rangeProblem(min, max, text);
  value = v;
  return std::nullopt;
}

/// Parses a duration in seconds, to the millisecond ("10", "0.25"), in
/// [min, max] into `value`.
inline NumberProblem parseSeconds(std::string_view text,
                                  std::chrono::milliseconds min,
                                  std::chrono::milliseconds max,
                                  std::chrono::milliseconds &value) {
  auto isDigits = [](std::string_view t) {
    return t.find_first_not_of("0123456789") == std::string_view::npos;
  };
  size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction =
      dot == std::string_view::npos ? "" : text.substr(dot + 1);
  // Digits past the millisecond must be zeros: nothing is rounded away.
  bool finer = fraction.size() > 3 &&
               fraction.substr(3).find_first_not_of('0') != std::string::npos;
  if (whole.empty() || !isDigits(whole) || !isDigits(fraction) || finer ||
      (dot != std::string_view::npos && fraction.empty()))
    return "needs a duration in seconds (e.g. 10 or 0.5, to the "
           "millisecond), got '" +
           std::string(text) + "'";
  int64_t millis = 0;
  for (size_t i = 0; i < 3; ++i)
    millis = 10 * millis + (i < fraction.size() ? fraction[i] - '0' : 0);
  int64_t seconds = 0;
  bool overflow = parseInteger(whole, 0, INT64_MAX / 1000, seconds) ||
                  seconds * 1000 + millis > max.count();
  std::chrono::milliseconds v(overflow ? 0 : seconds * 1000 + millis);
  if (overflow || v < min) {
    std::string range =
        rangeProblem(min.count() / 1000.0, max.count() / 1000.0, text);
    return range.insert(range.find("], got") + 1, " seconds");
  }
  value = v;
  return std::nullopt;
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_PARSENUMBER_H
