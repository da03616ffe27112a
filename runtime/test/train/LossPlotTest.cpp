//===- LossPlotTest.cpp - The loss curve as SVG ---------------------------===//

#include "loom/runtime/train/LossPlot.h"

#include "TrainTestUtil.h"

#include <cmath>

using namespace loom::runtime;
using namespace loom::test;

namespace {

std::vector<StepRecord> curve(int64_t steps) {
  std::vector<StepRecord> records;
  for (int64_t s = 1; s <= steps; ++s)
    records.push_back(
        {s, 2 + 8 * std::exp(-double(s) / 50) + 0.1 * std::sin(double(s)), 0, 0,
         0, 0});
  return records;
}

/// The points of the polyline of class `cls`.
std::vector<std::string> points(const std::string &svg,
                                const std::string &cls) {
  // Found by hand: std::regex recurses per character and overflows the
  // stack on a long attribute.
  size_t at = svg.find("<polyline class=\"" + cls + "\"");
  if (at == std::string::npos)
    return {};
  at = svg.find(" points=\"", at) + 9;
  std::string list = svg.substr(at, svg.find('"', at) - at);
  std::vector<std::string> out;
  for (size_t at = 0; at < list.size();) {
    size_t end = list.find(' ', at);
    if (end == std::string::npos)
      end = list.size();
    out.push_back(list.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

/// Parses `svg` with Python's XML parser and prints the root's tag and the
/// polylines' point counts; "" when python3 is missing.
std::string parseWithPython(const TempDir &dir, const std::string &svg) {
  if (std::system((std::string(kPython) + " -c '' 2>/dev/null").c_str()) != 0)
    return "";
  writeFile(dir / "plot.svg", svg);
  writeFile(dir / "check.py",
            "import sys, xml.etree.ElementTree as ET\n"
            "root = ET.parse(sys.argv[1]).getroot()\n"
            "ns = '{http://www.w3.org/2000/svg}'\n"
            "lines = root.findall(ns + 'polyline')\n"
            "texts = [t.text for t in root.iter(ns + 'text')]\n"
            "print(root.tag, [len(p.get('points').split()) for p in lines],\n"
            "      'step' in texts, 'loss' in texts)\n");
  std::string cmd = std::string(kPython) + " " + (dir / "check.py") + " " +
                    (dir / "plot.svg") + " > " + (dir / "out.txt") + " 2>&1";
  int rc = std::system(cmd.c_str());
  return (rc == 0 ? "" : "failed: ") + readFile(dir / "out.txt");
}

TEST(LossPlot, TicksAreRoundNumbersCoveringTheRange) {
  EXPECT_EQ(niceTicks(1, 1000, 6),
            (std::vector<double>{0, 200, 400, 600, 800, 1000}));
  EXPECT_EQ(niceTicks(2.13, 9.87, 5), (std::vector<double>{2, 4, 6, 8, 10}));
  std::vector<double> small = niceTicks(0.0123, 0.0456, 5); // by 0.005
  ASSERT_EQ(small.size(), 9u);
  EXPECT_DOUBLE_EQ(small.front(), 0.01);
  EXPECT_DOUBLE_EQ(small.back(), 0.05);
  EXPECT_EQ(niceTicks(-1, 1, 4), (std::vector<double>{-1, -0.5, 0, 0.5, 1}));
  EXPECT_EQ(niceTicks(3, 3, 5), (std::vector<double>{3}));
}

TEST(LossPlot, DownsamplingKeepsEndsAndSpikes) {
  std::vector<double> v(100000, 1.0);
  v[31337] = 50; // a spike
  v[77777] = -3; // a dip
  std::vector<size_t> keep = downsample(v, 2000);
  EXPECT_LE(keep.size(), 2000u);
  EXPECT_GE(keep.size(), 1000u);
  EXPECT_EQ(keep.front(), 0u);
  EXPECT_EQ(keep.back(), v.size() - 1);
  EXPECT_TRUE(std::is_sorted(keep.begin(), keep.end()));
  EXPECT_EQ(std::adjacent_find(keep.begin(), keep.end()), keep.end());
  EXPECT_NE(std::find(keep.begin(), keep.end(), 31337u), keep.end());
  EXPECT_NE(std::find(keep.begin(), keep.end(), 77777u), keep.end());
  EXPECT_EQ(downsample({1, 2, 3}, 2000), (std::vector<size_t>{0, 1, 2}));
  // A flat curve: one point per bucket.
  EXPECT_EQ(downsample(std::vector<double>(2001, 0), 2000).size(), 1001u);
}

TEST(LossPlot, ADocumentAPersonAndAParserCanRead) {
  TempDir dir;
  std::vector<StepRecord> records = curve(300);
  LossPlotOptions options;
  options.title = "tiny-llama <8 layers> & friends";
  std::string svg = renderLossSvg(records, options);
  EXPECT_EQ(svg, renderLossSvg(records, options)); // deterministic
  EXPECT_EQ(svg.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg ", 0),
            0u);
  EXPECT_NE(svg.find(">tiny-llama &lt;8 layers&gt; &amp; friends</text>"),
            std::string::npos);
  EXPECT_NE(svg.find(">step</text>"), std::string::npos);
  EXPECT_NE(svg.find(">loss</text>"), std::string::npos);
  // Tick labels of both axes.
  EXPECT_NE(svg.find(">300</text>"), std::string::npos);
  EXPECT_NE(svg.find(">10</text>"), std::string::npos);
  EXPECT_EQ(points(svg, "loss").size(), 300u);
  EXPECT_EQ(points(svg, "smoothed").size(), 300u);
  // Step 1 of an axis from 0 to 300 over 690 pixels from x = 80.
  EXPECT_EQ(points(svg, "loss").front().rfind("82.30,", 0), 0u)
      << points(svg, "loss").front();
  std::string parsed = parseWithPython(dir, svg);
  if (!parsed.empty())
    EXPECT_EQ(parsed, "{http://www.w3.org/2000/svg}svg [300, 300] True True\n");

  options.smoothing = 0;
  std::string raw = renderLossSvg(records, options);
  EXPECT_TRUE(points(raw, "smoothed").empty());
  EXPECT_EQ(points(raw, "loss").size(), 300u);

  writeLossSvg(dir / "loss.svg", records, options);
  EXPECT_EQ(readFile(dir / "loss.svg"), raw);
}

TEST(LossPlot, LongRunsAreDownsampled) {
  TempDir dir;
  std::string svg = renderLossSvg(curve(100000));
  EXPECT_LE(points(svg, "loss").size(), 2000u);
  EXPECT_LE(points(svg, "smoothed").size(), 2000u);
  EXPECT_GE(points(svg, "loss").size(), 1000u);
  std::string parsed = parseWithPython(dir, svg);
  EXPECT_EQ(parsed.rfind("failed", 0), std::string::npos) << parsed;
}

TEST(LossPlot, LossesThatAreNotFiniteAreLeftOutAndCounted) {
  TempDir dir;
  std::vector<StepRecord> records = curve(10);
  records[3].loss = NAN;
  records[7].loss = INFINITY;
  std::string svg = renderLossSvg(records);
  EXPECT_EQ(points(svg, "loss").size(), 8u);
  EXPECT_NE(svg.find("2 step(s) with a loss that is not finite are not drawn"),
            std::string::npos);
  for (auto &r : records)
    r.loss = NAN;
  EXPECT_NE(renderLossSvg(records).find("no finite loss to draw"),
            std::string::npos);
  // One step and no steps still make a valid document.
  for (const auto &few : {std::vector<StepRecord>{}, curve(1)}) {
    std::string one = renderLossSvg(few);
    std::string parsed = parseWithPython(dir, one);
    EXPECT_EQ(parsed.rfind("failed", 0), std::string::npos) << parsed;
    EXPECT_EQ(one.find("nan"), std::string::npos) << one;
  }
}

} // namespace
