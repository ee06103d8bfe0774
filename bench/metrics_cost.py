"""What the metrics counters cost (docs/metrics.md; issue 20's target: <= 3 % of 64 B pub/sub
throughput). Full runs of scripts/bench.sh only; run_bench.py calls run() and section().

Two builds of one bench, alike but for the library: shmbus_bench_counters (the library as shipped) and
shmbus_bench_nocounters (the library with every counter update compiled out,
SHMBUS_NO_HOTPATH_COUNTERS; bench/CMakeLists.txt). Throughput: `tput shmbus --size 64`, the two
alternating within each round (the order swaps every round), medians over the rounds and the
median of the per-round ratios. Instructions: callgrind on the one-process hot-path loop
(shmbus_profile, loan/publish/take/release) of each library, per message: noise-free.

    /usr/bin/python3 bench/metrics_cost.py --build build-bench [--rounds 9]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

PROFILE_MESSAGES = 20000


def _tput(binary, seconds, log):
    argv = [binary, "tput", "shmbus", "--size", "64", "--seconds", str(seconds)]
    log.write("$ " + " ".join(argv) + "\n")
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=log, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]).get("msgs_per_s") if lines else None


def _instructions(binary, policy, log):
    """Instructions per message in hot_loop, from callgrind's total for the toggled function."""
    if shutil.which("valgrind") is None:
        return None
    out = os.path.join(os.path.dirname(binary), f"callgrind.metrics_cost.{os.path.basename(binary)}.{policy}")
    argv = ["valgrind", "--tool=callgrind", "--toggle-collect=*hot_loop*", f"--callgrind-out-file={out}",
            binary, str(PROFILE_MESSAGES), "1", policy]
    log.write("$ " + " ".join(argv) + "\n")
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    log.write(p.stderr)
    m = re.search(r"Collected : (\d+)", p.stderr)
    return int(m.group(1)) / PROFILE_MESSAGES if m else None


def run(build, log, rounds=9, seconds=0.5):
    bench = os.path.join(build, "bench")
    on, off = os.path.join(bench, "shmbus_bench_counters"), os.path.join(bench, "shmbus_bench_nocounters")
    if not (os.path.exists(on) and os.path.exists(off)):
        print(f"metrics cost: {off} not built, skipped", flush=True)
        return {}
    with_c, without_c, ratios = [], [], []
    for rnd in range(rounds):
        pair = [("with", on), ("without", off)]
        if rnd % 2:
            pair.reverse()
        got = {label: _tput(binary, seconds, log) for label, binary in pair}
        print(f"  metrics cost r{rnd} 64 B tput with counters {got['with']} msg/s, without {got['without']} msg/s",
              flush=True)
        if got["with"] and got["without"]:
            with_c.append(got["with"])
            without_c.append(got["without"])
            ratios.append(got["with"] / got["without"])
    result = {"rounds": len(ratios), "seconds": seconds}
    if ratios:
        result.update({"with_msgs_per_s": statistics.median(with_c), "without_msgs_per_s": statistics.median(without_c),
                       "ratio_median": statistics.median(ratios), "ratios": ratios})
    for policy in ("drop_oldest", "block"):
        result[f"instructions_with_{policy}"] = _instructions(os.path.join(bench, "shmbus_profile"), policy, log)
        result[f"instructions_without_{policy}"] = _instructions(os.path.join(bench, "shmbus_profile_nocounters"), policy, log)
    print("  metrics cost " + json.dumps({k: v for k, v in result.items() if k != "ratios"}), flush=True)
    return result


def section(result):
    """The report's lines (docs/BENCHMARKS.md)."""
    if not result or "ratio_median" not in result:
        return []
    cost = 1 - result["ratio_median"]
    L = ["## What the metrics counters cost (docs/metrics.md)\n",
         "64 B pub/sub throughput (`shmbus_bench_counters tput shmbus --size 64`) of the library as shipped against the same "
         "library with every counter update compiled out (`shmbus_bench_nocounters`, bench/CMakeLists.txt), "
         f"alternating in each of {result['rounds']} rounds ({result['seconds']} s each, order swapped every round); "
         "medians, and the median of the per-round ratios. Instructions per message: callgrind on the one-process "
         f"hot-path loop (`shmbus_profile {PROFILE_MESSAGES} 1 POLICY` and `shmbus_profile_nocounters`). "
         "Target (issue 20): the counters cost <= 3 %.\n"]
    rows = [["64 B throughput, msg/s (median)", f"{result['with_msgs_per_s']:,.0f}", f"{result['without_msgs_per_s']:,.0f}",
             f"{cost * 100:+.1f} % (ratio {result['ratio_median']:.3f})"]]
    for policy in ("drop_oldest", "block"):
        w, wo = result.get(f"instructions_with_{policy}"), result.get(f"instructions_without_{policy}")
        if w and wo:
            rows.append([f"instructions per message, {policy}", f"{w:.1f}", f"{wo:.1f}", f"{(w - wo) / wo * 100:+.1f} %"])
    L.append("| case | with counters | without | cost |")
    L.append("| --- | --- | --- | --- |")
    L.extend("| " + " | ".join(r) + " |" for r in rows)
    L.append("")
    return L


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    r = run(args.build, sys.stderr, args.rounds, args.seconds)
    print("\n".join(section(r)))
