// RUN: loom-opt %s -loom-forward-to-program | loom-translate --loom-to-program-text | FileCheck %s
// RUN: loom-opt %s -loom-forward-to-program | loom-translate --loom-to-program -o %t.loom
// RUN: rm -rf %t.in %t.out && mkdir -p %t.in
// RUN: %python -c "import numpy as np; np.save('%t.in/x.npy', np.arange(64, dtype=np.float32).reshape(4, 16))"
// RUN: loom-run %t.loom --nproc 2 --inputs %t.in --outputs %t.out --quiet
// RUN: %python -c "import numpy as np; x = np.arange(64, dtype=np.float32).reshape(4, 16); assert (np.load('%t.out/y.npy') == x[:, :8]).all() and (np.load('%t.out/rank1/y.npy') == x[:, 8:]).all(); print('each rank its half')" | FileCheck %s --check-prefix=RANKS

// One program for every rank: the slice's offsets depend on the rank's
// coordinate along "tp" (loom.rank_terms), so rank r takes columns
// [8r, 8r + 8).
// RANKS: each rank its half
// CHECK: = slice(%{{[0-9]+}}) {offsets = [0, 0] + [0, 8] * tp, sizes = [4, 8]}
loom.mesh @world <tp = 2>
func.func @f(%x: tensor<4x16xf32> {loom.input = "x"}) -> (tensor<4x8xf32> {loom.output = "y"}) {
  %s = loom.slice %x {offsets = array<i64: 0, 0>, sizes = array<i64: 4, 8>, loom.rank_terms = {offsets = [#loom.rank_term<@world, "tp", [0, 8]>]}} : tensor<4x16xf32> -> tensor<4x8xf32>
  return %s : tensor<4x8xf32>
}
