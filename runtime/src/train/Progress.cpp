//===- Progress.cpp - What a training run shows while it runs -------------===//

#include "loom/runtime/train/Progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unistd.h>

using namespace loom::runtime;

namespace {

/// Seconds between redraws of the terminal line (10 a second at most).
constexpr double kRedrawInterval = 0.1;
constexpr int kBarWidth = 20;

std::string format(const char *fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

} // namespace

std::string loom::runtime::formatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0)
    return "?";
  char buf[32];
  // Each unit is rounded on its own, so 59.6 s reads 1m00s, not 0m60s.
  double s = std::round(seconds);
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%.0fs", s);
    return buf;
  }
  if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%.0fm%02.0fs", std::floor(s / 60),
                  std::fmod(s, 60));
    return buf;
  }
  double minutes = std::round(seconds / 60);
  if (minutes < 24 * 60) {
    std::snprintf(buf, sizeof(buf), "%.0fh%02.0fm", std::floor(minutes / 60),
                  std::fmod(minutes, 60));
    return buf;
  }
  double hours = std::round(seconds / 3600);
  if (hours >= 10000 * 24)
    return ">9999d";
  std::snprintf(buf, sizeof(buf), "%.0fd%02.0fh", std::floor(hours / 24),
                std::fmod(hours, 24));
  return buf;
}

std::string loom::runtime::formatRate(double v) {
  if (!std::isfinite(v) || v < 0)
    return "?";
  static const char *const units[] = {"", "k", "M", "G", "T", "P"};
  for (int u = 0; u < 6; ++u) {
    double s = v / std::pow(1000.0, u);
    // Three significant figures, unless that rounds up to the next unit.
    int decimals = u == 0 ? 0 : s < 9.995 ? 2 : s < 99.95 ? 1 : 0;
    if (s < 999.5 || u == 5)
      return format(("%." + std::to_string(decimals) + "f").c_str(), s) +
             units[u];
  }
  return "?";
}

bool loom::runtime::isTerminal(int fd) { return ::isatty(fd) == 1; }

int64_t loom::runtime::defaultProgressEvery(int64_t steps) {
  int64_t target = std::max<int64_t>(1, steps / 20);
  for (int64_t magnitude = 1;; magnitude *= 10)
    for (int64_t m : {1, 2, 5})
      if (m * magnitude >= target || magnitude > INT64_MAX / 50)
        return m * magnitude;
}

ProgressDisplay::ProgressDisplay(std::ostream &out, bool terminal,
                                 int64_t totalSteps, int64_t firstStep,
                                 int64_t every)
    : out_(out), terminal_(terminal), total_(totalSteps), first_(firstStep),
      every_(every > 0 ? every : defaultProgressEvery(totalSteps - firstStep)) {
}

double ProgressDisplay::eta(const StepRecord &r) const {
  int64_t done = r.step - first_;
  if (done <= 0 || !(r.elapsedS > 0))
    return -1;
  return std::max<double>(0, total_ - r.step) * (r.elapsedS / double(done));
}

std::string ProgressDisplay::barLine(const StepRecord &r) const {
  double fraction =
      total_ > 0 ? std::clamp(double(r.step) / double(total_), 0.0, 1.0) : 1;
  int filled = static_cast<int>(fraction * kBarWidth);
  std::string digits = std::to_string(total_);
  std::string step = std::to_string(r.step);
  if (step.size() < digits.size())
    step.insert(0, digits.size() - step.size(), ' ');
  char percent[8];
  std::snprintf(percent, sizeof(percent), "%3d%%",
                static_cast<int>(fraction * 100));
  return step + "/" + digits + " [" + std::string(filled, '#') +
         std::string(kBarWidth - filled, '-') + "] " + percent + " loss " +
         format("%.4f", r.loss) + " | " + formatRate(r.tokensPerS) +
         " tok/s | " + formatDuration(r.elapsedS) + "<" +
         formatDuration(eta(r));
}

std::string ProgressDisplay::plainLine(const StepRecord &r, bool last) const {
  return "step " + std::to_string(r.step) + "/" + std::to_string(total_) +
         " loss " + format("%.4f", r.loss) + " lr " + format("%.2e", r.lr) +
         " tokens/s " + format("%.0f", r.tokensPerS) +
         (last ? " elapsed " + formatDuration(r.elapsedS)
               : " eta " + formatDuration(eta(r)));
}

void ProgressDisplay::update(const StepRecord &r) {
  bool end = r.step >= total_;
  bool draw;
  if (terminal_)
    draw = !haveLast_ || end || r.elapsedS - lastDrawS_ >= kRedrawInterval;
  else
    draw = r.step == first_ + 1 || r.step % every_ == 0 || end;
  last_ = r;
  haveLast_ = true;
  lastDrawn_ = draw;
  if (!draw)
    return;
  lastDrawS_ = r.elapsedS;
  if (terminal_) {
    out_ << '\r' << barLine(r) << "\x1b[K";
    onLine_ = true;
  } else {
    out_ << plainLine(r, end) << '\n';
  }
  out_.flush();
}

void ProgressDisplay::print(const std::string &line) {
  if (terminal_ && onLine_) {
    out_ << "\r\x1b[K" << line << '\n' << barLine(last_) << "\x1b[K";
  } else {
    out_ << line << '\n';
  }
  out_.flush();
}

void ProgressDisplay::finish() {
  if (haveLast_ && !lastDrawn_) {
    if (terminal_) {
      out_ << '\r' << barLine(last_) << "\x1b[K";
      onLine_ = true;
    } else {
      out_ << plainLine(last_, true) << '\n';
    }
    lastDrawn_ = true;
  }
  if (terminal_ && onLine_)
    out_ << '\n';
  onLine_ = false;
  out_.flush();
}
