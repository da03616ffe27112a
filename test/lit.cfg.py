# -*- Python -*-
# Lit configuration for Loom's IR, CLI and execution tests.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "LOOM"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.loom_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%loom_src", config.loom_src_root))
config.substitutions.append(("%python", "/usr/bin/python3"))

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.loom_tools_dir, append_path=True)

tool_dirs = [config.loom_tools_dir, config.llvm_tools_dir]
tools = ["loom-opt", "loom-models", "loom-translate", "loom-run", "loom-dump",
         "loom-sim"]
llvm_config.add_tool_substitutions(
    [ToolSubst(t, unresolved="ignore") for t in tools], tool_dirs)

# Tools that exist only in some builds gate their tests.
for tool in ["loom-translate", "loom-run", "loom-dump"]:
    if os.path.exists(os.path.join(config.loom_tools_dir, tool)):
        config.available_features.add(tool)

# Training steps are compiled (-loom-autodiff) and run.
if os.path.exists(os.path.join(config.loom_tools_dir, "loom-run")):
    config.available_features.add("loom-train")

# A GPU is visible: the CUDA backend can run instead of explaining why not.
if os.path.exists("/dev/nvidia0"):
    config.available_features.add("gpu")
