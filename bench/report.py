#!/usr/bin/python3
"""Turns a kiln_bench JSON file (Google Benchmark format) into a Markdown report.

Usage: /usr/bin/python3 bench/report.py RESULTS.json [--out REPORT.md]
           [--plot LATENCY.png] [--speedup-plot SPEEDUP.png]
           [--ort ORT.json | --ort-missing "why"]
           [--loadavg-start "..."] [--loadavg-end "..."]

The report puts ratios first, because ratios survive a noisy, shared machine
much better than absolute times: for every model zoo case and thread count,
kiln's JIT speedup over its interpreter, kiln JIT time / ONNX Runtime time
(from bench/ort/run_ort.js, run in the same bench/run invocation) and cold
start kiln / ORT, with geomeans per thread count; then the JIT speedup of the
microbenchmarks and demo models. Absolute times follow, then the roofs:
STREAM triad bandwidth against the fused regions' bandwidth, and the FMA peak
against MatMul throughput. kiln times are the median over repetitions (cv is
the coefficient of variation across them); ORT times are the median over
single runs.

The latency plot (zoo cases, interp / JIT / ORT, one panel per thread count)
needs gnuplot; the speedup plot uses matplotlib if importable, else gnuplot.
Without a plotting tool the plots are skipped and the report says so. Needs
only the standard library and numpy.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
# bench/gemm_bench.cc's kOutOfCacheN: the GEMV whose weight no cache holds.
OUT_OF_CACHE_GEMV_N = 4096


class Result:
    """One benchmark's aggregates: median/mean/stddev/cv per field."""

    def __init__(self, name):
        self.name = name
        self.aggregates = {}  # aggregate name -> raw JSON entry
        self.error = None

    def value(self, field, aggregate="median"):
        entry = self.aggregates.get(aggregate)
        if entry is None or field not in entry:
            return None
        return float(entry[field])

    def seconds(self, aggregate="median"):
        entry = self.aggregates.get(aggregate)
        if entry is None:
            return None
        return float(entry["real_time"]) * UNIT_SECONDS[entry.get("time_unit", "ns")]

    def cv(self):
        return self.value("real_time", "cv")


def display_name(run_name):
    """The benchmark name without Google Benchmark's option suffixes."""
    return re.sub(r"/(real_time|manual_time|process_time|min_time:[^/]*|repeats:\d+|iterations:\d+)(?=/|$)",
                  "", run_name)


def natural_key(name):
    """Sort key that orders embedded numbers by value ("n:64" before "n:256")."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def load_results(path):
    """(context, {display name: Result}) in natural name order: bench/run interleaves repetitions at
    random, so the file's order says nothing."""
    with open(path) as f:
        data = json.load(f)
    results = {}
    entries = sorted(data.get("benchmarks", []), key=lambda e: natural_key(display_name(e.get("run_name", e["name"]))))
    for entry in entries:
        name = display_name(entry.get("run_name", entry["name"]))
        result = results.setdefault(name, Result(name))
        if entry.get("error_occurred"):
            result.error = entry.get("error_message", "error").replace("|", "\\|")
            continue
        if entry.get("run_type") == "aggregate":
            result.aggregates[entry["aggregate_name"]] = entry
        else:
            # Without --benchmark_report_aggregates_only (or with one
            # repetition) there are only iteration entries: treat the last
            # one as the median.
            result.aggregates.setdefault("median", entry)
    return data.get("context", {}), results


def fmt_time(seconds):
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return "%.3g %s" % (seconds / scale, unit)
    return "%.3g ns" % (seconds / 1e-9)


def fmt_pct(x):
    return "n/a" if x is None else "%.1f%%" % (100.0 * x)


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return float(np.exp(np.mean(np.log(values))))


def family(name):
    return name.split("/", 1)[0]


def speedup_pairs(results):
    """(pair name, interp Result, jit Result, speedup or None), in run order."""
    pairs = []
    for name, interp in results.items():
        if "tier:interp" not in name or name.startswith("BM_Zoo"):
            continue
        jit = results.get(name.replace("tier:interp", "tier:jit"))
        if jit is None:
            continue
        t_interp, t_jit = interp.seconds(), jit.seconds()
        ratio = t_interp / t_jit if t_interp and t_jit and not interp.error and not jit.error else None
        if jit.value("regions") == 0:
            # Nothing to compile: both sides ran the interpreter, the ratio
            # is noise and must not reach a geomean.
            ratio = None
        pairs.append((name.replace("/tier:interp", ""), interp, jit, ratio))
    return pairs


