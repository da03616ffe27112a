//===- LossPlot.h - The loss curve as an SVG image --------------*- C++ -*-===//
//
// A plot a person can read in a browser: a title, axes with tick labels at
// round numbers, axis titles (step, loss), the loss per step as a polyline
// and, optionally, a smoothed curve over it (an exponential moving average
// with TensorBoard's bias correction). Long runs are downsampled to at most
// `maxPoints` points, keeping each bucket's lowest and highest loss so that
// spikes stay visible. Steps whose loss is not finite are left out (the
// plot says how many). Output is deterministic.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_TRAIN_LOSSPLOT_H
#define LOOM_RUNTIME_TRAIN_LOSSPLOT_H

#include "loom/runtime/train/LossLog.h"

#include <string>
#include <vector>

namespace loom::runtime {

struct LossPlotOptions {
  std::string title = "Training loss";
  int width = 800, height = 480;
  /// The weight of the past in the smoothed curve, in [0, 1); 0 draws none.
  double smoothing = 0.9;
  /// At most this many points per curve (>= 4).
  size_t maxPoints = 2000;
};

/// The SVG document of the loss of `records` (in step order).
std::string renderLossSvg(const std::vector<StepRecord> &records,
                          const LossPlotOptions &options = {});

/// Writes renderLossSvg to `path` atomically. Throws std::runtime_error.
void writeLossSvg(const std::string &path,
                  const std::vector<StepRecord> &records,
                  const LossPlotOptions &options = {});

/// Round tick values covering [lo, hi]: multiples of 1, 2 or 5 x 10^k,
/// about `count` of them, the first <= lo and the last >= hi.
std::vector<double> niceTicks(double lo, double hi, int count);

/// The indices of at most `maxPoints` of `values` to draw: all of them when
/// they fit, else the first and last and, per bucket of consecutive
/// indices, its lowest and highest value in index order.
std::vector<size_t> downsample(const std::vector<double> &values,
                               size_t maxPoints);

} // namespace loom::runtime

#endif // LOOM_RUNTIME_TRAIN_LOSSPLOT_H
