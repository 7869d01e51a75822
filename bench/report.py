#!/usr/bin/python3
"""Turns a kiln_bench JSON file (Google Benchmark format) into a Markdown report.

Usage: /usr/bin/python3 bench/report.py RESULTS.json [--out REPORT.md]
           [--plot PLOT.png] [--loadavg-end "..."]

The report puts ratios first (JIT speedup over the interpreter for every
interp/jit pair, with geomeans), because ratios survive a noisy, shared
machine much better than absolute times; absolute times follow, then the
roofs: STREAM triad bandwidth against the fused regions' bandwidth, and the
FMA peak against MatMul throughput. Times are the median over repetitions;
cv is the coefficient of variation across repetitions.

The plot (speedup per pair) uses matplotlib if importable, else gnuplot if
on PATH, else it is skipped and the report says so. Needs only the standard
library and numpy.
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
    return run_name.replace("/real_time", "")


def load_results(path):
    with open(path) as f:
        data = json.load(f)
    results = {}
    for entry in data.get("benchmarks", []):
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
        if "tier:interp" not in name:
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


def machine_section(context, args):
    model, flags = cpu_info()
    lines = ["## Machine", ""]
    lines.append("- CPU: %s (%s cores, %s MHz as reported)" % (
        context.get("cpu_model", model), context.get("num_cpus", os.cpu_count()), context.get("mhz_per_cpu", "?")))
    simd = ", ".join("%s %s" % (f, "yes" if f in flags else "no") for f in ("fma", "avx2", "avx512f"))
    lines.append("- SIMD flags: %s (kiln builds with -march=x86-64-v3, i.e. AVX2 + FMA)" % simd)
    caches = context.get("caches", [])
    if caches:
        lines.append("- Caches: " + ", ".join(
            "L%d %s %d KiB%s" % (c["level"], c["type"], c["size"] // 1024,
                                 " (shared by %d)" % c["num_sharing"] if c.get("num_sharing", 1) > 1 else "")
            for c in caches))
    load_start = context.get("loadavg_at_start") or " ".join("%.2f" % x for x in context.get("load_avg", []))
    lines.append("- Load average at start: %s; at end: %s. The machine is shared: a load near or above the core"
                 " count means other processes competed for the CPU during the run, which inflates absolute"
                 " times (most of all the 2-thread runs) more than ratios." % (
                     load_start or "unknown", args.loadavg_end or "not recorded"))
    lines.append("- Run: %s, %s" % (context.get("date", "?"), context.get("host_name", "?")))
    if context.get("library_build_type") == "debug":
        lines.append("- Note: the system libbenchmark reports itself as a debug build; its per-iteration overhead"
                     " is negligible next to the microsecond-scale runs measured here.")
    return lines


def ratio_section(pairs):
    lines = ["## JIT speedup over the interpreter (ratios first)", ""]
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


def roofs_section(results):
    lines = ["## Roofs", ""]
    triad = {}
    for name, result in find(results, r"^BM_StreamTriad/"):
        m = re.search(r"threads:(\d+)", name)
        triad[int(m.group(1)) if m else 1] = result.value("bytes_per_second")
    for threads in sorted(triad):
        lines.append("- STREAM triad, %d thread%s: **%.2f GB/s**" % (threads, "" if threads == 1 else "s",
                                                                   triad[threads] / 1e9))
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
    for name, result in find(results, r"^BM_FmaPeak"):
        m = re.search(r"threads:(\d+)", name)
        fma[int(m.group(1)) if m else 1] = result.value("flops")
    for threads in sorted(fma):
        lines.append("- FMA peak (AVX2, 12 independent chains), %d thread%s: **%.1f GFLOP/s**" % (
            threads, "" if threads == 1 else "s", fma[threads] / 1e9))
    for name, result in find(results, r"^BM_MatMul/"):
        flops = result.value("flops")
        m = re.search(r"threads:(\d+)", name)
        peak = fma.get(int(m.group(1)) if m else 1)
        lines.append("- %s (interp, oneDNN): **%.1f GFLOP/s**%s" % (
            name, flops / 1e9, " = %s of the FMA peak at the same thread count" % fmt_pct(flops / peak)
            if peak else ""))
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


def peer_section():
    return ["## Peers", "",
            "ONNX Runtime: not measured yet (planned). When it is, add a `tier:ort` member to each BM_Model"
            " pair and a row per model here: kiln best tier / ORT time, same threads and inputs.", ""]


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
    parser.add_argument("--plot", help="PNG file for the speedup plot")
    parser.add_argument("--loadavg-end", default="", help="/proc/loadavg after the run")
    args = parser.parse_args()

    context, results = load_results(args.results)
    pairs = speedup_pairs(results)
    lines = ["# kiln benchmark report: %s" % os.path.splitext(os.path.basename(args.results))[0], ""]
    lines += machine_section(context, args) + [""]
    lines += ratio_section(pairs) + [""]
    lines += absolute_section(results) + [""]
    lines += roofs_section(results) + [""]
    lines += compile_section(results) + [""]
    lines += peer_section()
    lines += ["## Plot", "", write_plot(pairs, args.plot) if args.plot else "Plot not requested (--plot).", ""]
    text = "\n".join(lines)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
