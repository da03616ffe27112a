//===- Timeline.cpp - loom-sim's SVG timeline and file output -------------===//

#include "Timeline.h"

#include "loom/runtime/AtomicFile.h"
#include "loom/runtime/XmlText.h"

#include <algorithm>
#include <cstdio>

namespace loom::schedule {

std::string formatNumber(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.2f", v);
  std::string s = buffer;
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.')
    s.pop_back();
  if (s == "-0")
    s = "0";
  return s;
}

static std::string percent(double fraction) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.1f%%", 100 * fraction);
  return buffer;
}

static std::string displayName(const std::string &name) {
  if (name == "gpipe")
    return "GPipe";
  if (name == "1f1b")
    return "1F1B";
  if (name == "interleaved")
    return "Interleaved 1F1B";
  if (name == "zb-h1")
    return "ZB-H1";
  return name.empty() ? "schedule" : name;
}

/// The theory's words for the title, empty for an unknown name.
static std::string titleTheory(const Schedule &s) {
  double p = s.pp, m = s.microbatches, v = s.vpp;
  if (s.name == "gpipe" || s.name == "1f1b")
    return "theory " + percent((p - 1) / (m + p - 1));
  if (s.name == "interleaved")
    return "theory " + percent((p - 1) / (v * m + p - 1));
  if (s.name == "zb-h1")
    return "about a third of 1F1B's " + percent((p - 1) / (m + p - 1));
  return "";
}

static const char *fillOf(ActionKind kind) {
  switch (kind) {
  case ActionKind::F:
    return "#4e79a7";
  case ActionKind::B:
    return "#f28e2b";
  default:
    return "#59a14f";
  }
}

static const char *textFillOf(ActionKind kind) {
  return kind == ActionKind::B ? "#000000" : "#ffffff";
}

