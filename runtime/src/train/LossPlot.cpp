//===- LossPlot.cpp - The loss curve as an SVG image ----------------------===//

#include "loom/runtime/train/LossPlot.h"

#include "loom/runtime/AtomicFile.h"
#include "loom/runtime/XmlText.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

using namespace loom::runtime;

namespace {

std::string fixed(double v, int decimals = 2) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

/// A tick label with as many decimals as the tick spacing needs.
std::string tickLabel(double v, double spacing) {
  int decimals =
      std::max(0, -static_cast<int>(std::floor(std::log10(spacing) + 1e-9)));
  return fixed(v, std::min(decimals, 12));
}

/// Where the plot area lies in the image and what it spans.
struct Frame {
  double left, top, width, height;
  double x0, x1, y0, y1;
  double x(double v) const { return left + (v - x0) / (x1 - x0) * width; }
  double y(double v) const { return top + (y1 - v) / (y1 - y0) * height; }
};

std::string polyline(const Frame &f, const std::vector<double> &xs,
                     const std::vector<double> &ys,
                     const std::vector<size_t> &keep,
                     const std::string &attributes) {
  std::string points;
  for (size_t i : keep) {
    if (!points.empty())
      points += ' ';
    points += fixed(f.x(xs[i])) + "," + fixed(f.y(ys[i]));
  }
  return "  <polyline " + attributes + " fill=\"none\" points=\"" + points +
         "\"/>\n";
}

} // namespace

std::vector<double> loom::runtime::niceTicks(double lo, double hi, int count) {
  if (!(hi > lo) || count < 1)
    return {lo};
  double raw = (hi - lo) / count;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double norm = raw / magnitude;
  double spacing = (norm < 1.5 ? 1
                    : norm < 3 ? 2
                    : norm < 7 ? 5
                               : 10) *
                   magnitude;
  double first = std::floor(lo / spacing + 1e-9);
  double last = std::ceil(hi / spacing - 1e-9);
  std::vector<double> ticks;
  for (double i = first; i <= last; ++i) {
    double v = i * spacing;
    // -0.0 and 1e-17 print as noise.
    ticks.push_back(std::fabs(v) < spacing * 1e-9 ? 0.0 : v);
  }
  return ticks;
}

std::vector<size_t> loom::runtime::downsample(const std::vector<double> &values,
                                              size_t maxPoints) {
  size_t n = values.size();
  maxPoints = std::max<size_t>(maxPoints, 4);
  std::vector<size_t> keep;
  if (n <= maxPoints) {
    for (size_t i = 0; i < n; ++i)
      keep.push_back(i);
    return keep;
  }
  // The first and last points, and two per bucket of the indices between.
  size_t buckets = (maxPoints - 2) / 2, inner = n - 2;
  keep.push_back(0);
  for (size_t b = 0; b < buckets; ++b) {
    size_t begin = 1 + b * inner / buckets, end = 1 + (b + 1) * inner / buckets;
    if (begin == end)
      continue;
    size_t lo = begin, hi = begin;
    for (size_t i = begin; i < end; ++i) {
      if (values[i] < values[lo])
        lo = i;
      if (values[i] > values[hi])
        hi = i;
    }
    keep.push_back(std::min(lo, hi));
    if (lo != hi)
      keep.push_back(std::max(lo, hi));
  }
  keep.push_back(n - 1);
  return keep;
}