def cpu_info():
    """(model name, flags set) from /proc/cpuinfo of the machine writing the report."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown":
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def memory_total():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return "%.1f GiB" % (int(line.split()[1]) / (1024 * 1024))
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def machine_section(context, args, ort):
    model, flags = cpu_info()
    lines = ["## Machine", ""]
    lines.append("- CPU: %s (%s cores, %s MHz as reported); memory %s" % (
        context.get("cpu_model", model), context.get("num_cpus", os.cpu_count()), context.get("mhz_per_cpu", "?"),
        memory_total()))
    simd = ", ".join("%s %s" % (f, "yes" if f in flags else "no") for f in ("fma", "avx2", "avx512f"))
    lines.append("- SIMD flags: %s (kiln's compiled-in kernels build with -march=x86-64-v3, i.e. AVX2 + FMA; the JIT targets this host's ISA)" % simd)
    caches = context.get("caches", [])
    if caches:
        lines.append("- Caches: " + ", ".join(
            "L%d %s %d KiB%s" % (c["level"], c["type"], c["size"] // 1024,
                                 " (shared by %d)" % c["num_sharing"] if c.get("num_sharing", 1) > 1 else "")
            for c in caches))
    load_start = args.loadavg_start or context.get("loadavg_at_start") or " ".join(
        "%.2f" % x for x in context.get("load_avg", []))
    lines.append("- Load average at start: %s; at end: %s. The machine is shared: a load near or above the core"
                 " count means other processes competed for the CPU during the run, which inflates absolute"
                 " times (most of all the 2-thread runs) more than ratios." % (
                     load_start or "unknown", args.loadavg_end or "not recorded"))
    lines.append("- Run: %s, %s" % (context.get("date", "?"), context.get("host_name", "?")))
    if ort:
        # ORT runs first, kiln_bench after it: when the load changed between
        # the two phases, the kiln / ORT ratios carry that too.
        lines.append("- Peer: ONNX Runtime %s via onnxruntime-node (Node %s), run %s. Load average (1/5/15 min) at"
                     " ORT start %s, ORT end %s, kiln_bench start %s: compare them before trusting kiln / ORT"
                     " ratios." % (
                         ort.get("onnxruntime_version", "?"), ort.get("node_version", "?"), ort.get("date", "?"),
                         " ".join("%.2f" % x for x in ort.get("loadavg_at_start", [])) or "?",
                         " ".join("%.2f" % x for x in ort.get("loadavg_at_end", [])) or "?",
                         " ".join(context.get("loadavg_at_start", "?").split()[:3])))
    if context.get("library_build_type") == "debug":
        lines.append("- Note: the system libbenchmark reports itself as a debug build; its per-iteration overhead"
                     " is negligible next to the microsecond-scale runs measured here.")
    return lines


def ratio_section(pairs):
    lines = ["## JIT speedup over the interpreter: microbenchmarks and demo models", ""]
    lines.append("Speedup = interpreter median time / JIT median time for the same model, shape and threads."
                 " Region microbenchmarks run with 1 intra-op thread. JIT compile time is excluded here and"
                 " reported under Compile cost.")
    lines.append("")
    lines.append("A cv (spread across repetitions) above ~10% means the machine was busy during that"
                 " benchmark; prefer the 1-thread rows then, since 2-thread runs suffer most from"
                 " sharing 2 cores with other processes.")
    lines.append("")
    lines.append("| benchmark | speedup | interp | jit | cv interp / jit | max rel diff |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for name, interp, jit, ratio in pairs:
        if ratio is None and not (interp.error or jit.error) and jit.value("regions") == 0:
            lines.append("| %s | n/a: no fusible region, both tiers interpreted | %s | %s | %s / %s | |" % (
                name, fmt_time(interp.seconds()), fmt_time(jit.seconds()), fmt_pct(interp.cv()), fmt_pct(jit.cv())))
            continue
        if ratio is None:
            error = interp.error or jit.error or "missing data"
            lines.append("| %s | error: %s | | | | |" % (name, error))
            continue
        diff = jit.value("max_rel_diff")
        lines.append("| %s | **%.2fx** | %s | %s | %s / %s | %s |" % (
            name, ratio, fmt_time(interp.seconds()), fmt_time(jit.seconds()), fmt_pct(interp.cv()),
            fmt_pct(jit.cv()), "n/a" if diff is None else "%.1e" % diff))
    lines.append("")
    families = []
    for name, _, _, _ in pairs:
        if family(name) not in families:
            families.append(family(name))
    for fam in families:
        g = geomean([r for n, _, _, r in pairs if family(n) == fam])
        lines.append("- Geomean %s: %s" % (fam, "n/a" if g is None else "%.2fx" % g))
    g = geomean([r for _, _, _, r in pairs])
    lines.append("- **Geomean over all pairs: %s**" % ("n/a" if g is None else "%.2fx" % g))
    return lines


def op_by_op_section(results):
    """The JIT against op-by-op interpretation: every tier:opbyop row (the
    interpreter on the model loaded with graph optimization basic) next to
    the default interpreter and the JIT for the same benchmark."""
    lines = ["## The JIT against op-by-op interpretation", ""]
    rows = []
    for name, op_by_op in results.items():
        if "tier:opbyop" not in name:
            continue
        interp = results.get(name.replace("tier:opbyop", "tier:interp"))
        jit = results.get(name.replace("tier:opbyop", "tier:jit"))
        rows.append((name.replace("/tier:opbyop", ""), op_by_op, interp, jit))
    if not rows:
        return lines + ["No op-by-op benchmarks ran (tier:opbyop)."]
    lines.append("Op-by-op = the interpreter on the model loaded with `GraphOptimization::kBasic`"
                 " (`kiln run --graph-opt basic`): every node is one of the model's ops, run as its own kernel."
                 " kiln's default load pipeline already fuses decomposed LayerNorm and GELU into single kernels"
                 " and folds bias, activation and residual into the GEMMs and convolutions, so the default"
                 " interpreter is not op by op; BM_ElementwiseRegion's chain has nothing those passes fuse, so"
                 " its interpreter rows are op by op already.")
    lines.append("")
    lines.append("- **JIT vs op-by-op** = op-by-op time / JIT time (the JIT on the default graph).")
    lines.append("- **load-time fusion alone** = op-by-op time / default interpreter time.")
    lines.append("")
    lines.append("| benchmark | JIT vs op-by-op | load-time fusion alone | op-by-op | interp | jit |")
    lines.append("|---|---:|---:|---:|---:|---:|")

    def seconds(result):
        return None if result is None or result.error else result.seconds()

    for name, op_by_op, interp, jit in rows:
        t_op, t_interp, t_jit = seconds(op_by_op), seconds(interp), seconds(jit)
        if op_by_op.error:
            lines.append("| %s | error: %s | | | | |" % (name, op_by_op.error.replace("|", "\\|")))
            continue
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            name, ratio_cell(t_op, t_jit, False, "**%.2fx**"), ratio_cell(t_op, t_interp, False, "%.2fx"),
            fmt_time(t_op), fmt_time(t_interp), fmt_time(t_jit)))
    return lines


def absolute_section(results):
    lines = ["## Absolute times (median of repetitions)", ""]
    lines.append("| benchmark | time | cv | counters |")
    lines.append("|---|---:|---:|---|")
    skip = {"real_time", "cpu_time", "iterations", "repetitions", "threads", "family_index",
            "per_family_instance_index", "repetition_index", "time_unit", "name", "run_name", "run_type",
            "aggregate_name", "aggregate_unit", "label", "error_occurred", "error_message"}
    for name, result in results.items():
        if result.error:
            lines.append("| %s | error | | %s |" % (name, result.error))
            continue
        entry = result.aggregates.get("median", {})
        counters = []
        for key, value in entry.items():
            if key in skip or not isinstance(value, (int, float)):
                continue
            if key == "bytes_per_second":
                counters.append("%.2f GB/s" % (value / 1e9))
            elif key == "flops":
                counters.append("%.1f GFLOP/s" % (value / 1e9))
            elif key == "compile_ms":
                if value:
                    counters.append("compile %.1f ms" % value)
            elif key == "max_rel_diff":
                continue
            else:
                counters.append("%s=%g" % (key, value))
        if entry.get("label"):
            counters.append(entry["label"])
        lines.append("| %s | %s | %s | %s |" % (name, fmt_time(result.seconds()), fmt_pct(result.cv()),
                                                  ", ".join(counters)))
    return lines


def find(results, pattern):
    return [(n, r) for n, r in results.items() if re.search(pattern, n) and not r.error]


def stream_read_bandwidth(results):
    """Threads -> bytes/s of BM_StreamRead, the roof of a GEMV whose weight is in memory."""
    read = {}
    for name, result in find(results, r"^BM_StreamRead/"):
        m = re.search(r"threads:(\d+)", name)
        read[int(m.group(1)) if m else 1] = result.value("bytes_per_second")
    return read


def roofs_section(results):
    lines = ["## Roofs", ""]
    triad = {}
    for name, result in find(results, r"^BM_StreamTriad/"):
        m = re.search(r"threads:(\d+)", name)
        triad[int(m.group(1)) if m else 1] = result.value("bytes_per_second")
    for threads in sorted(triad):
        lines.append("- STREAM triad, %d thread%s: **%.2f GB/s**" % (threads, "" if threads == 1 else "s",
                                                                   triad[threads] / 1e9))
    read = stream_read_bandwidth(results)
    for threads in sorted(read):
        lines.append("- Read-only stream (sum of 64 MiB), %d thread%s: **%.2f GB/s**" % (
            threads, "" if threads == 1 else "s", read[threads] / 1e9))
    lines.append("")
    lines.append("Fused elementwise region bandwidth (input + output bytes per run, 1 thread) as a share of"
                 " the 1-thread triad. The triad's 64 MiB exceed the last-level cache, the regions' tensors"
                 " (at most 8 MiB in + out) do not, so a region can pass 100%: read this as how close the"
                 " region comes to streaming speed, not as a DRAM measurement.")
    lines.append("")
    lines.append("| benchmark | GB/s | % of triad (1 thread) |")
    lines.append("|---|---:|---:|")
    base = triad.get(1)
    for name, result in find(results, r"^BM_(ElementwiseRegion|LayerNormGelu)/"):
        bps = result.value("bytes_per_second")
        if bps is None:
            continue
        lines.append("| %s | %.2f | %s |" % (name, bps / 1e9, fmt_pct(bps / base) if base else "n/a"))
    lines.append("")
    fma = {}
    for name, result in find(results, r"^BM_FmaPeak/"):
        m = re.search(r"threads:(\d+)", name)
        fma[int(m.group(1)) if m else 1] = result.value("flops")
    for threads in sorted(fma):
        lines.append("- FMA peak (AVX2, 12 independent chains), %d thread%s: **%.1f GFLOP/s**" % (
            threads, "" if threads == 1 else "s", fma[threads] / 1e9))
    fma512 = [result.value("flops") for _, result in find(results, r"^BM_FmaPeakAvx512")]
    if fma512 and fma512[0]:
        lines.append("- FMA peak (AVX-512, 1 thread): **%.1f GFLOP/s**" % (fma512[0] / 1e9))
    for name, result in find(results, r"^BM_MatMul/"):
        flops = result.value("flops")
        m = re.search(r"threads:(\d+)", name)
        peak = fma.get(int(m.group(1)) if m else 1)
        lines.append("- %s (interp, constant weight: kiln's packed GEMM): **%.1f GFLOP/s**%s" % (
            name, flops / 1e9, " = %s of the FMA peak at the same thread count" % fmt_pct(flops / peak)
            if peak else ""))
    return lines


def gemm_section(results):
    """JIT GEMM against kiln's packed GEMM and oneDNN, 1 thread, with the roofline."""
    rows = {}
    for name, result in find(results, r"^BM_Gemm/"):
        m = re.search(r"impl:(\w+)/m:(\d+)/n:(\d+)", name)
        if not m:
            continue
        rows.setdefault((int(m.group(2)), int(m.group(3))), {})[m.group(1)] = result
    if not rows:
        return []
    peaks = [r.value("flops") for _, r in find(results, r"^BM_FmaPeakAvx512")]
    peak = peaks[0] if peaks and peaks[0] else None
    read = stream_read_bandwidth(results).get(1)
    lines = ["## GEMM: JIT code against kiln's packed GEMM and oneDNN (1 thread, N = K, constant weight)", ""]
    lines.append("GFLOP/s (M = 1: GB/s of weight read). The JIT column says which tile the host's ISA got. JIT / roof:"
                 " the FMA peak for M > 1; for M = 1 with a weight no cache holds (N = K = %d), the 1-thread"
                 " read-only stream bandwidth." % OUT_OF_CACHE_GEMV_N)
    lines.append("")
    lines.append("| M | N = K | JIT | packed (AVX2) | oneDNN | JIT / packed | JIT / oneDNN | JIT / roof |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (m, n) in sorted(rows):
        r = rows[(m, n)]
        key = "weight_bytes_per_second" if m == 1 else "flops"
        vals = {impl: (r[impl].value(key) if impl in r else None) for impl in ("jit", "packed", "onednn")}
        def cell(v):
            return "%.1f" % (v / 1e9) if v else "n/a"
        def ratio(a, b):
            return "%.2f" % (a / b) if a and b else "n/a"
        jit_flops = r["jit"].value("flops") if "jit" in r else None
        if m > 1:
            roof = fmt_pct(jit_flops / peak) if jit_flops and peak else "n/a"
        else:
            roof = fmt_pct(vals["jit"] / read) if vals["jit"] and read and n == OUT_OF_CACHE_GEMV_N else "n/a"
        lines.append("| %d | %d | %s | %s | %s | %s | %s | %s |" % (
            m, n, cell(vals["jit"]), cell(vals["packed"]), cell(vals["onednn"]), ratio(vals["jit"], vals["packed"]),
            ratio(vals["jit"], vals["onednn"]), roof))
    lines.append("")
    return lines


def compile_section(results):
    lines = ["## Compile cost (JIT tier, reported apart from run time)", ""]
    lines.append("| benchmark | regions | compiled | compile ms (sum) |")
    lines.append("|---|---:|---:|---:|")
    for name, result in find(results, r"tier:jit"):
        regions = result.value("regions")
        compiled = result.value("regions_compiled")
        ms = result.value("compile_ms")
        if regions is None:
            continue
        lines.append("| %s | %d | %d | %.1f |" % (name, regions, compiled or 0, ms or 0))
    return lines


# ---------------------------------------------------------------------------
# Model zoo: kiln (BM_Zoo*) next to ONNX Runtime (bench/ort/run_ort.js)

ZOO_RE = re.compile(r"^BM_Zoo/model:(?P<case>.+)/tier:(?P<tier>[a-z]+)/threads:(?P<threads>\d+)$")
ZOO_COLD_RE = re.compile(r"^BM_ZooColdStart/model:(?P<case>.+)/threads:(?P<threads>\d+)$")
ZOO_TIERUP_RE = re.compile(r"^BM_ZooTierUp/model:(?P<case>.+)/threads:(?P<threads>\d+)$")
ZOO_TIERUP_WARM_RE = re.compile(r"^BM_ZooTierUpWarmCache/model:(?P<case>.+)/threads:(?P<threads>\d+)$")


class ZooRow:
    """Everything measured for one zoo case at one thread count."""

    def __init__(self, case, threads):
        self.case = case
        self.threads = threads
        self.kiln = {}  # "interp" / "jit" / "cold" / "tierup" -> Result
        self.ort = None  # run_ort.js's per-threads dict, or None when ORT did not run the case
        self.ort_error = None

    def kiln_seconds(self, key):
        result = self.kiln.get(key)
        if result is None or result.error:
            return None
        if key == "cold" and result.value("cold_ms") is not None:
            # load + create + first run, without the session's teardown
            return result.value("cold_ms") * 1e-3
        return result.seconds()

    def ort_seconds(self, phase):
        if self.ort is None or self.ort_error or phase not in self.ort:
            return None
        return self.ort[phase]["median_ms"] * 1e-3


def load_ort(path):
    with open(path) as f:
        return json.load(f)


def zoo_rows(results, ort):
    """ZooRows in manifest order (ORT's) then kiln's run order for any case ORT lacks."""
    rows = {}

    def row(case, threads):
        return rows.setdefault((case, threads), ZooRow(case, threads))

    if ort:
        for case in ort.get("cases", []):
            for threads, data in sorted(case.get("threads", {}).items(), key=lambda kv: int(kv[0])):
                r = row(case["name"], int(threads))
                r.ort = data
                r.ort_error = data.get("error")
            if case.get("error"):
                # The case failed before any thread count ran (e.g. an
                # unreadable input): mark it for the thread counts ORT runs.
                for threads in ort.get("settings", {}).get("threads", [1, 2]):
                    r = row(case["name"], int(threads))
                    r.ort_error = case["error"]
    for name, result in results.items():
        for regex, key in ((ZOO_RE, None), (ZOO_COLD_RE, "cold"), (ZOO_TIERUP_RE, "tierup"),
                           (ZOO_TIERUP_WARM_RE, "tierup_warm")):
            m = regex.match(name)
            if m:
                row(m.group("case"), int(m.group("threads"))).kiln[key or m.group("tier")] = result
                break
    return list(rows.values())


def ratio_cell(numerator, denominator, failed, fmt="%.2f"):
    """numerator / denominator with `fmt`, or why there is no ratio."""
    if failed:
        return "error"
    if not numerator or not denominator:
        return "n/a"
    return fmt % (numerator / denominator)


def row_errors(row):
    """(where, message) for everything that failed in a row."""
    errors = []
    for key in ("interp", "jit", "bitwise", "cold", "tierup", "tierup_warm"):
        result = row.kiln.get(key)
        if result is not None and result.error:
            errors.append(("kiln %s" % key, result.error))
    if row.ort_error:
        errors.append(("ORT", row.ort_error.replace("|", "\\|")))
    return errors


def zoo_ratio_section(rows, ort_note):
    lines = ["## kiln vs ONNX Runtime on the model zoo (ratios first)", ""]
    if not rows:
        lines += ["No model zoo results (no BM_Zoo benchmarks ran and no ORT results).", ""]
        return lines
    lines.append(ort_note)
    lines.append("")
    lines.append("- **JIT speedup** = kiln interpreter time / kiln JIT time (same case, same threads); above 1 the"
                 " JIT helps.")
    lines.append("- **kiln JIT / ORT** = kiln JIT median time / ORT median time; **at or below 1.00 kiln is as fast"
                 " as ORT or faster**. kiln interp / ORT is the same for the interpreter tier.")
    lines.append("- **cold kiln / ORT** = (load + session creation + first run) for kiln / the same for ORT (a fresh"
                 " session from the file); below 1 kiln starts faster.")
    lines.append("- Steady-state ORT times include the Node binding's per-call cost (tens of microseconds at"
                 " most): only cases under ~0.1 ms are visibly affected, in kiln's favour.")
    lines.append("- **JIT vs ORT outputs** = kiln_bench's largest relative difference between kiln JIT's outputs"
                 " and ORT's (it skips a benchmark whose outputs disagree, see Errors).")
    lines.append("")
    lines.append("| case | threads | JIT speedup | kiln JIT / ORT | kiln interp / ORT | cold kiln / ORT |"
                 " JIT vs ORT outputs | note |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
    by_threads = {}
    for row in rows:
        interp, jit = row.kiln_seconds("interp"), row.kiln_seconds("jit")
        ort_t = row.ort_seconds("steady")
        errors = row_errors(row)
        kiln_err = [w for w, _ in errors if w in ("kiln interp", "kiln jit")]
        ort_err = [w for w, _ in errors if w == "ORT"]
        jit_result = row.kiln.get("jit")
        no_region = jit_result is not None and jit_result.value("regions") == 0
        jit_err, interp_err = "kiln jit" in kiln_err, "kiln interp" in kiln_err
        speedup = ratio_cell(interp, jit, kiln_err, "%.2fx")
        if no_region and speedup not in ("error", "n/a"):
            speedup = "n/a (no region)"
        vs_ort = ratio_cell(jit, ort_t, jit_err or ort_err, "**%.2f**")
        interp_vs_ort = ratio_cell(interp, ort_t, interp_err or ort_err)
        cold = ratio_cell(row.kiln_seconds("cold"), row.ort_seconds("cold_start"),
                          any(w == "kiln cold" for w, _ in errors) or ort_err)
        if "cold" not in row.kiln and row.kiln:
            cold = "not run"
        checked = jit_result.value("ort_checked") if jit_result is not None and not jit_result.error else None
        rel = jit_result.value("ort_max_rel_diff") if checked else None
        check = "%.1e" % rel if rel is not None else "not compared" if checked == 0 else ""
        notes = []
        if errors:
            notes.append("error: " + "; ".join(w for w, _ in errors) + " (see Errors)")
        if row.ort is None and not row.ort_error:
            notes.append("not run by ORT")
        if not row.kiln:
            notes.append("not run by kiln")
        for key in ("jit", "interp"):
            label = row.kiln.get(key).aggregates.get("median", {}).get("label") if row.kiln.get(key) else None
            if label and label not in notes:
                notes.append(label.replace("|", "\\|"))
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
            row.case, row.threads, speedup, vs_ort, interp_vs_ort, cold, check, "; ".join(notes)))
        g = by_threads.setdefault(row.threads, {"speedup": [], "jit_ort": [], "interp_ort": [], "cold": []})
        if interp and jit and not kiln_err and not no_region:
            g["speedup"].append(interp / jit)
        if ort_t and not ort_err:
            if jit and not jit_err:
                g["jit_ort"].append(jit / ort_t)
            if interp and not interp_err:
                g["interp_ort"].append(interp / ort_t)
        cold_k, cold_o = row.kiln_seconds("cold"), row.ort_seconds("cold_start")
        if cold_k and cold_o and not ort_err:
            g["cold"].append(cold_k / cold_o)
    lines.append("")

    def fmt_g(values, unit=""):
        g = geomean(values)
        return "n/a" if g is None else "%.2f%s (%d cases)" % (g, unit, len(values))

    for threads in sorted(by_threads):
        g = by_threads[threads]
        lines.append("- Geomean at %d thread%s: JIT speedup %s; **kiln JIT / ORT %s**; kiln interp / ORT %s;"
                     " cold start kiln / ORT %s" % (threads, "" if threads == 1 else "s", fmt_g(g["speedup"], "x"),
                                                     fmt_g(g["jit_ort"]), fmt_g(g["interp_ort"]), fmt_g(g["cold"])))
    return lines


