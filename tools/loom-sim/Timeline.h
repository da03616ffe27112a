//===- Timeline.h - loom-sim's SVG timeline and file output ----*- C++ -*-===//
//
// The timeline picture of a simulated schedule (one row per rank, a box per
// F/B/W coloured by kind with its microbatch number, idle time as grey gaps,
// a legend, a time axis and a title with the bubble), and atomic file writes.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TOOLS_LOOM_SIM_TIMELINE_H
#define LOOM_TOOLS_LOOM_SIM_TIMELINE_H

#include "loom/Schedule/Schedule.h"

#include <optional>
#include <string>

namespace loom::schedule {

/// "1", "0.5", "2.25": at most two decimals, no trailing zeros.
std::string formatNumber(double v);

/// The SVG text: the same inputs give the same bytes.
std::string renderTimelineSvg(const Schedule &schedule,
                              const SimulationResult &result,
                              const ActionCosts &costs);

/// Writes `text` over `path` atomically (the runtime's
/// writeFileAtomically: flushed to disk, then renamed); the problem on
/// failure.
std::optional<std::string> writeFile(const std::string &path,
                                     const std::string &text);

} // namespace loom::schedule

#endif // LOOM_TOOLS_LOOM_SIM_TIMELINE_H
