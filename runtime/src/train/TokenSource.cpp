//===- TokenSource.cpp - Byte tokens and the choice of format -------------===//

#include "loom/runtime/train/TokenSource.h"

#include "MappedFile.h"
#include "loom/runtime/CheckedMath.h"
#include "loom/runtime/train/IndexedDataset.h"

#include <stdexcept>
#include <sys/stat.h>

using namespace loom::runtime;

namespace {

/// A plain file: byte i is token i.
class ByteTokens final : public TokenSource {
public:
  explicit ByteTokens(const std::string &path) : file_(path) {}

  int64_t size() const override { return file_.size(); }
  void read(int64_t offset, int64_t count, int32_t *out) const override {
    checkTokenRange(*this, offset, count);
    const uint8_t *p = file_.data() + offset;
    for (int64_t i = 0; i < count; ++i)
      out[i] = p[i];
  }
  int64_t vocabHint() const override { return 256; }
  const std::string &path() const override { return file_.path(); }
  std::string kind() const override { return "bytes"; }

private:
  MappedFile file_;
};

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

} // namespace

void loom::runtime::checkTokenRange(const TokenSource &source, int64_t offset,
                                    int64_t count) {
  int64_t end;
  if (offset < 0 || count < 0 || !checkedAdd(offset, count, end) ||
      end > source.size())
    throw std::runtime_error(
        source.path() + ": " + std::to_string(count) + " tokens at position " +
        std::to_string(offset) + " are outside the " +
        std::to_string(source.size()) + " tokens it holds");
}

std::unique_ptr<TokenSource>
loom::runtime::openByteTokens(const std::string &path) {
  return std::make_unique<ByteTokens>(path);
}

std::unique_ptr<TokenSource>
loom::runtime::openTokenSource(const std::string &path) {
  // A name ending in .idx or .bin means Megatron's format even when its
  // partner is missing: reading int32 tokens as bytes would train silently
  // on garbage.
  for (const char *ext : {".idx", ".bin"})
    if (endsWith(path, ext))
      return openIndexedDataset(path.substr(0, path.size() - 4));
  if (exists(path + ".idx") || exists(path + ".bin"))
    return openIndexedDataset(path);
  return openByteTokens(path);
}