# Issue 16's goals for the time to first result.
COLD_GOAL = 0.5         # kiln load + create + first run <= this x ORT's create + first run
FIRST_RUN_GOAL = 3.0    # kiln's first run <= this x its steady run


def bitwise_section(rows):
    """What SessionOptions::jit_bitwise_equivalent costs: its rows (tier:bitwise) against the JIT's."""
    lines = ["## Bitwise tier equivalence: what it costs", ""]
    measured = [row for row in rows if "bitwise" in row.kiln]
    if not measured:
        return lines + ["No bitwise-mode benchmarks ran (tier:bitwise)."]
    lines.append("Bitwise = the JIT with `SessionOptions::jit_bitwise_equivalent`, whose outputs kiln_bench checked"
                 " equal to the interpreter's bit for bit (memcmp) before timing. It compiles elementwise regions"
                 " and GEMMs the interpreter runs on its packed GEMM, in the interpreter's operation order, and"
                 " leaves row reductions, convolutions and attention interpreted. **cost** = bitwise time / JIT"
                 " time (above 1: slower than the default JIT).")
    lines.append("")
    lines.append("| case | threads | interp ms | JIT ms | bitwise ms | regions compiled (bitwise / JIT) |"
                 " cost | speedup over interp |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    costs = {}
    for row in measured:
        interp, jit, bitwise = row.kiln_seconds("interp"), row.kiln_seconds("jit"), row.kiln_seconds("bitwise")
        failed = row.kiln["bitwise"].error is not None

        def regions(key):
            result = row.kiln.get(key)
            value = result.value("regions_compiled") if result is not None and not result.error else None
            return "n/a" if value is None else "%d" % value

        cost = ratio_cell(bitwise, jit, failed)
        if bitwise and jit and not failed:
            costs.setdefault(row.threads, []).append(bitwise / jit)
        lines.append("| %s | %d | %s | %s | %s | %s / %s | %s | %s |" % (
            row.case, row.threads, fmt_ms(interp), fmt_ms(jit), "error" if failed else fmt_ms(bitwise),
            regions("bitwise"), regions("jit"), cost, ratio_cell(interp, bitwise, failed, "%.2fx")))
    lines.append("")
    for threads, values in sorted(costs.items()):
        lines.append("- Geomean cost at %d thread%s: %.2f (%d cases)." % (
            threads, "" if threads == 1 else "s", geomean(values), len(values)))
    return lines


def first_result_section(rows):
    """Time to first result at 1 thread: kiln's phases, ORT's cold start, and the two goals."""
    lines = ["## Time to first result (1 thread)", ""]
    one = [row for row in rows if row.threads == 1 and (row.kiln or row.ort)]
    if not one:
        return lines + ["No 1-thread model zoo results."]
    if not any("cold" in row.kiln for row in one):
        return lines + ["kiln's cold starts did not run: BM_ZooColdStart was not selected (a"
                        " --benchmark_filter such as `BM_Zoo/` leaves it out; `BM_Zoo` keeps it)."]
    lines.append("kiln cold = Model::Load + Session::Create (default policy) + the first Run, in a process whose"
                 " oneDNN primitive cache is off (as in a new process); the model file is in the page cache."
                 " ORT cold = a fresh InferenceSession from the file + its first run. Steady = the median"
                 " interpreted run, the tier that serves a first run. Goals: **kiln / ORT <= %.1f** and"
                 " **first / steady <= %.0f**." % (COLD_GOAL, FIRST_RUN_GOAL))
    lines.append("")
    lines.append("| case | load ms | create ms | first run ms | kiln cold ms | ORT cold ms | kiln / ORT |"
                 " steady ms | first / steady |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios, first_ratios = [], []
    for row in one:
        cold = row.kiln.get("cold")
        if cold is None:
            lines.append("| %s | not run | | | | | | | |" % row.case)
            continue
        if cold.error:
            lines.append("| %s | error | | | | | | | |" % row.case)
            continue

        def ms(field):
            value = cold.value(field)
            return "n/a" if value is None else "%.3g" % value

        kiln_s, ort_s = row.kiln_seconds("cold"), row.ort_seconds("cold_start")
        ratio = first = "n/a"
        if kiln_s and ort_s:
            ratios.append(kiln_s / ort_s)
            ratio = ("**%.2f**" if ratios[-1] <= COLD_GOAL else "%.2f") % ratios[-1]
        first_over = cold.value("first_over_steady")
        if first_over is not None:
            first_ratios.append(first_over)
            first = ("**%.2f**" if first_over <= FIRST_RUN_GOAL else "%.2f") % first_over
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            row.case, ms("load_ms"), ms("create_ms"), ms("first_run_ms"), fmt_ms(kiln_s), fmt_ms(ort_s), ratio,
            ms("steady_interp_ms"), first))
    lines.append("")
    g, f = geomean(ratios), geomean(first_ratios)
    lines.append("- kiln / ORT: geomean %s, %d of %d cases within the goal; first / steady: geomean %s, %d of %d"
                 " within the goal (bold = within)." % (
                     "n/a" if g is None else "%.2f" % g, sum(r <= COLD_GOAL for r in ratios), len(ratios),
                     "n/a" if f is None else "%.2f" % f, sum(r <= FIRST_RUN_GOAL for r in first_ratios),
                     len(first_ratios)))
    return lines


