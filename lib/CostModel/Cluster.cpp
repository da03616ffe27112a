//===- Cluster.cpp - Cluster presets and the cluster file format ----------===//
//
// The presets' constants and their sources, and the `key = value` file a
// user describes another cluster with (docs/CostModel.md).
//
//===----------------------------------------------------------------------===//

#include "loom/CostModel/Cluster.h"

#include "loom/runtime/ParseNumber.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

using namespace loom::cost;

namespace {
/// A file key bound to its field: the value in the file's unit times
/// `scale` is the field's value in SI units.
struct KeyBinding {
  ClusterKey info;
  double scale;
  /// Integers (GPU and node counts) parse as whole numbers.
  bool integer;
  double (*get)(const Cluster &);
  void (*set)(Cluster &, double);
};
} // namespace

static const KeyBinding kBindings[] = {
    {{"gpus_per_node", "GPUs", "GPUs in one node (one NVLink domain)"},
     1,
     true,
     [](const Cluster &c) { return double(c.gpusPerNode); },
     [](Cluster &c, double v) { c.gpusPerNode = int64_t(v); }},
    {{"nodes", "nodes", "nodes joined by the inter-node network"},
     1,
     true,
     [](const Cluster &c) { return double(c.nodes); },
     [](Cluster &c, double v) { c.nodes = int64_t(v); }},
    {{"peak_tflops", "TFLOP/s", "dense bf16 peak of one GPU"},
     1e12,
     false,
     [](const Cluster &c) { return c.peakFlops; },
     [](Cluster &c, double v) { c.peakFlops = v; }},
    {{"matmul_efficiency", "of peak",
      "the fraction of peak large matmuls reach, (0, 1]"},
     1,
     false,
     [](const Cluster &c) { return c.matmulEfficiency; },
     [](Cluster &c, double v) { c.matmulEfficiency = v; }},
    {{"hbm_gb_per_s", "GB/s", "HBM bandwidth of one GPU"},
     1e9,
     false,
     [](const Cluster &c) { return c.hbmBandwidth; },
     [](Cluster &c, double v) { c.hbmBandwidth = v; }},
    {{"hbm_gb", "GB", "HBM capacity of one GPU"},
     1e9,
     false,
     [](const Cluster &c) { return c.hbmCapacity; },
     [](Cluster &c, double v) { c.hbmCapacity = v; }},
    {{"intra_node_gb_per_s", "GB/s",
      "link inside a node (NVLink), per GPU and direction"},
     1e9,
     false,
     [](const Cluster &c) { return c.intraNode.bandwidth; },
     [](Cluster &c, double v) { c.intraNode.bandwidth = v; }},
    {{"intra_node_latency_us", "us",
      "latency (alpha) of one collective step inside a node"},
     1e-6,
     false,
     [](const Cluster &c) { return c.intraNode.latency; },
     [](Cluster &c, double v) { c.intraNode.latency = v; }},
    {{"inter_node_gb_per_s", "GB/s",
      "link between nodes (InfiniBand), per GPU and direction"},
     1e9,
     false,
     [](const Cluster &c) { return c.interNode.bandwidth; },
     [](Cluster &c, double v) { c.interNode.bandwidth = v; }},
    {{"inter_node_latency_us", "us",
      "latency (alpha) of one collective step between nodes"},
     1e-6,
     false,
     [](const Cluster &c) { return c.interNode.latency; },
     [](Cluster &c, double v) { c.interNode.latency = v; }},
};
static constexpr size_t kNumKeys = std::size(kBindings);

llvm::ArrayRef<ClusterKey> loom::cost::getClusterKeys() {
  static const std::vector<ClusterKey> keys = [] {
    std::vector<ClusterKey> k;
    for (const KeyBinding &b : kBindings)
      k.push_back(b.info);
    return k;
  }();
  return keys;
}

static const KeyBinding *findBinding(llvm::StringRef key) {
  for (const KeyBinding &b : kBindings)
    if (b.info.key == key)
      return &b;
  return nullptr;
}

