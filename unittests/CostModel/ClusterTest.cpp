//===- ClusterTest.cpp - Cluster presets and the cluster file format ------===//
//
// The presets' constants against the datasheets, node counts, and the file
// format with every error it reports (file:line and the key).
//
//===----------------------------------------------------------------------===//

#include "loom/CostModel/Cluster.h"

#include "gtest/gtest.h"

#include <string>

using namespace loom::cost;

namespace {

std::string errorOf(llvm::Expected<Cluster> cluster) {
  if (cluster)
    return "";
  return llvm::toString(cluster.takeError());
}

TEST(ClusterTest, H100Presets) {
  auto node = getClusterPreset("h100-node");
  ASSERT_TRUE(bool(node)) << llvm::toString(node.takeError());
  EXPECT_EQ(node->gpusPerNode, 8);
  EXPECT_EQ(node->nodes, 1);
  EXPECT_EQ(node->gpus(), 8);
  EXPECT_DOUBLE_EQ(node->peakFlops, 989e12);
  EXPECT_DOUBLE_EQ(node->hbmBandwidth, 3.35e12);
  EXPECT_DOUBLE_EQ(node->hbmCapacity, 80e9);
  EXPECT_DOUBLE_EQ(node->intraNode.bandwidth, 450e9);
  EXPECT_DOUBLE_EQ(node->matmulEfficiency, 0.75);
  EXPECT_DOUBLE_EQ(node->matmulFlops(), 989e12 * 0.75);

  auto ib = getClusterPreset("h100-ib:8");
  ASSERT_TRUE(bool(ib)) << llvm::toString(ib.takeError());
  EXPECT_EQ(ib->name, "h100-ib:8");
  EXPECT_EQ(ib->nodes, 8);
  EXPECT_EQ(ib->gpus(), 64);
  EXPECT_DOUBLE_EQ(ib->interNode.bandwidth, 50e9); // NDR 400 Gb/s
  EXPECT_DOUBLE_EQ(ib->intraNode.latency, 1e-6);
  EXPECT_DOUBLE_EQ(ib->interNode.latency, 5e-6);
}

TEST(ClusterTest, A100Preset) {
  auto a100 = getClusterPreset("a100-ib:192");
  ASSERT_TRUE(bool(a100)) << llvm::toString(a100.takeError());
  EXPECT_EQ(a100->gpus(), 1536);
  EXPECT_DOUBLE_EQ(a100->peakFlops, 312e12);
  EXPECT_DOUBLE_EQ(a100->hbmBandwidth, 2039e9);
  EXPECT_DOUBLE_EQ(a100->intraNode.bandwidth, 300e9);
  EXPECT_DOUBLE_EQ(a100->interNode.bandwidth, 25e9); // HDR 200 Gb/s
}

// Every constant is described with a source, in the file's units.
TEST(ClusterTest, ConstantsHaveSources) {
  auto ib = getClusterPreset("h100-ib:2");
  ASSERT_TRUE(bool(ib));
  ASSERT_EQ(ib->constants.size(), getClusterKeys().size());
  for (const ClusterConstant &c : ib->constants)
    EXPECT_FALSE(c.source.empty()) << c.key;
  EXPECT_EQ(ib->constants[2].key, "peak_tflops");
  EXPECT_DOUBLE_EQ(ib->constants[2].value, 989);
  EXPECT_NE(ib->constants[2].source.find("datasheet"), std::string::npos);
}

TEST(ClusterTest, PresetErrors) {
  EXPECT_EQ(errorOf(getClusterPreset("tpu-v5")),
            "unknown cluster 'tpu-v5'; presets: h100-node, h100-ib:N, "
            "a100-ib:N");
  EXPECT_EQ(errorOf(getClusterPreset("h100-ib")),
            "cluster 'h100-ib' needs a node count: h100-ib:N");
  EXPECT_EQ(errorOf(getClusterPreset("h100-ib:0")),
            "cluster 'h100-ib:0': the node count must be in [1, 1048576], "
            "got 0");
  EXPECT_EQ(errorOf(getClusterPreset("h100-ib:x")),
            "cluster 'h100-ib:x': the node count needs an integer, got 'x'");
  EXPECT_EQ(errorOf(getClusterPreset("h100-node:2")),
            "cluster 'h100-node:2': h100-node is one node and takes no "
            "count; use h100-ib:N for several");
}

const char *const kFullFile = R"(# A hypothetical cluster: 4 nodes of 4 GPUs.
name = lab
gpus_per_node = 4
nodes = 4
peak_tflops = 100       # dense bf16
matmul_efficiency = 0.5
hbm_gb_per_s = 1000
hbm_gb = 40

intra_node_gb_per_s = 100
intra_node_latency_us = 2
inter_node_gb_per_s = 10
inter_node_latency_us = 0
)";