def code_cache_section(rows):
    """Time to peak from a cold and from a warm persistent code cache, at 1 thread."""
    lines = ["## Code cache: time to peak, cold and warm (1 thread)", ""]
    one = [row for row in rows if row.threads == 1 and "tierup_warm" in row.kiln]
    if not one:
        return lines + ["Not run: BM_ZooTierUpWarmCache was not selected."]
    lines.append("A new session (default policy) runs back to back until every region has compiled, from"
                 " Session::Create (BM_ZooTierUp, no cache) and on a code cache folder an earlier session filled"
                 " (BM_ZooTierUpWarmCache: its regions are linked, queued from the hot set when the session is"
                 " created). ORT cold = a fresh InferenceSession + its first run, for scale.")
    lines.append("")
    lines.append("| case | cold: ms to peak (runs) | cold: first run ms | warm: ms to peak (runs) | warm: first run ms |"
                 " warm / cold ms | links | ORT cold ms |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for row in one:
        def cells(key):
            result = row.kiln.get(key)
            if result is None:
                return "not run", ""
            if result.error:
                return "error", ""
            runs, first = result.value("runs_to_tier_up"), result.value("first_run_ms")
            return (fmt_ms(result.seconds()) + ("" if runs is None else " (%.3g)" % runs),
                    "n/a" if first is None else "%.3g" % first)

        cold_peak, cold_first = cells("tierup")
        warm_peak, warm_first = cells("tierup_warm")
        cold_s, warm_s = row.kiln_seconds("tierup"), row.kiln_seconds("tierup_warm")
        ratio = "n/a"
        if cold_s and warm_s:
            ratios.append(warm_s / cold_s)
            ratio = "%.2f" % ratios[-1]
        warm = row.kiln.get("tierup_warm")
        hits = warm.value("cache_hits") if warm is not None and not warm.error else None
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            row.case, cold_peak, cold_first, warm_peak, warm_first, ratio, "n/a" if hits is None else "%d" % hits,
            fmt_ms(row.ort_seconds("cold_start"))))
    g = geomean(ratios)
    lines.append("")
    lines.append("- Warm / cold time to peak: geomean %s over %d cases." % ("n/a" if g is None else "%.2f" % g,
                                                                          len(ratios)))
    return lines


