#!/usr/bin/python3
"""Checks bench/report.py's merge of kiln_bench and ORT results on synthetic data.

Run: /usr/bin/python3 bench/report_test.py  (standard library + numpy only).
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import report  # noqa: E402


def kiln_entry(name, ms, error=None, **counters):
    """One Google Benchmark median aggregate (or error entry), as kiln_bench writes them."""
    if error:
        return {"name": name + "/real_time", "run_name": name + "/real_time", "error_occurred": True,
                "error_message": error}
    entry = {"name": name + "/real_time_median", "run_name": name + "/real_time", "run_type": "aggregate",
             "aggregate_name": "median", "real_time": ms * 1e6, "cpu_time": ms * 1e6, "time_unit": "ns"}
    entry.update(counters)
    return entry


def ort_case(name, steady_ms, cold_ms, error=None):
    threads = {}
    for t in ("1", "2"):
        threads[t] = {"error": error} if error else {
            "cold_start": {"median_ms": cold_ms, "p90_ms": cold_ms, "mean_ms": cold_ms, "min_ms": cold_ms, "runs": 3},
            "steady": {"median_ms": steady_ms * int(t), "p90_ms": steady_ms * 1.2, "mean_ms": steady_ms,
                       "min_ms": steady_ms, "runs": 50},
            "peak_rss_mb": 100.0}
    return {"name": name, "model": name.split("/")[0] + ".onnx", "threads": threads}


class ReportTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        benchmarks = []
        for t in (1, 2):
            benchmarks += [
                kiln_entry("BM_Zoo/model:mlp/tier:interp/threads:%d" % t, 4.0, regions=2, regions_compiled=0,
                           compile_ms=0),
                kiln_entry("BM_Zoo/model:mlp/tier:jit/threads:%d" % t, 2.0, regions=2, regions_compiled=2,
                           compile_ms=30.0, peak_planned_bytes=2 * 1024 * 1024, ort_checked=1,
                           ort_max_rel_diff=3e-6),
                kiln_entry("BM_ZooColdStart/model:mlp/threads:%d" % t, 10.0, peak_rss_delta_mb=12.5),
                kiln_entry("BM_Zoo/model:dyn/seq:64/tier:interp/threads:%d" % t, 8.0, regions=1),
                kiln_entry("BM_Zoo/model:dyn/seq:64/tier:jit/threads:%d" % t, None,
                           error="output 0 differs from ORT: max rel diff 0.5"),
                kiln_entry("BM_Zoo/model:bad/tier:interp/threads:%d" % t, 1.0, regions=0),
                kiln_entry("BM_Zoo/model:bad/tier:jit/threads:%d" % t, 1.0, regions=0),
            ]
        benchmarks += [
            kiln_entry("BM_Zoo/model:mlp/tier:opbyop/threads:1", 6.0, regions=3),
            kiln_entry("BM_LayerNormGelu/tier:interp/shape:8x64", 2.0, regions=1),
            kiln_entry("BM_LayerNormGelu/tier:jit/shape:8x64", 1.0, regions=1, regions_compiled=1),
            kiln_entry("BM_LayerNormGelu/tier:opbyop/shape:8x64", 5.0, regions=1),
            kiln_entry("BM_Model/model:cnn/tier:opbyop/threads:1", None, error="load failed"),
        ]
        self.kiln = os.path.join(self.dir.name, "kiln.json")
        with open(self.kiln, "w") as f:
            json.dump({"context": {"num_cpus": 2}, "benchmarks": benchmarks}, f)
        self.ort = os.path.join(self.dir.name, "ort.json")
        with open(self.ort, "w") as f:
            json.dump({"onnxruntime_version": "9.9.9", "node_version": "v0", "baseline_rss_mb": 50,
                       "settings": {"threads": [1, 2]},
                       "cases": [ort_case("mlp", 1.0, 20.0), ort_case("dyn/seq:64", 4.0, 5.0),
                                 ort_case("bad", 0, 0, error="No Op registered for KilnNoSuchOp")]}, f)

    def tearDown(self):
        self.dir.cleanup()

    def test_rows_merge_both_sides(self):
        _, results = report.load_results(self.kiln)
        rows = report.zoo_rows(results, report.load_ort(self.ort))
        self.assertEqual([(r.case, r.threads) for r in rows],
                         [("mlp", 1), ("mlp", 2), ("dyn/seq:64", 1), ("dyn/seq:64", 2), ("bad", 1), ("bad", 2)])
        mlp1 = rows[0]
        self.assertAlmostEqual(mlp1.kiln_seconds("jit") / mlp1.ort_seconds("steady"), 2.0)
        self.assertAlmostEqual(mlp1.kiln_seconds("cold") / mlp1.ort_seconds("cold_start"), 0.5)
        self.assertEqual(rows[4].ort_error, "No Op registered for KilnNoSuchOp")

    def test_report_ratios_errors_and_versions(self):
        out = os.path.join(self.dir.name, "report.md")
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), self.kiln, "--ort", self.ort, "--out", out],
                       check=True)
        with open(out) as f:
            text = f.read()
        # Ratios come before absolute times.
        self.assertLess(text.index("kiln vs ONNX Runtime"), text.index("## Model zoo: absolute times"))
        self.assertIn("| mlp | 1 | 2.00x | **2.00** | 4.00 | 0.50 | 3.0e-06 |  |", text)
        # 2 threads: ORT's synthetic time doubles, so kiln JIT / ORT halves.
        self.assertIn("| mlp | 2 | 2.00x | **1.00** | 2.00 | 0.50 | 3.0e-06 |  |", text)
        self.assertIn("| dyn/seq:64 | 1 | error | error | 2.00 |", text)
        self.assertIn("output 0 differs from ORT", text)
        self.assertIn("No Op registered for KilnNoSuchOp", text)
        self.assertIn("ONNX Runtime 9.9.9", text)
        self.assertIn("kiln JIT / ORT 2.00 (1 cases)", text)
        self.assertIn("planned 2 MiB, cold start RSS +12.5 MiB", text)

    def test_op_by_op_rows(self):
        out = os.path.join(self.dir.name, "report.md")
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), self.kiln, "--out", out], check=True)
        with open(out) as f:
            text = f.read()
        section = text[text.index("## The JIT against op-by-op interpretation"):]
        self.assertIn("| BM_Zoo/model:mlp/threads:1 | **3.00x** | 1.50x | 6 ms | 4 ms | 2 ms |", section)
        self.assertIn("| BM_LayerNormGelu/shape:8x64 | **5.00x** | 2.50x |", section)
        self.assertIn("| BM_Model/model:cnn/threads:1 | error: load failed |", section)
        # An op-by-op row is not a tier pair of its own.
        self.assertNotIn("opbyop", text[:text.index("## The JIT against op-by-op interpretation")])

    def test_gemm_roofs(self):
        """M > 1 rows are held against the FMA peak, the out-of-cache GEMV against read bandwidth."""
        n = report.OUT_OF_CACHE_GEMV_N
        benchmarks = [
            kiln_entry("BM_FmaPeakAvx512", 1.0, flops=200e9),
            kiln_entry("BM_StreamRead/MiB:64/threads:1", 1.0, bytes_per_second=40e9),
            kiln_entry("BM_Gemm/impl:jit/m:32/n:512", 1.0, flops=180e9),
            kiln_entry("BM_Gemm/impl:onednn/m:32/n:512", 1.0, flops=200e9),
            kiln_entry("BM_Gemm/impl:jit/m:1/n:%d" % n, 1.0, flops=1e9, weight_bytes_per_second=34e9),
            kiln_entry("BM_Gemm/impl:jit/m:1/n:512", 1.0, flops=1e9, weight_bytes_per_second=90e9),
        ]
        path = os.path.join(self.dir.name, "gemm.json")
        with open(path, "w") as f:
            json.dump({"context": {"num_cpus": 2}, "benchmarks": benchmarks}, f)
        _, results = report.load_results(path)
        text = "\n".join(report.roofs_section(results) + report.gemm_section(results))
        self.assertIn("Read-only stream (sum of 64 MiB), 1 thread: **40.00 GB/s**", text)
        self.assertIn("| 32 | 512 | 180.0 | n/a | 200.0 | n/a | 0.90 | 90.0% |", text)
        self.assertIn("| 1 | %d | 34.0 | n/a | n/a | n/a | n/a | 85.0%% |" % n, text)
        # A weight that fits in cache has no memory roof.
        self.assertIn("| 1 | 512 | 90.0 | n/a | n/a | n/a | n/a | n/a |", text)

    def test_rows_in_natural_order_whatever_the_file_order(self):
        # bench/run interleaves repetitions at random: the file's order is arbitrary.
        shuffled = os.path.join(self.dir.name, "shuffled.json")
        entries = []
        for n in (1024, 64, 256):
            for tier in ("jit", "interp"):
                entries.append(kiln_entry("BM_ElementwiseRegion/tier:%s/n:%d" % (tier, n), n / 64.0, regions=1,
                                          regions_compiled=1 if tier == "jit" else 0))
        with open(shuffled, "w") as f:
            json.dump({"context": {}, "benchmarks": entries}, f)
        _, results = report.load_results(shuffled)
        self.assertEqual([name for name, _, _, _ in report.speedup_pairs(results)],
                         ["BM_ElementwiseRegion/n:64", "BM_ElementwiseRegion/n:256", "BM_ElementwiseRegion/n:1024"])

    def test_time_to_first_result(self):
        first = os.path.join(self.dir.name, "first.json")
        entries = [kiln_entry("BM_Zoo/model:mlp/tier:interp/threads:1", 4.0),
                   # real_time includes the teardown; cold_ms is what the section reports.
                   kiln_entry("BM_ZooColdStart/model:mlp/threads:1", 12.0, cold_ms=8.0, load_ms=3.0, create_ms=1.0,
                              first_run_ms=4.0, steady_interp_ms=2.0, first_over_steady=2.0),
                   kiln_entry("BM_Zoo/model:dyn/seq:64/tier:interp/threads:1", 8.0)]
        with open(first, "w") as f:
            json.dump({"context": {}, "benchmarks": entries}, f)
        out = os.path.join(self.dir.name, "report.md")
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), first, "--ort", self.ort, "--out", out],
                       check=True)
        with open(out) as f:
            text = f.read()
        section = text[text.index("## Time to first result"):]
        # ORT's synthetic cold start is 20 ms: 8 / 20 = 0.40, within the 0.5 goal; 4 / 2 within 3.
        self.assertIn("| mlp | 3 | 1 | 4 | 8 | 20 | **0.40** | 2 | **2.00** |", section)
        self.assertIn("| dyn/seq:64 | not run |", section)
        self.assertIn("kiln / ORT: geomean 0.40, 1 of 1 cases within the goal", section)
        self.assertIn("| mlp | 1 | n/a | n/a | 4.00 | 0.40 |", text)
        self.assertIn("| mlp | 1 | 4 |  | 1 (1.2, 50) | 8 | 20 |", text)
        self.assertIn("| dyn/seq:64 | 1 | n/a | n/a | 2.00 | not run |", text)

    def test_bitwise_cost(self):
        path = os.path.join(self.dir.name, "bitwise.json")
        entries = [kiln_entry("BM_Zoo/model:mlp/tier:interp/threads:1", 4.0, regions_compiled=0),
                   kiln_entry("BM_Zoo/model:mlp/tier:jit/threads:1", 1.0, regions_compiled=3),
                   kiln_entry("BM_Zoo/model:mlp/tier:bitwise/threads:1", 2.0, regions_compiled=2),
                   kiln_entry("BM_Zoo/model:cnn/tier:jit/threads:2", 1.0, regions_compiled=5),
                   kiln_entry("BM_Zoo/model:cnn/tier:bitwise/threads:2", 1.0,
                              error="bitwise mode: output 0 differs from the interpreter's bits")]
        with open(path, "w") as f:
            json.dump({"context": {}, "benchmarks": entries}, f)
        out = os.path.join(self.dir.name, "report.md")
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), path, "--out", out], check=True)
        with open(out) as f:
            text = f.read()
        section = text[text.index("## Bitwise tier equivalence"):]
        self.assertIn("| mlp | 1 | 4 | 1 | 2 | 2 / 3 | 2.00 | 2.00x |", section)
        self.assertIn("| cnn | 2 | n/a | 1 | error | n/a / 5 | error | error |", section)
        self.assertIn("Geomean cost at 1 thread: 2.00 (1 cases)", section)
        self.assertIn("differs from the interpreter's bits", text)

    def test_tierup_under_load(self):
        path = os.path.join(self.dir.name, "under_load.json")
        common = {"interp_p50_ms": 2.0, "interp_p99_ms": 4.0, "load_average": 1.5}
        entries = [
            kiln_entry("BM_TierUpLatency/model:silu/requests:2/compile_share:off", 300.0, tierup_p99_ms=4.2,
                       p99_over_interp_p99=1.05, p50_over_interp_p50=1.01, runs_to_tier_up=150, **common),
            kiln_entry("BM_ZooTierUp/model:silu/requests:2/compile_share:off", 320.0, runs_to_tier_up=160,
                       tierup_ms=320.0, compile_ms=250.0, **common),
            kiln_entry("BM_TierUpLatency/model:silu/requests:2/compile_share:0.25", 60.0, tierup_p99_ms=6.0,
                       p99_over_interp_p99=1.5, p50_over_interp_p50=1.2, runs_to_tier_up=25, **common),
            kiln_entry("BM_ZooTierUp/model:silu/requests:2/compile_share:0.25", None, error="not tiered up"),
            kiln_entry("BM_ZooTierUpWarmCache/model:silu/requests:2/compile_share:0.25", 40.0, runs_to_peak=6,
                       peak_p99_over_interp_p99=1.04, **common),
            kiln_entry("BM_ZooTierUp/model:mlp/threads:1", 50.0, runs_to_tier_up=7),
        ]
        with open(path, "w") as f:
            json.dump({"context": {}, "benchmarks": entries}, f)
        out = os.path.join(self.dir.name, "report.md")
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), path, "--out", out], check=True)
        with open(out) as f:
            text = f.read()
        section = text[text.index("## Tier-up under load"):]
        self.assertIn("| silu | 2 | off | 4 | 4.2 | 1.05 | 1.01 | 150 | 160 | 320 | 250 |  |  | 1.50 |", section)
        self.assertIn("| silu | 2 | 0.25 | 4 | 6 | 1.50 | 1.20 | 25 | error | error | error | 6 | 1.04 | 1.50 |",
                      section)
        # Without the scheduler first, then by share; other tier-up rows stay in the zoo tables.
        self.assertLess(section.index("| off |"), section.index("| 0.25 |"))
        self.assertNotIn("mlp", section)

    def test_code_cache_section_sets_warm_beside_cold(self):
        path = os.path.join(self.dir.name, "cache.json")
        entries = [
            kiln_entry("BM_ZooTierUp/model:mlp/threads:1", 50.0, runs_to_tier_up=30, first_run_ms=1.5),
            kiln_entry("BM_ZooTierUpWarmCache/model:mlp/threads:1", 10.0, runs_to_tier_up=4, first_run_ms=1.25,
                       cache_hits=3, cache_misses=0),
            kiln_entry("BM_ZooTierUp/model:cnn/threads:1", 80.0, runs_to_tier_up=12),
            kiln_entry("BM_ZooTierUpWarmCache/model:cnn/threads:1", None, error="filling the code cache: failed"),
            kiln_entry("BM_ZooTierUpWarmCache/model:mlp/threads:2", 20.0, runs_to_tier_up=5),
        ]
        with open(path, "w") as f:
            json.dump({"context": {}, "benchmarks": entries}, f)
        out = os.path.join(self.dir.name, "report.md")
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), path, "--out", out], check=True)
        with open(out) as f:
            text = f.read()
        section = text[text.index("## Code cache: time to peak"):]
        section = section[:section.index("\n## ")]
        self.assertIn("| mlp | 50 (30) | 1.5 | 10 (4) | 1.25 | 0.20 | 3 | n/a |", section)
        self.assertIn("| cnn | 80 (12) | n/a | error |  | n/a | n/a | n/a |", section)
        self.assertIn("Warm / cold time to peak: geomean 0.20 over 1 cases.", section)
        self.assertNotIn("| 20 (5) |", section)  # 1 thread only

    def test_time_to_first_result_says_when_cold_starts_were_filtered_out(self):
        out = os.path.join(self.dir.name, "report.md")
        filtered = os.path.join(self.dir.name, "filtered.json")
        with open(filtered, "w") as f:
            json.dump({"context": {}, "benchmarks": [kiln_entry("BM_Zoo/model:mlp/tier:interp/threads:1", 4.0)]}, f)
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), filtered, "--out", out], check=True)
        with open(out) as f:
            text = f.read()
        self.assertIn("BM_ZooColdStart was not selected", text)

    def test_report_without_peer_says_why(self):
        out = os.path.join(self.dir.name, "report.md")
        subprocess.run([sys.executable, os.path.join(HERE, "report.py"), self.kiln, "--ort-missing",
                        "registry unreachable.", "--out", out], check=True)
        with open(out) as f:
            text = f.read()
        self.assertIn("ONNX Runtime was not measured in this run: registry unreachable.", text)
        self.assertIn("| mlp | 1 | 2.00x | n/a | n/a | n/a | 3.0e-06 | not run by ORT |", text)


if __name__ == "__main__":
    unittest.main()
