//===- XmlText.h - Text inside SVG and other XML ----------------*- C++ -*-===//
//
// Header-only, so that tools without the runtime's libraries (loom-sim)
// escape as the runtime's pictures (the loss curve) do.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_XMLTEXT_H
#define LOOM_RUNTIME_XMLTEXT_H

#include <string>

namespace loom::runtime {

/// `text` as XML character data or an attribute value: the markup
/// characters escaped, control characters other than tab (which XML 1.0
/// cannot represent) as spaces, other bytes (UTF-8) unchanged.
inline std::string xmlEscape(const std::string &text) {
  std::string out;
  for (char c : text) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    default:
      out += static_cast<unsigned char>(c) < 0x20 && c != '\t' ? ' ' : c;
    }
  }
  return out;
}

} // namespace loom::runtime

#endif // LOOM_RUNTIME_XMLTEXT_H