def fmt_ms(seconds):
    return "n/a" if seconds is None else "%.3g" % (seconds * 1e3)


def memory_counters(result):
    """'name=value' for counters that look like memory figures (kiln_bench decides their names)."""
    if result is None or result.error:
        return []
    entry = result.aggregates.get("median", {})
    out = []
    for key, value in entry.items():
        if isinstance(value, (int, float)) and re.search(r"peak|rss|mem|bytes_alloc|arena", key, re.I) \
                and key != "bytes_per_second":
            out.append("%s %.3g" % (key, value))
    return out


def kiln_memory(row):
    """kiln's memory figures: the planner's peak arena (steady JIT) and what a cold start adds to the RSS."""
    out = []
    jit = row.kiln.get("jit")
    if jit is not None and not jit.error and jit.value("peak_planned_bytes") is not None:
        out.append("planned %.3g MiB" % (jit.value("peak_planned_bytes") / (1 << 20)))
    cold = row.kiln.get("cold")
    if cold is not None and not cold.error and cold.value("peak_rss_delta_mb") is not None:
        out.append("cold start RSS +%.3g MiB" % cold.value("peak_rss_delta_mb"))
    if not out:
        out = memory_counters(jit) or memory_counters(row.kiln.get("interp"))
    return out


def tierup_cell(row):
    result = row.kiln.get("tierup")
    if result is None:
        return ""
    if result.error:
        return "error"
    runs = result.value("runs_to_tier_up")
    return fmt_ms(result.seconds()) + (" (%.3g runs)" % runs if runs is not None else "")


