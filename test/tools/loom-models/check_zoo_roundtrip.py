"""Every zoo model verifies and round-trips through loom-opt unchanged."""
import os
import subprocess
import sys

workdir = sys.argv[1]
os.makedirs(workdir, exist_ok=True)
models = subprocess.check_output(["loom-models", "--list"], text=True).split()
failures = 0
for name in models:
    first = os.path.join(workdir, f"{name}.mlir")
    subprocess.check_call(["loom-models", name, "-o", first])
    second = subprocess.check_output(["loom-opt", "--verify-roundtrip", first])
    third = subprocess.run(["loom-opt", "-"], input=second, capture_output=True,
                           check=True).stdout
    with open(first, "rb") as f:
        emitted = f.read()
    same = emitted == second == third
    print(f"{name}: {'identical' if same else 'DIFFERS'} ({len(emitted)} bytes)")
    failures += not same
sys.exit(1 if failures else 0)
