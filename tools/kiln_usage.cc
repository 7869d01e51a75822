// The `kiln` tool's help texts: one per command, printed by
// `kiln <command> --help` and after that command's usage errors.
#include "tools/kiln_cli.h"

namespace kiln::cli {

const char* MainUsage() {
  return R"(usage: kiln <command> [options]

commands:
  run MODEL [options]    run a model: outputs' checksums, latency percentiles,
                         throughput under concurrent load, JIT tier-up
  info MODEL [options]   what a model holds: metadata, inputs, outputs, ops,
                         unsupported ops, JIT regions
  dot MODEL [options]    the model's graph in Graphviz DOT format
  version                kiln's version (also: kiln --version)

`kiln <command> --help` lists a command's options. Relative paths are taken
from the folder `bazel run` was started in (BUILD_WORKING_DIRECTORY) when
set.
)";
}

const char* RunUsage() {
  return R"(usage: kiln run MODEL [options]

Runs MODEL once, then warm-up runs, then timed runs; prints each output's
shape and checksum, the latency (first run, p50, p90, p99, max), the
throughput, memory and what the JIT compiled.

inputs:
  --input NAME=FILE.npy   an input from a .npy file (repeatable); inputs not
                          given get deterministic pseudo-random data
  --shape NAME=DIMS       the shape of a generated input, e.g.
                          --shape input=1x3x224x224 (repeatable); also binds
                          the symbols of that input's declared shape
  --dim SYMBOL=VALUE      bind a symbolic dim of generated inputs, e.g.
                          --dim batch=1 (repeatable)
outputs:
  --output-dir DIR        write output i of the last run to DIR/output_<i>.npy
  --report FILE.json      write timings, percentiles, QPS, memory and JIT
                          stats as JSON
  --trace FILE.json       write a Chrome trace (Perfetto): a slice per node or
                          region run, by tier; JIT compiles on their own track
  --profile               print per-node time (and add it to the report)
timing:
  --iters N               timed runs, over all threads (default 10)
  --duration SECONDS      time the runs for this long instead of --iters
  --feed OUTPUT=INPUT     after each run, pass output OUTPUT back as input
                          INPUT, without copying (stateful streaming models:
                          state in, next state out); repeatable; needs
                          --concurrency 1
  --concurrency N         threads calling Run on the one session at once
                          (default 1): a load test
  --warmup N              untimed runs after the first run (default 1)
  --wait-for-jit          after the warm-up, keep running until every hot JIT
                          region is compiled (or dropped as slower than the
                          interpreter), then time; prints the latency before
                          and after tier-up
  --jit-timeout SECONDS   most time --wait-for-jit waits (default 60)
execution:
  --tier interp|jit|auto  execution tier (default auto: interpret at once,
                          compile hot regions in the background)
  --jit-cache DIR         keep compiled code in DIR and link it from there in
                          later runs and other processes (also KILN_JIT_CACHE)
  --payback-horizon N     compile a hot region only if it is projected to
                          win back its compile time within N calls
                          (default 0: no limit)
  --compile-share S       share of one core background compiles may take
                          while every core serves requests, 0 to 1
                          (default 0.25; 0: no pacing, low priority;
                          1: never paced)
  --bitwise               compiled code gives the interpreter's outputs bit
                          for bit (regions it cannot reproduce exactly stay
                          interpreted)
  --threads N             intra-op threads per run, 0 = one per core
                          (default 0)
  --graph-opt basic|all   load-time rewrites: basic keeps every op of the
                          model (no fused kernels); all also fuses LayerNorm,
                          GELU and epilogues (default all)
  --channels-last auto|on|off
                          run convolutional sub-graphs in NHWC: auto where
                          the host's convolutions prefer it (default auto)
  --help                  this text
)";
}

const char* InfoUsage() {
  return R"(usage: kiln info MODEL [options]

Prints what MODEL says about itself (producer, domain, version, doc string,
metadata_props), its inputs and outputs, opset, constants, an op histogram
and the ops kiln does not support.

  --graph                 also print the graph kiln runs, as text
  --regions               also print the JIT regions (members, inputs,
                          outputs, why each is a region)
  --graph-opt basic|all   load-time rewrites before printing (default all)
  --channels-last auto|on|off
                          NHWC convolutional sub-graphs (default auto)
  --help                  this text
)";
}

const char* DotUsage() {
  return R"(usage: kiln dot MODEL [options]

Prints the graph kiln runs for MODEL in Graphviz DOT format, on stdout:
  kiln dot model.onnx | dot -Tsvg > model.svg

  --no-constants          leave out constant (initializer) nodes
  --regions               colour each JIT region's nodes
  --graph-opt basic|all   load-time rewrites before printing (default all)
  --channels-last auto|on|off
                          NHWC convolutional sub-graphs (default auto)
  --help                  this text
)";
}

}  // namespace kiln::cli