def zoo_absolute_section(rows, ort):
    lines = ["## Model zoo: absolute times (median, ms)", ""]
    if not rows:
        return lines + ["No model zoo results."]
    lines.append("kiln: median over repetitions of Google Benchmark's mean; ORT: median over single runs (p90 and"
                 " run count beside it). Cold = load + create + first run. Tier-up = a new session (default"
                 " policy) run until every region has compiled, with the number of runs that took."
                 " kiln memory: the memory planner's peak (steady state) and the RSS a cold start adds."
                 " ORT peak RSS is the Node process's peak during the steady-state runs (its baseline before loading any"
                 " model was %s MiB)." % ("%.0f" % ort["baseline_rss_mb"] if ort and "baseline_rss_mb" in ort
                                          else "n/a"))
    lines.append("")
    lines.append("| case | threads | kiln interp (cv) | kiln JIT (cv) | ORT (p90, runs) | kiln cold | ORT cold | kiln tier-up |"
                 " kiln memory | ORT peak RSS MiB | compile ms | regions compiled |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    for row in rows:
        def kiln_cell(key, with_cv=False):
            result = row.kiln.get(key)
            if result is None:
                return ""
            if result.error:
                return "error"
            cv = result.cv()
            return fmt_ms(row.kiln_seconds(key)) + (" (%s)" % fmt_pct(cv) if with_cv and cv is not None else "")

        if row.ort_error:
            ort_cell = ort_cold = "error"
        elif row.ort is None:
            ort_cell = ort_cold = ""
        else:
            steady = row.ort.get("steady", {})
            ort_cell = "%.3g (%.3g, %d)" % (steady["median_ms"], steady["p90_ms"], steady["runs"]) if steady else "n/a"
            ort_cold = "%.3g" % row.ort["cold_start"]["median_ms"] if "cold_start" in row.ort else "n/a"
        jit = row.kiln.get("jit")
        ok_jit = jit is not None and not jit.error
        regions = (jit.value("regions_total") or jit.value("regions")) if ok_jit else None
        compiled = jit.value("regions_compiled") if ok_jit else None
        failed = jit.value("regions_failed") if ok_jit else None
        compile_ms = jit.value("compile_ms") if jit is not None and not jit.error else None
        memory = kiln_memory(row)
        rss = row.ort.get("peak_rss_mb") if row.ort and not row.ort_error else None
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            row.case, row.threads, kiln_cell("interp", True), kiln_cell("jit", True), ort_cell, kiln_cell("cold"), ort_cold,
            tierup_cell(row), ", ".join(memory) or "n/a", "n/a" if rss is None else "%.0f" % rss,
            "n/a" if compile_ms is None else "%.1f" % compile_ms,
            "n/a" if regions is None else "%d / %d%s" % (compiled or 0, regions,
                                                          " (%d failed)" % failed if failed else "")))
    return lines