std::string loom::runtime::renderLossSvg(const std::vector<StepRecord> &records,
                                         const LossPlotOptions &options) {
  std::vector<double> steps, losses;
  for (const StepRecord &r : records)
    if (std::isfinite(r.loss)) {
      steps.push_back(double(r.step));
      losses.push_back(r.loss);
    }
  size_t skipped = records.size() - steps.size();

  Frame f;
  f.left = 80;
  f.top = 50;
  f.width = std::max(100.0, options.width - f.left - 30.0);
  f.height = std::max(100.0, options.height - f.top - 60.0);
  // Ranges: the data's, widened when flat, then out to round ticks.
  double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
  if (!records.empty()) {
    xlo = double(records.front().step);
    xhi = double(records.back().step);
  }
  if (!losses.empty()) {
    ylo = *std::min_element(losses.begin(), losses.end());
    yhi = *std::max_element(losses.begin(), losses.end());
  }
  if (xhi - xlo < 1) {
    xlo -= 1;
    xhi += 1;
  }
  if (!(yhi - ylo > 1e-9 * std::max(1.0, std::fabs(yhi)))) {
    double pad = std::max(std::fabs(ylo) * 0.1, 1e-3);
    ylo -= pad;
    yhi += pad;
  }
  // Whole steps: at most one tick per step.
  int xCount = static_cast<int>(std::min(6.0, xhi - xlo));
  std::vector<double> xt = niceTicks(xlo, xhi, xCount);
  std::vector<double> yt = niceTicks(ylo, yhi, 5);
  f.x0 = xt.front();
  f.x1 = xt.back();
  f.y0 = yt.front();
  f.y1 = yt.back();
  double xSpacing = xt.size() > 1 ? xt[1] - xt[0] : 1;
  double ySpacing = yt.size() > 1 ? yt[1] - yt[0] : 1;

  std::string w = std::to_string(options.width),
              h = std::to_string(options.height);
  std::string svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                    w + "\" height=\"" + h + "\" viewBox=\"0 0 " + w + " " + h +
                    "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "  <title>" + xmlEscape(options.title) + "</title>\n";
  svg += "  <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "  <text class=\"title\" x=\"" + fixed(options.width / 2.0) +
         "\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">" +
         xmlEscape(options.title) + "</text>\n";

  // Grid lines and tick labels.
  svg += "  <g class=\"grid\" stroke=\"#dddddd\" stroke-width=\"1\">\n";
  for (double v : xt)
    svg += "    <line x1=\"" + fixed(f.x(v)) + "\" y1=\"" + fixed(f.top) +
           "\" x2=\"" + fixed(f.x(v)) + "\" y2=\"" + fixed(f.top + f.height) +
           "\"/>\n";
  for (double v : yt)
    svg += "    <line x1=\"" + fixed(f.left) + "\" y1=\"" + fixed(f.y(v)) +
           "\" x2=\"" + fixed(f.left + f.width) + "\" y2=\"" + fixed(f.y(v)) +
           "\"/>\n";
  svg += "  </g>\n";
  svg += "  <g class=\"xticks\" text-anchor=\"middle\">\n";
  for (double v : xt)
    svg += "    <text x=\"" + fixed(f.x(v)) + "\" y=\"" +
           fixed(f.top + f.height + 18) + "\">" + tickLabel(v, xSpacing) +
           "</text>\n";
  svg += "  </g>\n";
  svg += "  <g class=\"yticks\" text-anchor=\"end\">\n";
  for (double v : yt)
    svg += "    <text x=\"" + fixed(f.left - 8) + "\" y=\"" +
           fixed(f.y(v) + 4) + "\">" + tickLabel(v, ySpacing) + "</text>\n";
  svg += "  </g>\n";
  svg += "  <rect class=\"axes\" x=\"" + fixed(f.left) + "\" y=\"" +
         fixed(f.top) + "\" width=\"" + fixed(f.width) + "\" height=\"" +
         fixed(f.height) + "\" fill=\"none\" stroke=\"black\"/>\n";
  svg += "  <text class=\"xlabel\" x=\"" + fixed(f.left + f.width / 2) +
         "\" y=\"" + fixed(f.top + f.height + 42) +
         "\" text-anchor=\"middle\">step</text>\n";
  svg += "  <text class=\"ylabel\" transform=\"translate(22," +
         fixed(f.top + f.height / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">loss</text>\n";

  // The curves: the raw loss faint when a smoothed one goes over it.
  bool smooth =
      options.smoothing > 0 && options.smoothing < 1 && losses.size() > 1;
  if (!losses.empty())
    svg += polyline(f, steps, losses, downsample(losses, options.maxPoints),
                    smooth ? "class=\"loss\" stroke=\"#1f77b4\" "
                             "stroke-opacity=\"0.35\" stroke-width=\"1\""
                           : "class=\"loss\" stroke=\"#1f77b4\" "
                             "stroke-width=\"1.5\"");
  if (smooth) {
    std::vector<double> smoothed;
    double last = 0, weight = 1;
    for (double v : losses) {
      last = last * options.smoothing + (1 - options.smoothing) * v;
      weight *= options.smoothing;
      smoothed.push_back(last / (1 - weight));
    }
    svg += polyline(f, steps, smoothed, downsample(smoothed, options.maxPoints),
                    "class=\"smoothed\" stroke=\"#d62728\" "
                    "stroke-width=\"2\"");
    double lx = f.left + f.width - 150, ly = f.top + 16;
    svg += "  <g class=\"legend\">\n";
    svg += "    <line x1=\"" + fixed(lx) + "\" y1=\"" + fixed(ly - 4) +
           "\" x2=\"" + fixed(lx + 20) + "\" y2=\"" + fixed(ly - 4) +
           "\" stroke=\"#1f77b4\" stroke-opacity=\"0.35\"/>\n";
    svg += "    <text x=\"" + fixed(lx + 26) + "\" y=\"" + fixed(ly) +
           "\">loss</text>\n";
    svg += "    <line x1=\"" + fixed(lx) + "\" y1=\"" + fixed(ly + 12) +
           "\" x2=\"" + fixed(lx + 20) + "\" y2=\"" + fixed(ly + 12) +
           "\" stroke=\"#d62728\" stroke-width=\"2\"/>\n";
    svg += "    <text x=\"" + fixed(lx + 26) + "\" y=\"" + fixed(ly + 16) +
           "\">smoothed (" + fixed(options.smoothing) + ")</text>\n";
    svg += "  </g>\n";
  }
  if (losses.empty() || skipped)
    svg += "  <text class=\"note\" x=\"" + fixed(f.left + 8) + "\" y=\"" +
           fixed(f.top + 18) + "\">" +
           (losses.empty() ? std::string("no finite loss to draw")
                           : std::to_string(skipped) +
                                 " step(s) with a loss that is not finite "
                                 "are not drawn") +
           "</text>\n";
  return svg + "</svg>\n";
}

void loom::runtime::writeLossSvg(const std::string &path,
                                 const std::vector<StepRecord> &records,
                                 const LossPlotOptions &options) {
  writeFileAtomically(path, renderLossSvg(records, options));
}
