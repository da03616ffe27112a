//===- LossLog.cpp - The per-step CSV log of a training run ---------------===//

#include "loom/runtime/train/LossLog.h"

#include "loom/runtime/AtomicFile.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <unistd.h>

using namespace loom::runtime;

namespace {

/// printf spells NaN "nan" or "-nan" by its sign bit: one spelling keeps
/// logs byte-identical from run to run.
void appendNumber(std::string &out, const char *format, double v) {
  if (std::isnan(v)) {
    out += "nan";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "inf" : "-inf";
    return;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  out += buf;
}

bool parseDouble(const std::string &text, double &out) {
  const char *first = text.data(), *last = first + text.size();
  auto [end, ec] = std::from_chars(first, last, out);
  return ec == std::errc() && end == last && !text.empty();
}

/// The fields of a line, split at commas.
std::vector<std::string> split(const std::string &line) {
  std::vector<std::string> fields(1);
  for (char c : line) {
    if (c == ',')
      fields.emplace_back();
    else
      fields.back() += c;
  }
  return fields;
}

void writeAll(int fd, const std::string &text, const std::string &path) {
  const char *p = text.data();
  size_t left = text.size();
  while (left) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      throw std::runtime_error(
          path + ": cannot write: " + std::strerror(n < 0 ? errno : ENOSPC));
    p += n;
    left -= static_cast<size_t>(n);
  }
}

} // namespace

std::string loom::runtime::lossCsvLine(const StepRecord &r) {
  std::string line = std::to_string(r.step);
  line += ',';
  appendNumber(line, "%.7g", r.loss);
  line += ',';
  appendNumber(line, "%.7g", r.lr);
  line += ',';
  appendNumber(line, "%.7g", r.gradNorm);
  line += ',';
  appendNumber(line, "%.1f", r.tokensPerS);
  line += ',';
  appendNumber(line, "%.3f", r.elapsedS);
  return line + "\n";
}

std::vector<StepRecord> loom::runtime::readLossCsv(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  std::vector<StepRecord> records;
  size_t pos = 0;
  for (int lineNo = 1; pos < text.size(); ++lineNo) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos)
      break; // a line cut short by a crash
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    auto bad = [&](const std::string &what) {
      return std::runtime_error(path + ":" + std::to_string(lineNo) + ": " +
                                what);
    };
    if (lineNo == 1) {
      if (line != kLossCsvHeader)
        throw bad(std::string("expected the header ") + kLossCsvHeader);
      continue;
    }
    std::vector<std::string> f = split(line);
    if (f.size() != 6)
      throw bad("expected 6 fields, found " + std::to_string(f.size()));
    StepRecord r;
    const char *first = f[0].data(), *last = first + f[0].size();
    auto [end, ec] = std::from_chars(first, last, r.step);
    if (ec != std::errc() || end != last || f[0].empty())
      throw bad("the step \"" + f[0] + "\" is not an integer");
    double *values[] = {&r.loss, &r.lr, &r.gradNorm, &r.tokensPerS,
                        &r.elapsedS};
    for (int i = 0; i < 5; ++i)
      if (!parseDouble(f[i + 1], *values[i]))
        throw bad("field " + std::to_string(i + 2) + " \"" + f[i + 1] +
                  "\" is not a number");
    if (!records.empty() && r.step <= records.back().step)
      throw bad("step " + std::to_string(r.step) + " follows step " +
                std::to_string(records.back().step));
    records.push_back(r);
  }
  if (records.empty() &&
      text.compare(0, sizeof(kLossCsvHeader) - 1, kLossCsvHeader) != 0)
    throw std::runtime_error(path + ":1: expected the header " +
                             std::string(kLossCsvHeader));
  return records;
}

LossCsvWriter::LossCsvWriter(const std::string &path, int64_t resumeStep)
    : path_(path) {
  struct stat st;
  std::string start = std::string(kLossCsvHeader) + "\n";
  if (resumeStep >= 0 && ::stat(path.c_str(), &st) == 0) {
    for (const StepRecord &r : readLossCsv(path))
      if (r.step <= resumeStep) {
        records_.push_back(r);
        start += lossCsvLine(r);
      }
  }
  // The kept lines are rewritten whole, so that a crash now leaves the old
  // log or the trimmed one.
  writeFileAtomically(path, start);
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0)
    throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
}

LossCsvWriter::~LossCsvWriter() {
  if (fd_ >= 0)
    ::close(fd_);
}

void LossCsvWriter::append(const StepRecord &record) {
  writeAll(fd_, lossCsvLine(record), path_);
  records_.push_back(record);
}