/// Fills cluster.constants from the fields and one source per key.
static void describe(Cluster &cluster,
                     const std::vector<std::string> &sources) {
  cluster.constants.clear();
  for (size_t i = 0; i < kNumKeys; ++i)
    cluster.constants.push_back({kBindings[i].info.key.str(),
                                 kBindings[i].get(cluster) / kBindings[i].scale,
                                 kBindings[i].info.unit.str(), sources[i]});
}

static llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

//===----------------------------------------------------------------------===//
// Presets
//===----------------------------------------------------------------------===//

namespace {
/// A preset's value and source for each key, in kBindings' order.
struct PresetValue {
  double value;
  const char *source;
};
struct Preset {
  llvm::StringRef name;
  /// Whether the name takes ":N" nodes (else one node).
  bool takesNodes;
  PresetValue values[kNumKeys];
};
} // namespace

// The latencies are assumptions, not datasheet figures: a few microseconds
// per algorithm step is the order NCCL's rings reach inside a node, a few
// more across InfiniBand; they matter only for small messages.
static const char *const kNvlinkLatency =
    "assumption: a few microseconds per ring step, the order NCCL reaches "
    "over NVLink; matters for small messages only";
static const char *const kIbLatency =
    "assumption: NVLink's step plus the network's microseconds; matters for "
    "small messages only";
static const char *const kEfficiency =
    "assumption: large bf16 GEMMs run at about 3/4 of peak; end-to-end MFU "
    "(Megatron-Core's README: up to 47% on H100; Narayanan et al. SC'21: "
    "52% of A100 peak for 1T) also loses time to communication, bubbles and "
    "memory-bound kernels, which this model prices separately";

static const Preset kPresets[] = {
    {"h100-node",
     false,
     {{8, "NVIDIA DGX H100: 8 H100 SXM5 GPUs per node"},
      {1, "h100-node is one node"},
      {989, "NVIDIA H100 datasheet, H100 SXM: 989 TFLOP/s dense BF16 "
            "(1,979 with sparsity)"},
      {0.75, kEfficiency},
      {3350, "NVIDIA H100 datasheet, H100 SXM: 3.35 TB/s HBM3"},
      {80, "NVIDIA H100 datasheet, H100 SXM: 80 GB"},
      {450, "NVIDIA H100 datasheet: NVLink 4 at 900 GB/s bidirectional, "
            "450 GB/s each way"},
      {1, kNvlinkLatency},
      {50, "one node: unused (NDR InfiniBand's 50 GB/s, as h100-ib)"},
      {5, kIbLatency}}},
    {"h100-ib",
     true,
     {{8, "NVIDIA DGX H100: 8 H100 SXM5 GPUs per node"},
      {1, "the preset's :N"},
      {989, "NVIDIA H100 datasheet, H100 SXM: 989 TFLOP/s dense BF16 "
            "(1,979 with sparsity)"},
      {0.75, kEfficiency},
      {3350, "NVIDIA H100 datasheet, H100 SXM: 3.35 TB/s HBM3"},
      {80, "NVIDIA H100 datasheet, H100 SXM: 80 GB"},
      {450, "NVIDIA H100 datasheet: NVLink 4 at 900 GB/s bidirectional, "
            "450 GB/s each way"},
      {1, kNvlinkLatency},
      {50, "NVIDIA DGX H100: one ConnectX-7 NDR InfiniBand port per GPU, "
           "400 Gb/s = 50 GB/s"},
      {5, kIbLatency}}},
    {"a100-ib",
     true,
     {{8, "NVIDIA DGX A100: 8 A100 SXM4 80GB GPUs per node (Selene, the "
          "cluster of Narayanan et al. SC'21)"},
      {1, "the preset's :N"},
      {312, "NVIDIA A100 datasheet: 312 TFLOP/s dense BF16 (624 with "
            "sparsity)"},
      {0.75, kEfficiency},
      {2039, "NVIDIA A100 datasheet, A100 80GB SXM: 2,039 GB/s HBM2e"},
      {80, "NVIDIA A100 datasheet, A100 80GB SXM: 80 GB"},
      {300, "NVIDIA A100 datasheet: NVLink 3 at 600 GB/s bidirectional, "
            "300 GB/s each way"},
      {1, kNvlinkLatency},
      {25, "NVIDIA DGX A100: one HDR InfiniBand port per GPU, 200 Gb/s = "
           "25 GB/s (Narayanan et al. SC'21: 8 HDR 200 Gb/s HCAs per node)"},
      {5, kIbLatency}}},
};