TIERUP_LOAD_RE = re.compile(r"^BM_(?P<bench>TierUpLatency|ZooTierUpWarmCache|ZooTierUp)/model:(?P<case>.+)"
                            r"/requests:(?P<requests>\d+)"
                            r"/compile_share:(?P<share>[^/]+)$")


def tierup_under_load_section(results):
    """Latency-aware compiles: tier-up with every core serving, per compile share (off = no scheduler)."""
    lines = ["## Tier-up under load (latency-aware compiles)", ""]
    rows = {}
    for name, result in results.items():
        m = TIERUP_LOAD_RE.match(name)
        if m:
            key = (m.group("case"), int(m.group("requests")), m.group("share"))
            rows.setdefault(key, {})[m.group("bench")] = result
    if not rows:
        return lines + ["No tier-up-under-load results (BM_TierUpLatency/.../compile_share:*)."]
    lines.append("Request threads at 1 intra-op thread each keep every core busy while the regions compile."
                 " compile_share is SessionOptions::jit_compile_cpu_share (off: no scheduler, the nice-10 compile"
                 " thread). Warm: BM_TierUpLatency, the requests from the run that made the regions hot until all"
                 " compiled, against the interpreter's p99 under the same threads (goal <= 1.1); on a loaded machine"
                 " the p99s are mostly other processes' noise, so the medians' ratio is shown too. Cold:"
                 " BM_ZooTierUp, runs per request thread from Session::Create until all compiled (goal <= 30)."
                 " Warm cache: BM_ZooTierUpWarmCache, the cold start on a code cache folder an earlier session"
                 " filled (a replica joining a fleet that shares one folder), to peak: runs per request thread, and"
                 " the p99 of those requests, first runs included, against the interpreter's."
                 " Medians over repetitions; the load average is the machine's at the start of each.")
    lines.append("")
    lines.append("| case | requests | compile share | interp p99 ms | tier-up p99 ms | p99 / interp p99 |"
                 " p50 / interp p50 | runs to tier up (warm) | runs to tier up (cold) | tier-up ms (cold) |"
                 " compile ms (cold) | runs to peak (warm cache) | p99 / interp p99 (warm cache) | load avg |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def order(key):
        case, requests, share = key
        return (case, requests, -1.0 if share == "off" else float(share))

    for key in sorted(rows, key=order):
        case, requests, share = key
        warm, cold = rows[key].get("TierUpLatency"), rows[key].get("ZooTierUp")
        cached = rows[key].get("ZooTierUpWarmCache")

        def cell(result, field, fmt):
            if result is None:
                return ""
            if result.error:
                return "error"
            v = result.value(field)
            return "n/a" if v is None else fmt % v

        loads = [r.value("load_average") for r in (warm, cold, cached) if r is not None and not r.error]
        loads = [v for v in loads if v is not None]
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            case, requests, share, cell(warm, "interp_p99_ms", "%.3g"), cell(warm, "tierup_p99_ms", "%.3g"),
            cell(warm, "p99_over_interp_p99", "%.2f"), cell(warm, "p50_over_interp_p50", "%.2f"),
            cell(warm, "runs_to_tier_up", "%.3g"),
            cell(cold, "runs_to_tier_up", "%.3g"), cell(cold, "tierup_ms", "%.0f"),
            cell(cold, "compile_ms", "%.0f"), cell(cached, "runs_to_peak", "%.3g"),
            cell(cached, "peak_p99_over_interp_p99", "%.2f"), "%.2f" % max(loads) if loads else "n/a"))
    return lines


def errors_section(rows, results):
    lines = ["## Errors", ""]
    lines.append("Output mismatches (kiln_bench compares each tier with ORT's outputs and skips the benchmark with"
                 " the error) and failures on either side, listed instead of times.")
    lines.append("")
    count = 0
    for row in rows:
        for where, message in row_errors(row):
            lines.append("- %s, %d thread%s, %s: %s" % (row.case, row.threads, "" if row.threads == 1 else "s",
                                                       where, message))
            count += 1
    zoo_names = {r.name for row in rows for r in row.kiln.values()}
    for name, result in results.items():
        if result.error and name not in zoo_names:
            lines.append("- %s: %s" % (name, result.error))
            count += 1
    if count == 0:
        lines.append("None.")
    return lines


def write_latency_plot(rows, path):
    """Grouped bars (kiln interp, kiln JIT, ORT) per zoo case, one panel per thread count. Returns a sentence."""
    thread_counts = sorted({row.threads for row in rows})
    panels = []
    for threads in thread_counts:
        points = []
        for row in rows:
            if row.threads != threads:
                continue
            values = [row.kiln_seconds("interp"), row.kiln_seconds("jit"), row.ort_seconds("steady")]
            if any(v for v in values):
                points.append((row.case, [v * 1e3 if v else None for v in values]))
        if points:
            panels.append((threads, points))
    if not panels:
        return "Latency plot skipped: no zoo case has a time."
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "Latency plot skipped: gnuplot is not installed (bench/run installs gnuplot-nox when run as root)."
    all_values = [v for _, points in panels for _, vs in points for v in vs if v]
    lo, hi = min(all_values), max(all_values)
    log = hi / lo > 20
    most = max(len(points) for _, points in panels)
    width = max(900, 70 * most + 200)
    # noenhanced: case names have '_' and ':' that gnuplot's enhanced text
    # would turn into subscripts.
    script = ["set terminal pngcairo noenhanced size %d,%d font 'sans,10'" % (width, 480 * len(panels)),
              "set output '%s'" % path,
              "set datafile missing 'NaN'",
              "set style data histograms",
              "set style histogram clustered gap 1",
              "set style fill solid 0.85 border -1",
              "set boxwidth 0.9",
              "set xtics rotate by -30 font ',9' nomirror",
              "set grid ytics",
              "set key outside top center horizontal reverse Left width 2",
              "set bmargin 9",
              "set rmargin 14"]
    if log:
        script += ["set logscale y", "set yrange [%g:%g]" % (lo / 1.5, hi * 3),
                   "set ylabel 'median latency, ms (log scale)'"]
    else:
        script += ["set yrange [0:%g]" % (hi * 1.15), "set ylabel 'median latency, ms'"]
    script.append("set multiplot layout %d,1" % len(panels))
    files = []
    try:
        for threads, points in panels:
            data = tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False)
            files.append(data.name)
            with data:
                for label, values in points:
                    data.write('"%s" %s\n' % (label.replace('"', "'"),
                                              " ".join("NaN" if v is None else "%g" % v for v in values)))
            script.append("set title 'Model zoo latency, %d thread%s (lower is better)'" % (
                threads, "" if threads == 1 else "s"))
            script.append("plot '%s' using 2:xtic(1) title 'kiln interp' lc rgb '#9ecae1', "
                          "'' using 3 title 'kiln JIT' lc rgb '#08519c', "
                          "'' using 4 title 'ONNX Runtime' lc rgb '#e6550d'" % data.name)
        script.append("unset multiplot")
        subprocess.run([gnuplot], input="\n".join(script) + "\n", text=True, check=True,
                       stderr=subprocess.PIPE)
        return "![latency](%s) (gnuplot%s)" % (os.path.basename(path), ", log scale" if log else "")
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        return "Latency plot skipped: gnuplot failed (%s %s)." % (e, detail.strip()[:300])
    finally:
        for name in files:
            os.unlink(name)