TEST(ClusterTest, FileWithEveryKey) {
  auto c = parseClusterFile(kFullFile, "lab.cluster");
  ASSERT_TRUE(bool(c)) << llvm::toString(c.takeError());
  EXPECT_EQ(c->name, "lab");
  EXPECT_EQ(c->gpus(), 16);
  EXPECT_DOUBLE_EQ(c->peakFlops, 100e12);
  EXPECT_DOUBLE_EQ(c->matmulEfficiency, 0.5);
  EXPECT_DOUBLE_EQ(c->hbmBandwidth, 1e12);
  EXPECT_DOUBLE_EQ(c->hbmCapacity, 40e9);
  EXPECT_DOUBLE_EQ(c->intraNode.bandwidth, 100e9);
  EXPECT_DOUBLE_EQ(c->intraNode.latency, 2e-6);
  EXPECT_DOUBLE_EQ(c->interNode.bandwidth, 10e9);
  EXPECT_DOUBLE_EQ(c->interNode.latency, 0);
  // Each constant's source is the line that set it.
  EXPECT_EQ(c->constants[2].source, "lab.cluster:5");
}

TEST(ClusterTest, FileFromBase) {
  auto c = parseClusterFile("base = h100-ib:2\nnodes = 16\n"
                            "inter_node_gb_per_s = 25\n",
                            "my.cluster");
  ASSERT_TRUE(bool(c)) << llvm::toString(c.takeError());
  EXPECT_EQ(c->name, "my.cluster");
  EXPECT_EQ(c->gpus(), 128);
  EXPECT_DOUBLE_EQ(c->peakFlops, 989e12);
  EXPECT_DOUBLE_EQ(c->interNode.bandwidth, 25e9);
  EXPECT_EQ(c->constants[1].source, "my.cluster:2");
  EXPECT_NE(c->constants[2].source.find("datasheet"), std::string::npos);
}

TEST(ClusterTest, FileErrors) {
  auto err = [](const char *text) {
    return errorOf(parseClusterFile(text, "c.txt"));
  };
  EXPECT_EQ(err("base = h100-node\n\nwidth = 3\n"),
            "c.txt:3: unknown key 'width'; keys: name, base, gpus_per_node, "
            "nodes, peak_tflops, matmul_efficiency, hbm_gb_per_s, hbm_gb, "
            "intra_node_gb_per_s, intra_node_latency_us, inter_node_gb_per_s, "
            "inter_node_latency_us");
  EXPECT_EQ(err("base = h100-node\npeak_tflops 989\n"),
            "c.txt:2: expected 'key = value', got 'peak_tflops 989'");
  EXPECT_EQ(err("base = h100-node\npeak_tflops = fast\n"),
            "c.txt:2: peak_tflops needs a number, got 'fast'");
  EXPECT_EQ(err("base = h100-node\npeak_tflops = 0\n"),
            "c.txt:2: peak_tflops must be positive, got 0");
  EXPECT_EQ(err("base = h100-node\nmatmul_efficiency = 1.5\n"),
            "c.txt:2: matmul_efficiency must be in (0, 1], got 1.5");
  EXPECT_EQ(err("base = h100-node\nmatmul_efficiency = 0\n"),
            "c.txt:2: matmul_efficiency must be in (0, 1], got 0");
  EXPECT_EQ(err("base = h100-node\nnodes = 2.5\n"),
            "c.txt:2: nodes needs an integer, got '2.5'");
  EXPECT_EQ(err("base = h100-node\nhbm_gb = 80\nhbm_gb = 96\n"),
            "c.txt:3: hbm_gb given twice (first at c.txt:2)");
  EXPECT_EQ(err("nodes = 2\nbase = h100-node\n"),
            "c.txt:2: base must come before the keys it overrides");
  EXPECT_EQ(err("base = dgx-9000\n"),
            "c.txt:1: base: unknown cluster 'dgx-9000'; presets: h100-node, "
            "h100-ib:N, a100-ib:N");
  EXPECT_EQ(err("base = h100-node\nhbm_gb =\n"),
            "c.txt:2: hbm_gb needs a value");
  EXPECT_EQ(err("= 3\n"), "c.txt:1: a key is missing before '='");
  EXPECT_EQ(err("gpus_per_node = 8\nnodes = 1\n"),
            "c.txt: missing keys peak_tflops, matmul_efficiency, "
            "hbm_gb_per_s, hbm_gb, intra_node_gb_per_s, "
            "intra_node_latency_us, inter_node_gb_per_s, "
            "inter_node_latency_us (or start from a preset with 'base = "
            "h100-ib:N')");
}

TEST(ClusterTest, ReadMissingFile) {
  std::string error = errorOf(readClusterFile("/nonexistent/x.cluster"));
  EXPECT_EQ(
      error.rfind("cannot read cluster file '/nonexistent/x.cluster': ", 0), 0u)
      << error;
}

} // namespace