llvm::ArrayRef<llvm::StringRef> loom::cost::getClusterPresetNames() {
  static const llvm::StringRef names[] = {"h100-node", "h100-ib:N",
                                          "a100-ib:N"};
  return names;
}

static std::string presetList() {
  return llvm::join(getClusterPresetNames(), ", ");
}

/// The largest node count a preset takes: 2^20 nodes is far beyond any
/// cluster and keeps every rank an int.
static constexpr int64_t kMaxNodes = 1 << 20;

llvm::Expected<Cluster> loom::cost::getClusterPreset(llvm::StringRef spec) {
  auto [name, count] = spec.split(':');
  bool hasCount = spec.contains(':');
  const Preset *preset = nullptr;
  for (const Preset &p : kPresets)
    if (p.name == name)
      preset = &p;
  if (!preset)
    return makeError("unknown cluster '" + spec +
                     "'; presets: " + presetList());
  int64_t nodes = 1;
  if (preset->takesNodes) {
    if (!hasCount)
      return makeError("cluster '" + spec + "' needs a node count: " + name +
                       ":N");
    if (auto problem = loom::runtime::parseInteger(
            std::string_view(count.data(), count.size()), 1, kMaxNodes, nodes))
      return makeError("cluster '" + spec + "': the node count " + *problem);
  } else if (hasCount) {
    return makeError("cluster '" + spec + "': " + name +
                     " is one node and takes no count; use h100-ib:N for "
                     "several");
  }

  Cluster cluster;
  cluster.name = spec.str();
  std::vector<std::string> sources;
  for (size_t i = 0; i < kNumKeys; ++i) {
    kBindings[i].set(cluster, preset->values[i].value * kBindings[i].scale);
    sources.push_back(preset->values[i].source);
  }
  cluster.nodes = nodes;
  describe(cluster, sources);
  return cluster;
}

//===----------------------------------------------------------------------===//
// Checking and the file format
//===----------------------------------------------------------------------===//

/// The range of a key's value in the file's unit; the problem, if any.
static loom::runtime::NumberProblem
parseValue(const KeyBinding &binding, llvm::StringRef text, double &value) {
  std::string_view view(text.data(), text.size());
  if (binding.integer) {
    int64_t v = 0;
    int64_t max = binding.info.key == "nodes" ? kMaxNodes : 1 << 16;
    if (auto problem = loom::runtime::parseInteger(view, 1, max, v))
      return problem;
    value = double(v);
    return std::nullopt;
  }
  if (binding.info.key == "matmul_efficiency") {
    if (auto problem = loom::runtime::parseReal(view, -1e9, 1e9, value))
      return problem;
    if (value <= 0 || value > 1)
      return std::string("must be in (0, 1], got ") + std::string(view);
    return std::nullopt;
  }
  bool latency = binding.info.key.ends_with("latency_us");
  if (auto problem = loom::runtime::parseReal(view, 0, 1e9, value))
    return problem;
  if (!latency && value <= 0)
    return "must be positive, got " + std::string(view);
  return std::nullopt;
}

llvm::Error loom::cost::checkCluster(const Cluster &cluster) {
  for (const KeyBinding &b : kBindings) {
    double v = b.get(cluster) / b.scale;
    bool latency = b.info.key.ends_with("latency_us");
    bool bad = !std::isfinite(v) || v < 0 || (!latency && v == 0) ||
               (b.info.key == "matmul_efficiency" && v > 1);
    if (bad)
      return makeError("cluster '" + cluster.name + "': " + b.info.key +
                       " must be " +
                       (latency                             ? "at least 0"
                        : b.info.key == "matmul_efficiency" ? "in (0, 1]"
                                                            : "positive") +
                       ", got " + std::to_string(v));
  }
  if (cluster.gpus() > (int64_t(1) << 30))
    return makeError("cluster '" + cluster.name + "' has " +
                     llvm::Twine(cluster.gpus()) + " GPUs, more than 2^30");
  return llvm::Error::success();
}