def ort_note(ort, ort_missing):
    if ort:
        settings = ort.get("settings", {})
        return ("ONNX Runtime %s (onnxruntime-node on Node %s, CPU execution provider): intra-op threads = the"
                " row's threads, %s inter-op thread, %s execution, graph optimization level '%s', intra-op"
                " spin-waiting %s; steady state ="
                " median of single runs after warm-up, at least %s s and %s runs; cold start = median of %s"
                " fresh sessions. Run in the same bench/run invocation as kiln, just before kiln_bench." % (
                    ort.get("onnxruntime_version", "?"), ort.get("node_version", "?"),
                    settings.get("inter_op_threads", 1), settings.get("execution_mode", "sequential"),
                    settings.get("graph_optimization_level", "all"),
                    {True: "on (ORT's default: on a busy 2-core machine it inflates ORT's 2-thread times)",
                     False: "off (KILN_ORT_SPINNING=0)"}.get(settings.get("allow_spinning"), "as ORT's default"),
                    settings.get("min_time_s", "?"),
                    settings.get("min_runs", "?"), settings.get("cold_reps", "?")))
    return "**ONNX Runtime was not measured in this run: %s** The ORT columns are empty." % (
        ort_missing or "no --ort file given.")


def write_plot(pairs, path):
    """Speedup bar chart. Returns a sentence for the report."""
    points = [(n, r) for n, _, _, r in pairs if r is not None]
    if not points:
        return "Plot skipped: no interp/jit pair has results."
    labels = [n for n, _ in points]
    values = [r for _, r in points]
    try:
        import matplotlib  # noqa: F401
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(9, 0.35 * len(points) + 1.5))
        ax.barh(range(len(points)), values)
        ax.set_yticks(range(len(points)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xlabel("JIT speedup over interpreter (x, log scale)")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return "Plot: ![speedup](%s) (matplotlib)." % os.path.basename(path)
    except ImportError:
        pass
    gnuplot = shutil.which("gnuplot")
    if gnuplot:
        with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as data:
            for label, value in points:
                data.write('"%s" %g\n' % (label.replace('"', "'"), value))
        script = "\n".join([
            "set terminal png size 1000,%d" % (24 * len(points) + 200),
            "set output '%s'" % path,
            "set style fill solid",
            "set boxwidth 0.7",
            "set xtics rotate by -60 font ',8'",
            "set logscale y",
            "set ylabel 'JIT speedup over interpreter (x)'",
            "plot '%s' using 0:2:xtic(1) with boxes notitle, 1 notitle" % data.name,
        ])
        try:
            subprocess.run([gnuplot], input=script, text=True, check=True)
            return "Plot: ![speedup](%s) (gnuplot)." % os.path.basename(path)
        except (OSError, subprocess.CalledProcessError) as e:
            return "Plot skipped: gnuplot failed (%s)." % e
        finally:
            os.unlink(data.name)
    return "Plot skipped: neither matplotlib (for /usr/bin/python3) nor gnuplot is installed."


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results")
    parser.add_argument("--out", help="Markdown file (default: stdout)")
    parser.add_argument("--plot", help="PNG file for the zoo latency plot (kiln interp, JIT, ORT)")
    parser.add_argument("--speedup-plot", help="PNG file for the JIT speedup plot of the other pairs")
    parser.add_argument("--ort", help="ort.json written by bench/ort/run_ort.js")
    parser.add_argument("--ort-missing", default="", help="why there is no ORT data, for the report")
    parser.add_argument("--loadavg-start", default="", help="/proc/loadavg before the run")
    parser.add_argument("--loadavg-end", default="", help="/proc/loadavg after the run")
    args = parser.parse_args()

    context, results = load_results(args.results)
    ort = load_ort(args.ort) if args.ort else None
    rows = zoo_rows(results, ort)
    pairs = speedup_pairs(results)
    lines = ["# kiln benchmark report: %s" % os.path.splitext(os.path.basename(args.results))[0], ""]
    lines += machine_section(context, args, ort) + [""]
    lines += zoo_ratio_section(rows, ort_note(ort, args.ort_missing)) + [""]
    lines += first_result_section(rows) + [""]
    lines += code_cache_section(rows) + [""]
    lines += bitwise_section(rows) + [""]
    lines += ["### Latency plot", "",
              write_latency_plot(rows, args.plot) if args.plot else "Plot not requested (--plot).", ""]
    lines += ratio_section(pairs) + [""]
    lines += op_by_op_section(results) + [""]
    lines += errors_section(rows, results) + [""]
    lines += zoo_absolute_section(rows, ort) + [""]
    lines += absolute_section(results) + [""]
    lines += roofs_section(results) + [""]
    lines += gemm_section(results)
    lines += compile_section(results) + [""]
    lines += tierup_under_load_section(results) + [""]
    lines += ["## Speedup plot", "",
              write_plot(pairs, args.speedup_plot) if args.speedup_plot else "Plot not requested (--speedup-plot).",
              ""]
    text = "\n".join(lines)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