std::string renderTimelineSvg(const Schedule &schedule,
                              const SimulationResult &result,
                              const ActionCosts &costs) {
  const bool split = schedule.splitsBackward();
  // One time unit is wide enough that the shortest compute box holds a
  // two-digit microbatch number, up to a 16000-pixel-wide picture.
  double shortest = 0;
  for (double cost :
       {costs.f, split ? costs.b : costs.b + costs.w, split ? costs.w : 0.0})
    if (cost > 0 && (shortest == 0 || cost < shortest))
      shortest = cost;
  double unit = shortest > 0 ? 24 / shortest : 24;
  if (result.makespan > 0 && unit * result.makespan > 16000)
    unit = 16000 / result.makespan;

  const double left = 70, top = 62, rowHeight = 28, rowGap = 6, right = 20;
  const int ranks = static_cast<int>(result.ranks.size());
  const double plotWidth = unit * result.makespan;
  const double axisY = top + ranks * (rowHeight + rowGap);
  const double height = axisY + 44;

  // The legend's entries: a swatch, then the label (about 7 pixels a
  // character at 12 pixels); the picture is at least as wide as the legend.
  struct Entry {
    const char *fill;
    std::string label;
  };
  std::vector<Entry> legend = {
      {fillOf(ActionKind::F), "F forward"},
      {fillOf(ActionKind::B),
       split ? "B backward (input gradient)" : "B backward"}};
  if (split)
    legend.push_back({fillOf(ActionKind::W), "W weight gradient"});
  legend.push_back({"#e6e6e6", "idle"});
  std::string note = schedule.vpp > 1
                         ? "number: microbatch; lighter: later chunk"
                         : "number: microbatch";
  double legendWidth = 7.0 * note.size();
  for (const Entry &e : legend)
    legendWidth += 19 + 7.0 * e.label.size() + 18;
  const double width = left + std::max(plotWidth, legendWidth) + right;

  std::string out;
  auto add = [&](const std::string &s) { out += s; };
  auto n = [](double v) { return formatNumber(v); };

  add("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
  add("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + n(width) +
      "\" height=\"" + n(height) + "\" viewBox=\"0 0 " + n(width) + " " +
      n(height) + "\" font-family=\"sans-serif\">\n");
  add("<rect x=\"0\" y=\"0\" width=\"" + n(width) + "\" height=\"" + n(height) +
      "\" fill=\"#ffffff\"/>\n");

  // Title.
  std::string title =
      displayName(schedule.name) + ", pp=" + std::to_string(schedule.pp);
  if (schedule.vpp > 1)
    title += ", vpp=" + std::to_string(schedule.vpp);
  title += ", m=" + std::to_string(schedule.microbatches) + ": bubble " +
           percent(result.bubbleFraction);
  std::string theory = titleTheory(schedule);
  if (!theory.empty())
    title += " (" + theory + ")";
  add("<text x=\"" + n(left) +
      "\" y=\"22\" font-size=\"16\" "
      "font-weight=\"bold\">" +
      runtime::xmlEscape(title) + "</text>\n");

  // Legend.
  double lx = left;
  for (const Entry &e : legend) {
    add("<rect x=\"" + n(lx) +
        "\" y=\"32\" width=\"14\" height=\"14\" "
        "fill=\"" +
        e.fill + "\" stroke=\"#999999\" stroke-width=\"0.5\"/>\n");
    add("<text x=\"" + n(lx + 19) + "\" y=\"44\" font-size=\"12\">" +
        runtime::xmlEscape(e.label) + "</text>\n");
    lx += 19 + 7.0 * e.label.size() + 18;
  }
  add("<text x=\"" + n(lx) + "\" y=\"44\" font-size=\"12\" fill=\"#555555\">" +
      note + "</text>\n");

  // One row per rank: grey is idle, a box per compute action.
  for (int r = 0; r < ranks; ++r) {
    double y = top + r * (rowHeight + rowGap);
    add("<text x=\"" + n(left - 8) + "\" y=\"" + n(y + rowHeight / 2 + 4) +
        "\" font-size=\"12\" text-anchor=\"end\">rank " + std::to_string(r) +
        "</text>\n");
    add("<rect x=\"" + n(left) + "\" y=\"" + n(y) + "\" width=\"" +
        n(plotWidth) + "\" height=\"" + n(rowHeight) +
        "\" fill=\"#e6e6e6\"/>\n");
    for (const TimedAction &t : result.ranks[r].actions) {
      if (!isCompute(t.action.kind) || t.end <= t.start)
        continue;
      double x = left + t.start * unit, w = (t.end - t.start) * unit;
      int chunk = schedule.chunkOf(t.action.stage);
      double opacity =
          schedule.vpp > 1 ? 1.0 - 0.45 * chunk / (schedule.vpp - 1) : 1.0;
      add("<rect x=\"" + n(x) + "\" y=\"" + n(y) + "\" width=\"" + n(w) +
          "\" height=\"" + n(rowHeight) + "\" fill=\"" + fillOf(t.action.kind) +
          "\"" + (opacity < 1 ? " fill-opacity=\"" + n(opacity) + "\"" : "") +
          " stroke=\"#ffffff\" stroke-width=\"1\"><title>" +
          runtime::xmlEscape(t.action.str()) + " " + n(t.start) + "-" +
          n(t.end) + "</title></rect>\n");
      if (w >= 12)
        add("<text x=\"" + n(x + w / 2) + "\" y=\"" + n(y + rowHeight / 2 + 4) +
            "\" font-size=\"11\" text-anchor=\"middle\" fill=\"" +
            textFillOf(t.action.kind) + "\">" +
            std::to_string(t.action.microbatch) + "</text>\n");
    }
  }

  // Time axis, ticks at least 40 pixels apart.
  double step = 1;
  for (double base = 1; step * unit < 40; base *= 10)
    for (double f : {1.0, 2.0, 5.0})
      if (step * unit < 40)
        step = base * f;
  add("<line x1=\"" + n(left) + "\" y1=\"" + n(axisY) + "\" x2=\"" +
      n(left + plotWidth) + "\" y2=\"" + n(axisY) +
      "\" stroke=\"#333333\" stroke-width=\"1\"/>\n");
  for (double t = 0; t <= result.makespan + 1e-9; t += step) {
    double x = left + t * unit;
    add("<line x1=\"" + n(x) + "\" y1=\"" + n(axisY) + "\" x2=\"" + n(x) +
        "\" y2=\"" + n(axisY + 5) + "\" stroke=\"#333333\"/>\n");
    add("<text x=\"" + n(x) + "\" y=\"" + n(axisY + 18) +
        "\" font-size=\"11\" text-anchor=\"middle\">" + n(t) + "</text>\n");
  }
  add("<text x=\"" + n(left) + "\" y=\"" + n(axisY + 36) +
      "\" font-size=\"11\" fill=\"#555555\">time (F=" + n(costs.f) + ", B=" +
      n(costs.b) + ", W=" + n(costs.w) + ", transfer=" + n(costs.transfer) +
      "); makespan " + n(result.makespan) + "</text>\n");
  add("</svg>\n");
  return out;
}

std::optional<std::string> writeFile(const std::string &path,
                                     const std::string &text) {
  try {
    runtime::writeFileAtomically(path, text);
  } catch (const std::exception &e) {
    return "cannot write '" + path + "': " + e.what();
  }
  return std::nullopt;
}

} // namespace loom::schedule