llvm::Expected<Cluster> loom::cost::parseClusterFile(llvm::StringRef text,
                                                     llvm::StringRef fileName) {
  Cluster cluster;
  cluster.name = fileName.str();
  std::vector<std::string> sources(kNumKeys);
  std::vector<bool> set(kNumKeys, false);
  /// "FILE:LINE" where the file set each key, empty when it did not.
  std::vector<std::string> setAt(kNumKeys);
  bool sawBase = false, sawName = false, sawKey = false;

  llvm::SmallVector<llvm::StringRef> lines;
  text.split(lines, '\n');
  for (size_t index = 0; index < lines.size(); ++index) {
    std::string where = (fileName + ":" + llvm::Twine(index + 1)).str();
    llvm::StringRef line = lines[index].split('#').first.trim();
    if (line.empty())
      continue;
    if (!line.contains('='))
      return makeError(where + ": expected 'key = value', got '" + line + "'");
    auto [rawKey, rawValue] = line.split('=');
    llvm::StringRef key = rawKey.trim(), value = rawValue.trim();
    if (key.empty())
      return makeError(where + ": a key is missing before '='");
    if (value.empty())
      return makeError(where + ": " + key + " needs a value");

    if (key == "name") {
      if (sawName)
        return makeError(where + ": name given twice");
      sawName = true;
      cluster.name = value.str();
      continue;
    }
    if (key == "base") {
      if (sawBase)
        return makeError(where + ": base given twice");
      if (sawKey)
        return makeError(where + ": base must come before the keys it "
                                 "overrides");
      auto preset = getClusterPreset(value);
      if (!preset)
        return makeError(where +
                         ": base: " + llvm::toString(preset.takeError()));
      sawBase = true;
      std::string name = cluster.name; // the file's name or its own
      cluster = std::move(*preset);
      cluster.name = name;
      for (size_t i = 0; i < kNumKeys; ++i) {
        sources[i] = cluster.constants[i].source;
        set[i] = true;
      }
      continue;
    }
    const KeyBinding *binding = findBinding(key);
    if (!binding) {
      std::vector<llvm::StringRef> known = {"name", "base"};
      for (const KeyBinding &b : kBindings)
        known.push_back(b.info.key);
      return makeError(where + ": unknown key '" + key +
                       "'; keys: " + llvm::join(known, ", "));
    }
    size_t i = binding - kBindings;
    if (!setAt[i].empty())
      return makeError(where + ": " + key + " given twice (first at " +
                       setAt[i] + ")");
    double parsed = 0;
    if (auto problem = parseValue(*binding, value, parsed))
      return makeError(where + ": " + key + " " + *problem);
    binding->set(cluster, parsed * binding->scale);
    sources[i] = where;
    setAt[i] = where;
    set[i] = true;
    sawKey = true;
  }

  llvm::SmallVector<llvm::StringRef> missing;
  for (size_t i = 0; i < kNumKeys; ++i)
    if (!set[i])
      missing.push_back(kBindings[i].info.key);
  if (!missing.empty())
    return makeError(fileName + ": missing " +
                     (missing.size() == 1 ? "key " : "keys ") +
                     llvm::join(missing, ", ") +
                     " (or start from a preset with 'base = h100-ib:N')");
  describe(cluster, sources);
  if (auto error = checkCluster(cluster))
    return makeError(fileName + ": " + llvm::toString(std::move(error)));
  return cluster;
}

llvm::Expected<Cluster> loom::cost::readClusterFile(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buffer)
    return makeError("cannot read cluster file '" + path +
                     "': " + buffer.getError().message());
  return parseClusterFile((*buffer)->getBuffer(), path);
}
