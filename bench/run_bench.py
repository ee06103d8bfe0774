#!/usr/bin/env python3
"""Runs shmbus's benchmark suite and writes the report: docs/BENCHMARKS.md, its plots
docs/bench/*.png, every run with its probes in docs/bench/runs.md, and the raw results in
docs/bench/results.json.

    python3 bench/run_bench.py --build build-bench [--quick]
    python3 bench/run_bench.py --report-only     # re-render from docs/bench/results.json

The report is the current state (machine, method, targets, tables, plots). How the figures came
about, what was tried and what it gained, is bench/NOTES.md, written by hand; the report links
to it and does not repeat it.

Method (issue 6, "Measuring honestly on this machine"): the host moves this guest's vCPUs,
so the cost of handing a cache line from one core to the other changes (about 0.28, 0.085 or
0.04 us one-way) and can switch in the middle of a case. Every run is therefore bracketed by
a probe (a short two-process atomic ping-pong, its one-way median); a run whose two probes
disagree is dropped; each kept run is labelled with its placement (the probe's class); runs
of shmbus and its peers are interleaved in rounds (the order rotates every round); and every
ratio is formed only between runs of the same round and the same placement, then summarised
(median) over rounds.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics_cost  # noqa: E402  (bench/metrics_cost.py: what the metrics counters cost)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NOTES = os.path.join(HERE, "NOTES.md")
PLOTS = ("latency_vs_size.png", "latency_percentiles.png", "throughput.png")
RUNS_FILE = "runs.md"

KiB, MiB = 1024, 1024 * 1024


def human(n):
    n = int(n)
    if n >= MiB and n % MiB == 0:
        return f"{n // MiB} MiB"
    if n >= KiB and n % KiB == 0:
        return f"{n // KiB} KiB"
    return f"{n} B"


def fmt(v, digits=3):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


# ------------------------------------------------------------------ placement


def placement_of(probe_us):
    if probe_us is None:
        return "?"
    if probe_us < 0.06:
        return "A (~0.04 µs)"
    if probe_us < 0.17:
        return "B (~0.085 µs)"
    return "C (~0.28 µs)"


def probes_agree(p0, p1):
    if p0 is None or p1 is None:
        return False
    if placement_of(p0) != placement_of(p1):
        return False
    return max(p0, p1) / max(min(p0, p1), 1e-9) <= 1.5


# ------------------------------------------------------------------ runner


class Runner:
    def __init__(self, build, log):
        self.bench = os.path.join(build, "bench", "shmbus_bench")
        self.iox = os.path.join(build, "bench", "shmbus_bench_iox")
        self.log = log
        self.results = []  # every run, kept or not
        self.roudi = None
        self.iox_status = None

    def _exec(self, argv, timeout=180):
        self.log.write("$ " + " ".join(argv) + "\n")
        self.log.flush()
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=self.log, timeout=timeout, text=True)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        self.log.write(p.stdout)
        if not lines:
            return {"error": f"no result (exit {p.returncode})"}
        return json.loads(lines[-1])

    def probe(self):
        r = self._exec([self.bench, "lat", "floor", "--size", "64", "--iters", "4000", "--warmup", "500"], timeout=30)
        return r.get("median_us")

    def run(self, group, label, binary, args, rnd, extra=None):
        argv = [self.iox if binary == "iox" else self.bench] + args
        p0 = self.probe()
        r = self._exec(argv)
        p1 = self.probe()
        r.update({"group": group, "label": label, "round": rnd, "probe_before": p0, "probe_after": p1,
                  "placement": placement_of(p0 if p0 is not None else p1),
                  "kept": probes_agree(p0, p1) and "error" not in r})
        if "error" in r:
            r["why"] = r["error"]
        elif not r["kept"]:
            r["why"] = "probes disagree"
        if extra:
            r.update(extra)
        self.results.append(r)
        status = "ok " if r["kept"] else "DROP"
        main = r.get("median_us", r.get("msgs_per_s", r.get("idle_cpu_percent")))
        print(f"  [{status}] r{rnd} {group:10s} {label:28s} size={human(r.get('size', 0)):>7s} "
              f"value={fmt(main)} probes={fmt(p0)}/{fmt(p1)} {r.get('why', '')}", flush=True)
        return r

    # --- iceoryx / RouDi

    def start_roudi(self):
        if not os.path.exists(self.iox):
            self.iox_status = "skipped, because shmbus_bench_iox was not built (iceoryx packages missing at configure time)"
            return False
        exe = shutil.which("iox-roudi")
        if not exe:
            self.iox_status = "skipped, because iox-roudi is not installed (Debian package `iceoryx`)"
            return False
        cfg = os.path.join(HERE, "roudi.toml")
        self.roudi = subprocess.Popen([exe, "-c", cfg, "-l", "warning"], stdout=self.log, stderr=self.log,
                                      start_new_session=True)
        time.sleep(1.5)
        if self.roudi.poll() is not None:
            self.iox_status = f"skipped, because iox-roudi exited at start (code {self.roudi.returncode}; another RouDi running?)"
            self.roudi = None
            return False
        r = self._exec([self.iox, "lat", "iceoryx", "--size", "64", "--iters", "200", "--warmup", "10"], timeout=60)
        if "error" in r:
            self.iox_status = f"skipped, because a trial run failed: {r['error']}"
            self.stop_roudi()
            return False
        self.iox_status = "ok (iceoryx 2.0 from Debian, RouDi with bench/roudi.toml)"
        return True

    def roudi_memory(self):
        if not self.roudi:
            return None
        return proc_memory(self.roudi.pid)

    def stop_roudi(self):
        if self.roudi and self.roudi.poll() is None:
            self.roudi.send_signal(signal.SIGINT)
            try:
                self.roudi.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.roudi.kill()
                self.roudi.wait()
        self.roudi = None


def proc_memory(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_kb"] = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss_kb"] = int(line.split()[1])
    except OSError:
        return None
    return out


# ------------------------------------------------------------------ the suite


def suite(quick, have_iox):
    """Groups of runs: (group, label, binary, args). Each group is run transport by transport,
    in an order that rotates every round."""
    it_lat = 3000 if quick else 20000
    it_blk = 1500 if quick else 10000
    sizes = [64, 16 * MiB] if quick else [64, 4 * KiB, 64 * KiB, MiB, 16 * MiB]
    secs = "0.2" if quick else "0.5"
    lat_budget = "0.5" if quick else "1.5"
    groups = []
    for s in sizes:
        g = []
        common = ["--size", str(s), "--iters", str(it_lat), "--seconds", lat_budget]
        if s == 64:
            g.append(("lat", "floor", "b", ["lat", "floor"] + common))
            g.append(("lat", "floor+line", "b", ["lat", "floor_line"] + common))
        g.append(("lat", "floor+memcpy", "b", ["lat", "floor_memcpy"] + common))
        g.append(("lat", "shmbus", "b", ["lat", "shmbus"] + common))
        if s == 64:  # the default policy is drop_oldest; a pinned take (block) moves fewer lines
            g.append(("lat", "shmbus (block policy)", "b", ["lat", "shmbus", "--policy", "block"] + common))
            g.append(("lat", "shmbus C API", "b", ["lat", "c"] + common))
        if have_iox:
            g.append(("lat", "iceoryx", "iox", ["lat", "iceoryx"] + common))
        g.append(("lat", "uds (busy-poll)", "b", ["lat", "uds"] + common))
        g.append(("lat", "boost mq (busy-poll)", "b", ["lat", "boostmq"] + common))
        groups.append(g)
    blk = ["--size", "64", "--iters", str(it_blk), "--seconds", lat_budget]
    g = [("latblock", "futex (raw)", "b", ["lat", "futex", "--wait", "block"] + blk),
         ("latblock", "shmbus block", "b", ["lat", "shmbus", "--wait", "block"] + blk),
         ("latblock", "shmbus adaptive", "b", ["lat", "shmbus", "--wait", "adaptive"] + blk),
         ("latblock", "uds (blocking)", "b", ["lat", "uds", "--wait", "block"] + blk),
         ("latblock", "boost mq (blocking)", "b", ["lat", "boostmq", "--wait", "block"] + blk)]
    if have_iox:
        g.append(("latblock", "iceoryx WaitSet", "iox", ["lat", "iceoryx", "--wait", "waitset"] + blk))
    groups.append(g)
    wk = ["--iters", "150" if quick else "1000", "--warmup", "20", "--gap-us", "1200"]
    g = [("wake", "futex (raw)", "b", ["wake", "futex", "--wait", "block"] + wk),
         ("wake", "shmbus block", "b", ["wake", "shmbus", "--wait", "block"] + wk),
         ("wake", "shmbus adaptive", "b", ["wake", "shmbus", "--wait", "adaptive"] + wk),
         ("wake", "uds (blocking)", "b", ["wake", "uds", "--wait", "block"] + wk)]
    if have_iox:
        g.append(("wake", "iceoryx WaitSet", "iox", ["wake", "iceoryx", "--wait", "waitset"] + wk))
    groups.append(g)
    st = ["--rate", "100000", "--iters", "10000" if quick else "50000", "--warmup", "1000"]
    groups.append([("stream", "shmbus busy-poll", "b", ["stream", "shmbus", "--wait", "busy"] + st),
                   ("stream", "shmbus adaptive", "b", ["stream", "shmbus", "--wait", "adaptive"] + st),
                   ("stream", "shmbus block", "b", ["stream", "shmbus", "--wait", "block"] + st),
                   ("idle", "shmbus adaptive (idle)", "b", ["idle", "shmbus", "--wait", "adaptive", "--seconds", "0.5" if quick else "1"]),
                   ("idle", "futex (raw, one wait)", "b", ["idle", "futex", "--wait", "block", "--seconds", "0.5" if quick else "1"]),
                   ("idle", "futex (raw, 100 ms slices)", "b", ["idle", "futex_sliced", "--wait", "block", "--seconds", "0.5" if quick else "1"]),
                   ("idle", "shmbus block (idle)", "b", ["idle", "shmbus", "--wait", "block", "--seconds", "0.5" if quick else "1"])])
    for s in (64, MiB):
        tp = ["--size", str(s), "--seconds", secs]
        g = [("tput", "raw SPSC ring", "b", ["tput", "ring"] + tp),
             ("tput", "shmbus", "b", ["tput", "shmbus"] + tp),
             ("tput", "uds", "b", ["tput", "uds"] + tp),
             ("tput", "boost mq", "b", ["tput", "boostmq"] + tp)]
        if s == 64:
            g.append(("tput", "shmbus C API", "b", ["tput", "c"] + tp))
        if have_iox:
            g.append(("tput", "iceoryx", "iox", ["tput", "iceoryx"] + tp))
        groups.append(g)
    fo = ["--iters", "100" if quick else "500", "--warmup", "20", "--gap-us", "300"]
    for n in (1, 2, 4, 8):
        g = [("fanout", "futex (raw, wake all)", "b", ["fanout", "futex", "--wait", "block", "--subs", str(n)] + fo),
             ("fanout", "shmbus block", "b", ["fanout", "shmbus", "--wait", "block", "--subs", str(n)] + fo),
             ("fanout", "uds (blocking)", "b", ["fanout", "uds", "--wait", "block", "--subs", str(n)] + fo)]
        if have_iox:
            g.append(("fanout", "iceoryx WaitSet", "iox", ["fanout", "iceoryx", "--wait", "waitset", "--subs", str(n)] + fo))
        groups.append(g)
    if not quick:  # request/response: a call against two pub/sub hops and iceoryx's client/server
        sv = ["--size", "64", "--iters", str(it_lat), "--seconds", lat_budget]
        g = [("svc", "shmbus pub/sub ping-pong", "b", ["lat", "shmbus"] + sv),
             ("svc", "shmbus service call", "b", ["lat", "service"] + sv)]
        if have_iox:
            g.append(("svc", "iceoryx client/server", "iox", ["lat", "iceoryx_service", "--seconds", "3"] + sv[:4]))
        g.append(("svctput", "shmbus service, 16 calls in flight", "b", ["tput", "service", "--size", "64", "--seconds", secs]))
        g.append(("svctput", "shmbus pub/sub", "b", ["tput", "shmbus", "--size", "64", "--seconds", secs]))
        groups.append(g)
    rs = ["--size", "64", "--iters", "10000", "--rss"]
    g = [("rss", "shmbus", "b", ["lat", "shmbus"] + rs), ("rss", "uds", "b", ["lat", "uds"] + rs),
         ("rss", "boost mq", "b", ["lat", "boostmq"] + rs)]
    if have_iox:
        g.append(("rss", "iceoryx", "iox", ["lat", "iceoryx"] + rs))
    groups.append(g)
    return groups


# ------------------------------------------------------------------ analysis


def kept(results, **match):
    out = []
    for r in results:
        if not r["kept"]:
            continue
        if all(r.get(k) == v for k, v in match.items()):
            out.append(r)
    return out


def summarise(results, group, label, size=None, key="median_us", extra=None):
    """Per placement: median over kept runs of `key` (and percentiles)."""
    m = {"group": group, "label": label}
    if size is not None:
        m["size"] = size
    if extra:
        m.update(extra)
    rs = kept(results, **m)
    by = {}
    for r in rs:
        by.setdefault(r["placement"], []).append(r)
    return by


def med(rs, key):
    vals = [r[key] for r in rs if r.get(key) is not None and r[key] >= 0]
    return statistics.median(vals) if vals else None


def paired_ratio(results, a, b, key="median_us"):
    """a, b: dicts matching one run each per round. Ratio a/b within each round when both were
    kept and share a placement. Returns {placement: [ratios]}."""
    out = {}
    rounds = sorted({r["round"] for r in results})
    for rnd in rounds:
        ra = kept(results, round=rnd, **a)
        rb = kept(results, round=rnd, **b)
        if not ra or not rb:
            continue
        x, y = ra[0], rb[0]
        if x["placement"] != y["placement"] or not x.get(key) or not y.get(key):
            continue
        out.setdefault(x["placement"], []).append(x[key] / y[key])
    return out


# ------------------------------------------------------------------ report


def machine_facts():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def write_plots(results, plots_dir, have_iox, log):
    gp = shutil.which("gnuplot")
    if not gp:
        return "gnuplot not installed: no plots (apt-get install gnuplot-nox)"
    os.makedirs(plots_dir, exist_ok=True)
    made = []

    def dominant(rs):
        by = {}
        for r in rs:
            by.setdefault(r["placement"], []).append(r)
        return max(by.items(), key=lambda kv: len(kv[1]))[1] if by else []

    # 1. latency vs payload size (busy-poll), median per transport
    labels = ["floor+memcpy", "shmbus", "iceoryx", "uds (busy-poll)", "boost mq (busy-poll)"]
    series = []
    for lab in labels:
        pts = []
        for s in sorted({r["size"] for r in kept(results, group="lat")}):
            v = med(dominant(kept(results, group="lat", label=lab, size=s)), "median_us")
            if v:
                pts.append((s, v))
        if pts:
            series.append((lab, pts))
    floor = med(dominant(kept(results, group="lat", label="floor")), "median_us")
    if series:
        dat = os.path.join(plots_dir, "latency_vs_size.dat")
        with open(dat, "w") as f:
            for lab, pts in series:
                f.write(f'"{lab}"\n')
                for s, v in pts:
                    f.write(f"{s} {v}\n")
                f.write("\n\n")
        plot = [f'"{dat}" index {i} with linespoints lw 2 pt 7 title columnheader(1)' for i in range(len(series))]
        if floor:
            plot.append(f"{floor} with lines dt 2 lc rgb 'black' title 'floor (atomic ping-pong)'")
        script = f"""set terminal pngcairo size 900,560
set output '{os.path.join(plots_dir, "latency_vs_size.png")}'
set title 'One-way latency (round trip / 2), busy-poll, median'
set logscale xy
set xlabel 'payload bytes'
set ylabel 'µs'
set grid
set key top left
set xtics ('64 B' 64, '4 KiB' 4096, '64 KiB' 65536, '1 MiB' 1048576, '16 MiB' 16777216)
plot {", ".join(plot)}
"""
        run_gnuplot(gp, script, log)
        made.append("latency_vs_size.png")

    # 2. latency percentiles at 64 B: busy-poll and blocking
    rows = []
    for grp, labs in (("lat", ["floor", "shmbus", "iceoryx", "uds (busy-poll)", "boost mq (busy-poll)"]),
                      ("latblock", ["futex (raw)", "shmbus block", "shmbus adaptive", "iceoryx WaitSet",
                                    "uds (blocking)", "boost mq (blocking)"])):
        for lab in labs:
            rs = dominant(kept(results, group=grp, label=lab, size=64))
            if rs:
                rows.append((("" if grp == "lat" else "") + lab, med(rs, "median_us"), med(rs, "p99_us"), med(rs, "p999_us")))
    if rows:
        dat = os.path.join(plots_dir, "latency_percentiles.dat")
        with open(dat, "w") as f:
            f.write("label median p99 p99.9\n")
            for lab, a, b, c in rows:
                f.write(f'"{lab}" {a} {b} {c}\n')
        script = f"""set terminal pngcairo size 1000,560
set output '{os.path.join(plots_dir, "latency_percentiles.png")}'
set title 'One-way latency percentiles, 64 B (left: busy-poll, right: sleeping waits)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'µs'
set grid ytics
set xtics rotate by -30
set key top left
plot '{dat}' using 2:xtic(1) title 'median', '' using 3 title 'p99', '' using 4 title 'p99.9'
"""
        run_gnuplot(gp, script, log)
        made.append("latency_percentiles.png")

    # 3. throughput
    labs = ["raw SPSC ring", "shmbus", "iceoryx", "uds", "boost mq"]
    rows = []
    for lab in labs:
        a = med(dominant(kept(results, group="tput", label=lab, size=64)), "msgs_per_s")
        b = med(dominant(kept(results, group="tput", label=lab, size=MiB)), "gb_per_s")
        if a or b:
            rows.append((lab, a or 0, b or 0))
    if rows:
        dat = os.path.join(plots_dir, "throughput.dat")
        with open(dat, "w") as f:
            for lab, a, b in rows:
                f.write(f'"{lab}" {a / 1e6} {b}\n')
        script = f"""set terminal pngcairo size 1000,480
set output '{os.path.join(plots_dir, "throughput.png")}'
set multiplot layout 1,2 title 'Throughput, subscriber reads every byte'
set style data histograms
set style fill solid 0.8 border -1
set grid ytics
set xtics rotate by -30
set title '64 B: million messages/s'
plot '{dat}' using 2:xtic(1) notitle lc rgb '#3070b0'
set title '1 MiB: GB/s'
plot '{dat}' using 3:xtic(1) notitle lc rgb '#b05030'
unset multiplot
"""
        run_gnuplot(gp, script, log)
        made.append("throughput.png")
    return made


def run_gnuplot(gp, script, log):
    p = subprocess.run([gp], input=script, text=True, stdout=log, stderr=log)
    if p.returncode != 0:
        log.write("gnuplot failed\n")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |")
    return "\n".join(out)


def latency_rows(results, group, labels, sizes):
    rows = []
    for s in sizes:
        for lab in labels:
            by = summarise(results, group, lab, size=s)
            for pl, rs in sorted(by.items()):
                rows.append([human(s), lab, pl, str(len(rs)), med(rs, "median_us"), med(rs, "p99_us"),
                             med(rs, "p999_us"), str(med(rs, "n") and int(med(rs, "n")))])
    return rows


def ratio_cell(ratios):
    """{placement: [ratios]} -> text, one entry per placement."""
    if not ratios:
        return "no pair (dropped runs or placements differ)", None
    parts = []
    best = None
    for pl, rs in sorted(ratios.items(), key=lambda kv: -len(kv[1])):
        m = statistics.median(rs)
        each = ", ".join(f"{x:.2f}" for x in rs)
        parts.append(f"{m:.2f}× (placement {pl}, {len(rs)} round{'s' if len(rs) != 1 else ''}: {each})")
        if best is None:
            best = m
    return "; ".join(parts), best


def verdict(value, limit, le=True):
    if value is None:
        return "n/a"
    ok = value <= limit if le else value >= limit
    return "**met**" if ok else "**missed**"


def write_report(path, plots_dir, results, facts, args, runner, plots, t_start, t_end):
    R = results
    L = []
    L.append("# shmbus benchmarks\n")
    L.append("Written by `scripts/bench.sh" + (" --quick" if args.quick else "") + "` (bench/run_bench.py), which "
             "saves the raw results in `bench/results.json` beside this file. Do not edit by hand: rerun the "
             "script, or re-render from the saved results with `python3 bench/run_bench.py --report-only`.\n")
    if args.quick:
        L.append("> **Quick run** (`--quick`): reduced sizes, iterations and one round. "
                 "The numbers are indicative only; run `scripts/bench.sh` for the full suite.\n")
    L.append("## Machine and run\n")
    L.append(table(["fact", "value"], [
        ["CPU", facts["cpu"]], ["cores (online)", str(facts["cores"])], ["kernel", facts["kernel"]],
        ["date", t_start.strftime("%Y-%m-%d %H:%M:%S %Z").strip()],
        ["duration", f"{(t_end - t_start).total_seconds():.0f} s"],
        ["load average at start / end", f"{facts['load']} / {facts.get('load_end', '?')}"],
        ["rounds", str(args.rounds)],
        ["iceoryx", runner.iox_status or "not tried"],
        ["runs kept / total", f"{sum(1 for r in R if r['kept'])} / {len(R)} "
                              f"(every run, with its probes: [bench/{RUNS_FILE}](bench/{RUNS_FILE}))"],
    ]))
    L.append("")
    L.append("""## Method

* Every case forks two (or more) processes: the measuring side pinned to CPU 0, the peer(s) to
  CPU 1 (`sched_setaffinity`). Times come from the TSC (constant, nonstop) except the wake-up,
  stream and fan-out cases, whose one-way latency is `CLOCK_MONOTONIC` at receipt minus the
  stamp the sender wrote into the message.
* **Probes.** Before and after every run the driver runs a short two-process atomic ping-pong
  (4,000 round trips) and records its one-way median: the cost of handing one cache line from
  one core to the other. The host moves this guest's vCPUs, and this cost switches between
  about 0.28, 0.085 and 0.04 µs. Each run is labelled with its **placement**: A (< 0.06 µs),
  B (< 0.17 µs) or C (≥ 0.17 µs). A run whose two probes fall in different placements or differ
  by more than 50 % is **dropped**.
* **Rounds.** Each case runs shmbus and every peer back to back; the order rotates every
  round. **Every ratio is formed within one round between runs of the same placement**, and
  the ratios are summarised by their median over rounds, per placement.
* One-way latency = round trip / 2, ping and pong on two topics (two queues, sockets, words).
  The message carries the round-trip counter in its first 8 bytes; the rest of the payload is
  neither written nor read per message (zero-copy transports: 8 bytes of the loaned chunk;
  copying transports copy the whole payload because that is what they do). `floor+memcpy`
  is the floor plus one `memcpy` of the payload into shared memory per hop. `floor+line` is
  the floor with the payload in a cache line of its own, named by the word: the receiver can
  ask for that line only once the word has arrived, as in every transport that does not put
  the payload in the line it signals with (zero-copy ones among them). Zero-copy ends hold
  the request until their reply is published, then release it, as a request/reply server
  does: a release is no part of a message's delivery.
* Throughput: the producer writes every byte of every payload, the consumer (busy-polling)
  reads every byte (sums it as 64-bit words). shmbus uses the `block` slow-subscriber policy
  (lossless) with a queue of 64 (64 B) or 16 (1 MiB); the raw ring has as many slots;
  iceoryx uses `WAIT_FOR_CONSUMER` / `BLOCK_PRODUCER` with the same queue capacity.
* Percentiles over one run's samples; tables show the median over kept runs of each statistic.
""")

    # ---------------- targets
    L.append("## Targets\n")
    trows = []
    r1 = paired_ratio(R, {"group": "lat", "label": "shmbus", "size": 64}, {"group": "lat", "label": "floor", "size": 64})
    txt, v = ratio_cell(r1)
    trows.append(["64 B one-way latency, busy-poll: shmbus median ≤ 2× floor", txt, verdict(v, 2.0)])
    r1b = paired_ratio(R, {"group": "lat", "label": "shmbus (block policy)", "size": 64}, {"group": "lat", "label": "floor", "size": 64})
    txt, v = ratio_cell(r1b)
    trows.append(["(the same with the topic's policy `block` instead of the default `drop_oldest`)", txt, verdict(v, 2.0)])
    r1l = paired_ratio(R, {"group": "lat", "label": "shmbus", "size": 64}, {"group": "lat", "label": "floor+line", "size": 64})
    txt, _ = ratio_cell(r1l)
    trows.append(["(for reference, no target: shmbus's 64 B latency against `floor+line`, the floor with the payload in a line of its own)", txt, "n/a"])
    r2 = paired_ratio(R, {"group": "lat", "label": "shmbus", "size": 16 * MiB}, {"group": "lat", "label": "shmbus", "size": 64})
    txt, v = ratio_cell(r2)
    trows.append(["16 MiB one-way latency ≤ 1.2× the 64 B figure (payload not read)", txt, verdict(v, 1.2)])
    r3 = paired_ratio(R, {"group": "wake", "label": "shmbus block"}, {"group": "wake", "label": "futex (raw)"})
    txt, v = ratio_cell(r3)
    trows.append(["Asleep ≥ 1 ms: shmbus (block) wake-up median ≤ 1.2× raw futex", txt, verdict(v, 1.2)])
    if runner.iox_status and runner.iox_status.startswith("ok"):
        r3b = paired_ratio(R, {"group": "wake", "label": "shmbus block"}, {"group": "wake", "label": "iceoryx WaitSet"})
        txt, v = ratio_cell(r3b)
        trows.append(["Asleep ≥ 1 ms: shmbus wake-up median below iceoryx WaitSet's (ratio < 1)", txt, verdict(v, 1.0)])
    else:
        trows.append(["Asleep ≥ 1 ms: below iceoryx WaitSet", "iceoryx " + (runner.iox_status or "not run"), "n/a"])
    r4 = paired_ratio(R, {"group": "stream", "label": "shmbus adaptive"}, {"group": "stream", "label": "shmbus busy-poll"})
    txt, v = ratio_cell(r4)
    trows.append(["Adaptive, steady 100,000 msg/s: median ≤ 2× busy-poll", txt, verdict(v, 2.0)])
    idle = kept(R, group="idle", label="shmbus adaptive (idle)")
    iv = med(idle, "idle_cpu_percent")
    base = med(kept(R, group="idle", label="futex (raw, one wait)"), "idle_cpu_percent")
    base_s = med(kept(R, group="idle", label="futex (raw, 100 ms slices)"), "idle_cpu_percent")
    trows.append(["Idle adaptive subscriber uses no measurable CPU (≤ 0.1 % of a core)",
                  (f"{fmt(iv)} % of one core ({fmt(med(idle, 'idle_cpu_us'))} µs CPU over {fmt(med(idle, 'idle_seconds'))} s); "
                   f"a bare FUTEX_WAIT process is charged {fmt(base)} % (one wait) / {fmt(base_s)} % (100 ms slices) here")
                  if iv is not None else "no kept run",
                  verdict(iv, 0.1)])
    def syscalls(label):
        rs = [r for r in R if r["group"] == "stream" and r["label"] == label and "error" not in r]
        return [int(r["sender_syscalls"]) for r in rs if r.get("sender_syscalls") is not None and r["sender_syscalls"] >= 0], rs
    sc, rs = syscalls("shmbus busy-poll")
    sca, _ = syscalls("shmbus adaptive")
    trows.append(["Publish makes no system call when nobody sleeps (busy-poll subscriber)",
                  (f"publisher syscalls (raw_syscalls:sys_enter on its thread) over each {int(rs[0].get('n', 0)) + 1000:,}-message "
                   f"stream: {', '.join(map(str, sc))}. With an adaptive subscriber: {', '.join(map(str, sca))} "
                   "(non-zero when the subscriber outlasted its 50 µs spin, e.g. after being descheduled, and slept: "
                   "a wake is then due)") if sc else "syscall counter unavailable (tracefs/perf_event_open)",
                  ("**met**" if sc and max(sc) == 0 else ("**missed**" if sc else "n/a"))])
    if runner.iox_status and runner.iox_status.startswith("ok"):
        r5 = paired_ratio(R, {"group": "tput", "label": "shmbus", "size": 64}, {"group": "tput", "label": "iceoryx", "size": 64}, key="msgs_per_s")
        txt, v = ratio_cell(r5)
        trows.append(["64 B throughput ≥ 10× iceoryx", txt, verdict(v, 10.0, le=False)])
    else:
        trows.append(["64 B throughput ≥ 10× iceoryx", "iceoryx " + (runner.iox_status or "not run"), "n/a"])
    r6 = paired_ratio(R, {"group": "tput", "label": "shmbus", "size": 64}, {"group": "tput", "label": "raw SPSC ring", "size": 64}, key="msgs_per_s")
    txt, v = ratio_cell(r6)
    trows.append(["64 B throughput ≥ 0.25× raw SPSC ring", txt, verdict(v, 0.25, le=False)])
    r7 = paired_ratio(R, {"group": "tput", "label": "shmbus", "size": MiB}, {"group": "tput", "label": "raw SPSC ring", "size": MiB}, key="msgs_per_s")
    txt, v = ratio_cell(r7)
    trows.append(["1 MiB throughput ≥ 0.95× raw SPSC ring", txt, verdict(v, 0.95, le=False)])
    rc1 = paired_ratio(R, {"group": "lat", "label": "shmbus C API", "size": 64}, {"group": "lat", "label": "shmbus", "size": 64})
    txt, v = ratio_cell(rc1)
    trows.append(["C API: 64 B one-way latency ≤ 1.1× the C++ API's", txt, verdict(v, 1.1)])
    rc2 = paired_ratio(R, {"group": "tput", "label": "shmbus C API", "size": 64}, {"group": "tput", "label": "shmbus", "size": 64}, key="msgs_per_s")
    txt, v = ratio_cell(rc2)
    trows.append(["C API: 64 B throughput ≥ 1/1.1 (0.91) × the C++ API's", txt, verdict(v, 1 / 1.1, le=False)])
    if not args.quick:
        rs1 = paired_ratio(R, {"group": "svc", "label": "shmbus service call"}, {"group": "svc", "label": "shmbus pub/sub ping-pong"})
        txt, v = ratio_cell(rs1)
        trows.append(["Request/response round trip at 64 B ≤ 1.2× two hops of shmbus pub/sub (busy-poll)", txt, verdict(v, 1.2)])
        if runner.iox_status and runner.iox_status.startswith("ok"):
            rs2 = paired_ratio(R, {"group": "svc", "label": "iceoryx client/server"}, {"group": "svc", "label": "shmbus service call"})
            txt, v = ratio_cell(rs2)
            trows.append(["Request/response round trip at 64 B ≥ 5× faster than iceoryx 2.0's client/server", txt, verdict(v, 5.0, le=False)])
    r8 = paired_ratio(R, {"group": "fanout", "label": "shmbus block", "subs": 8}, {"group": "fanout", "label": "shmbus block", "subs": 1}, key="send_median_us")
    txt, v = ratio_cell(r8)
    trows.append(["Fan-out to 8 blocking subscribers: publisher cost ≤ 2× with one", txt, verdict(v, 2.0)])
    L.append(table(["target", "measured ratio (median over rounds, per placement)", "verdict"], trows))
    L.append("")
    notes = os.path.relpath(NOTES, os.path.dirname(os.path.abspath(path)))
    L.append(f"Why each target stands where it does, and what was built or tried to get there, with what "
             f"it gained: [bench/NOTES.md]({notes}).\n")

    # ---------------- tables
    lat_labels = ["floor", "floor+line", "floor+memcpy", "shmbus", "iceoryx", "uds (busy-poll)", "boost mq (busy-poll)"]
    sizes = sorted({r["size"] for r in R if r["group"] == "lat"})
    L.append("## One-way latency, busy-poll (µs)\n")
    L.append(table(["payload", "transport", "placement", "runs", "median", "p99", "p99.9", "samples/run"],
                   latency_rows(R, "lat", lat_labels, sizes)))
    L.append("")
    if "latency_vs_size.png" in plots:
        L.append("![latency vs payload size](bench/latency_vs_size.png)\n")
    L.append("## One-way latency, sleeping waits, 64 B (µs)\n")
    L.append("Both sides sleep between messages, so every hop pays a wake-up. `futex (raw)` is the floor "
             "for sleeping: a bare FUTEX_WAKE / FUTEX_WAIT pair between the two processes.\n")
    L.append(table(["payload", "transport", "placement", "runs", "median", "p99", "p99.9", "samples/run"],
                   latency_rows(R, "latblock", ["futex (raw)", "shmbus block", "shmbus adaptive", "iceoryx WaitSet",
                                                "uds (blocking)", "boost mq (blocking)"], [64])))
    L.append("")
    if "latency_percentiles.png" in plots:
        L.append("![latency percentiles](bench/latency_percentiles.png)\n")
    L.append("## Wake-up latency: subscriber asleep ≥ 1 ms before each message (µs)\n")
    L.append("The sender waits until the receiver has been waiting 1.2 ms, stamps `CLOCK_MONOTONIC` into the "
             "message and sends; latency is receipt minus stamp. `send` is what the send call cost the sender.\n")
    rows = []
    for lab in ["futex (raw)", "shmbus block", "shmbus adaptive", "iceoryx WaitSet", "uds (blocking)"]:
        for pl, rs in sorted(summarise(R, "wake", lab).items()):
            rows.append([lab, pl, str(len(rs)), med(rs, "median_us"), med(rs, "p99_us"), med(rs, "p999_us"),
                         med(rs, "send_median_us")])
    L.append(table(["transport", "placement", "runs", "median", "p99", "p99.9", "send median"], rows))
    L.append("")
    L.append("## Steady stream at 100,000 messages/s, 64 B (µs)\n")
    rows = []
    for lab in ["shmbus busy-poll", "shmbus adaptive", "shmbus block"]:
        for pl, rs in sorted(summarise(R, "stream", lab).items()):
            rows.append([lab, pl, str(len(rs)), med(rs, "median_us"), med(rs, "p99_us"), med(rs, "p999_us"),
                         med(rs, "send_median_us"), med(rs, "sender_syscalls_per_msg")])
    L.append(table(["subscriber", "placement", "runs", "median", "p99", "p99.9", "publish median", "publisher syscalls/msg"], rows))
    L.append("")
    rows = []
    for lab in ["shmbus adaptive (idle)", "shmbus block (idle)", "futex (raw, one wait)", "futex (raw, 100 ms slices)"]:
        for pl, rs in sorted(summarise(R, "idle", lab).items()):
            rows.append([lab, pl, str(len(rs)), med(rs, "idle_seconds"), med(rs, "idle_cpu_us"), med(rs, "idle_cpu_percent")])
    L.append("Idle subscriber (no messages), CPU time it used while waiting:\n")
    L.append(table(["subscriber", "placement", "runs", "waited s", "CPU µs", "% of a core"], rows))
    L.append("")
    L.append("## Throughput (subscriber reads every byte)\n")
    rows = []
    for s in (64, MiB):
        for lab in ["raw SPSC ring", "shmbus", "iceoryx", "uds", "boost mq"]:
            for pl, rs in sorted(summarise(R, "tput", lab, size=s).items()):
                rows.append([human(s), lab, pl, str(len(rs)), med(rs, "msgs_per_s"), med(rs, "gb_per_s")])
    L.append(table(["payload", "transport", "placement", "runs", "messages/s", "GB/s"], rows))
    L.append("")
    if "throughput.png" in plots:
        L.append("![throughput](bench/throughput.png)\n")
    if not args.quick:
        L.append("## Request/response, 64 B, busy-poll (µs, half a round trip)\n")
        L.append("`shmbus service call`: ServiceClient::send + PendingCall::receive against a ServiceServer's "
                 "take + respond, one call per round trip; `shmbus pub/sub ping-pong` is the same exchange as two "
                 "topics; `iceoryx client/server`: popo::UntypedClient/UntypedServer through RouDi, the client "
                 "matching each response's sequence id. Calls in flight: 16 outstanding, counted at the server.\n")
        rows = []
        for lab in ["shmbus pub/sub ping-pong", "shmbus service call", "iceoryx client/server"]:
            for pl, rs in sorted(summarise(R, "svc", lab).items()):
                rows.append([lab, pl, str(len(rs)), med(rs, "median_us"), med(rs, "p99_us"), med(rs, "p999_us")])
        L.append(table(["transport", "placement", "runs", "median", "p99", "p99.9"], rows))
        L.append("")
        rows = []
        for lab in ["shmbus service, 16 calls in flight", "shmbus pub/sub"]:
            for pl, rs in sorted(summarise(R, "svctput", lab).items()):
                rows.append([lab, pl, str(len(rs)), med(rs, "msgs_per_s")])
        L.append(table(["transport", "placement", "runs", "calls/s or messages/s"], rows))
        rt = paired_ratio(R, {"group": "svctput", "label": "shmbus service, 16 calls in flight"},
                          {"group": "svctput", "label": "shmbus pub/sub"}, key="msgs_per_s")
        L.append(f"\nCalls per second against one-way pub/sub messages per second in the same rounds: {ratio_cell(rt)[0]} "
                 "(a call is two messages, a request and its response).")
        L.append("")
    L.append("## Fan-out: one publisher, N blocking subscribers, 64 B\n")
    L.append("Subscribers (all on CPU 1) are asleep before each message (300 µs gap). `send` is the "
             "publisher's cost per message (loan + write + publish, or one write per socket); latency is "
             "the first subscriber's wake-up latency.\n")
    rows = []
    for lab in ["futex (raw, wake all)", "shmbus block", "iceoryx WaitSet", "uds (blocking)"]:
        for n in (1, 2, 4, 8):
            for pl, rs in sorted(summarise(R, "fanout", lab, extra={"subs": n}).items()):
                rows.append([lab, str(n), pl, str(len(rs)), med(rs, "send_median_us"), med(rs, "send_p99_us"), med(rs, "median_us")])
    L.append(table(["transport", "subscribers", "placement", "runs", "send median µs", "send p99 µs", "latency median µs"], rows))
    L.append("")
    L.append("## Resident memory\n")
    L.append("After 10,000 round trips of 64 B: VmRSS and Pss (from `/proc/self/status`, `/proc/self/smaps_rollup`) "
             "of the pinging (publisher of ping, subscriber of pong) and the ponging process. Shared pages count "
             "fully in RSS and proportionally in Pss.\n")
    rows = []
    for lab in ["shmbus", "iceoryx", "uds", "boost mq"]:
        rs = kept(R, group="rss", label=lab) or [r for r in R if r["group"] == "rss" and r["label"] == lab and "error" not in r]
        if rs:
            rows.append([lab, med(rs, "pinger_rss_kb"), med(rs, "pinger_pss_kb"), med(rs, "ponger_rss_kb"), med(rs, "ponger_pss_kb")])
    roudi = [r for r in R if r["group"] == "rss" and r["label"] == "iceoryx" and r.get("roudi")]
    if roudi:
        m = roudi[-1]["roudi"]
        rows.append(["iceoryx RouDi daemon", m.get("rss_kb"), m.get("pss_kb"), "", ""])
    rows.append(["shmbus daemon (shmbusd)", "not measured (it is off the data path)", "", "", ""])
    L.append(table(["process", "pinger VmRSS KiB", "pinger Pss KiB", "ponger VmRSS KiB", "ponger Pss KiB"], rows))
    L.append("")
    L.extend(durable_section(getattr(runner, "durable", [])))
    bridge = getattr(runner, "bridge", [])
    if bridge:
        L.append("## NATS bridge: bus -> NATS -> bus (docs/bridge.md)\n")
        L.append("`shmbus_bridge_bench 100000 3`: one nats-server on loopback, two buses and two `shmbus-bridge`s on this "
                 "machine, against the NATS C client's own publish -> subscribe (and ping-pong) through the same server. "
                 "Same message count and end (all received, or 2 s without any), both receivers sleep while idle; each "
                 "round measures the client, then the bridge; medians over the rounds. Targets (issue 18): throughput "
                 ">= 0.8x, latency <= 1.2x.\n")
        rows = []
        for c in bridge:
            if c.get("case") == "throughput":
                rows.append([f"throughput, {human(c['size'])}", f"{c['nats_msg_s']:,.0f} msg/s", f"{c['bridge_msg_s']:,.0f} msg/s",
                             f"{c['ratio']:.2f}", ">= 0.8"])
            elif c.get("case") == "latency":
                rows.append([f"latency, {human(c['size'])}, one way, median", f"{c['nats_us']:.1f} µs", f"{c['bridge_us']:.1f} µs",
                             f"{c['ratio']:.2f}", "<= 1.2"])
        L.append(table(["case", "NATS client", "bus -> NATS -> bus", "ratio", "target"], rows))
        L.append("")
    L.extend(metrics_cost.section(getattr(runner, "metrics_cost", {})))
    with open(path, "w") as f:
        f.write("\n".join(L))


def durable_section(cases):
    """Durable topics (bench/durable_bench.cpp, one run, each case beside its floor)."""
    if not cases:
        return []
    L = ["## Durable topics (shmbus_durable_bench)\n",
         "One process, every case beside its floor in the same run. Append times are this thread's CPU "
         "time per message (page faults and populate calls included; on a loaded machine the wall time is "
         "mostly preemption). `pages` says how the log and the raw mmap loop meet fresh file pages: `cold` "
         "(a fault each), `ahead` (populated ahead of the writer, the appender's default), `prefaulted` "
         "(before the timed loop: the fair comparison with the in-memory topic, whose chunks are recycled "
         "warm). Why: [bench/NOTES.md](../bench/NOTES.md).\n"]
    app = [c for c in cases if c.get("case") == "append" and "durable_cpu_ns" in c]
    if app:
        L.append(table(["size B", "pages", "durable ns", "topic ns", "raw mmap ns", "durable vs topic", "durable vs raw (target ≥ 0.8×)"],
                       [[str(c["size"]), c["pages"], f'{c["durable_cpu_ns"]:.0f}', f'{c["topic_cpu_ns"]:.0f}',
                         f'{c["raw_mmap_cpu_ns"]:.0f}', f'{c["durable_vs_topic"]:.2f}×', f'{c["durable_vs_raw_mmap"]:.2f}×'] for c in app]))
        L.append("")
        floors = [c for c in app if "floor_cpu_ns" in c]
        if floors:
            L.append("The floor of a log with a time index, built up from the raw loop in the same run: "
                     "+ a stamp per record (CLOCK_REALTIME, or the TSC through the appender's StampClock), + a claim "
                     "by a locked fetch_add, + a release commit store; and the exclusive appender (no locked claim).\n")
            fl = lambda c, k: f'{c["floor_cpu_ns"].get(k, float("nan")):.0f}'
            L.append(table(["size B", "pages", "raw ns", "+stamp", "+stamp+claim", "+stamp+claim+commit", "+tsc", "+tsc+commit",
                            "+tsc+claim+commit", "durable ns", "exclusive ns", "durable vs floor"],
                           [[str(c["size"]), c["pages"], f'{c["raw_mmap_cpu_ns"]:.0f}', fl(c, "raw+stamp"), fl(c, "raw+stamp+claim"),
                             fl(c, "raw+stamp+claim+commit"), fl(c, "raw+tsc"), fl(c, "raw+tsc+commit"), fl(c, "raw+tsc+claim+commit"),
                             f'{c["durable_cpu_ns"]:.0f}', f'{c.get("durable_exclusive_cpu_ns", float("nan")):.0f}',
                             f'{c["durable_vs_floor"]:.2f}×'] for c in floors]))
            L.append("")
    rows = []
    for c in cases:
        if c.get("case") == "latency":
            rows.append(["live subscriber, busy-poll, 64 B one-way (median / p99)",
                         f'{c["durable_median_ns"]:.0f} / {c["durable_p99_ns"]:.0f} ns',
                         f'topic {c["topic_median_ns"]:.0f} / {c["topic_p99_ns"]:.0f} ns',
                         f'{c["durable_over_topic_median"]:.2f}× the topic (≤ 1.5×)'])
        elif c.get("case") == "replay":
            rows.append([f'replay {c["bytes"] / 2**30:.2f} GiB from the page cache', f'{c["durable_gb_s"]} GB/s',
                         f'raw scan {c["raw_scan_gb_s"]} GB/s', f'{c["durable_vs_raw_scan"]:.2f}× (≥ 0.8×)'])
        elif c.get("case") == "cold_replay":
            rows.append([f'cold replay, pages dropped by {c["dropped_by"]} (still resident: {c["resident_after_drop"]})',
                         f'{c["durable_gb_s"]} GB/s', f'read() {c["read_gb_s"]} GB/s', f'{c["durable_vs_read"]:.2f}× (report)'])
        elif c.get("case") == "lookup":
            rows.append([f'lookup in {c["messages"]:,} messages ({c["segments"]} segments)',
                         f'by sequence {c["by_sequence_us"]} µs, by time {c["by_time_us"]} µs', "", "not linear"])
    if rows:
        L.append(table(["case", "durable", "floor", "ratio (target)"], rows))
        L.append("")
    return L


def write_runs(path, results, t_start):
    """The log of every run: docs/bench/runs.md beside the plots."""
    R = results
    L = ["# Every run of the benchmark, with its probes\n",
         f"The runs behind [BENCHMARKS.md](../{os.path.basename(path)}) "
         f"({t_start.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}), in the order they ran. Probe = one-way median of "
         "the atomic ping-pong right before / after the run (µs); a run whose probes disagree is dropped "
         "(BENCHMARKS.md, \"Method\").\n"]
    rows = []
    for r in R:
        main = r.get("median_us")
        unit = "µs median"
        if r["group"] == "tput":
            main, unit = r.get("msgs_per_s"), "msgs/s"
        elif r["group"] == "idle":
            main, unit = r.get("idle_cpu_percent"), "% CPU"
        elif r["group"] == "fanout":
            main, unit = r.get("send_median_us"), "µs send median"
        elif r["group"] == "rss":
            main, unit = r.get("pinger_rss_kb"), "KiB RSS"
        size = human(r["size"]) if r.get("size") else ""
        if r["group"] == "fanout":
            size = f"{r.get('subs')} subs"
        rows.append([str(r["round"]), r["group"], r["label"], size, fmt(r.get("probe_before")), fmt(r.get("probe_after")),
                     r["placement"], "kept" if r["kept"] else "dropped: " + r.get("why", ""), main, unit])
    L.append(table(["round", "case", "transport", "size", "probe before", "probe after", "placement", "status", "value", "unit"], rows))
    L.append("")
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), "bench", RUNS_FILE), "w") as f:
        f.write("\n".join(L))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    ap.add_argument("--no-iceoryx", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report, runs.md and plots from the saved results.json beside --out "
                         "(docs/bench/results.json), measuring nothing and needing no build")
    args = ap.parse_args()
    # SIGTERM (CI timeouts, kill) unwinds like Ctrl-C, so RouDi is stopped in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    plots_dir = os.path.join(os.path.dirname(os.path.abspath(args.out)), "bench")
    os.makedirs(plots_dir, exist_ok=True)
    if args.report_only:
        log = open(os.path.join(args.build, "bench-run.log") if os.path.isdir(args.build) else os.devnull, "w")
        runner = Runner(args.build, log)
        saved_path = os.path.join(plots_dir, "results.json")
        if not os.path.exists(saved_path):
            sys.exit(f"--report-only: no saved results at {saved_path}")
        with open(saved_path) as f:
            saved = json.load(f)
        runner.results = saved["results"]
        runner.iox_status = saved.get("iox_status")
        runner.durable = saved.get("durable", [])
        runner.bridge = saved.get("bridge", [])
        runner.metrics_cost = saved.get("metrics_cost", {})
        facts = saved["facts"]
        t_start = datetime.datetime.fromisoformat(saved["t_start"])
        t_end = datetime.datetime.fromisoformat(saved["t_end"])
        args.quick, args.rounds = saved["quick"], saved["rounds"]
        have_iox = bool(runner.iox_status and runner.iox_status.startswith("ok"))
        finish(args, runner, facts, plots_dir, log, have_iox, t_start, t_end, save=False)
        return
    log = open(os.path.join(args.build, "bench-run.log"), "w")
    runner = Runner(args.build, log)
    if not os.path.exists(runner.bench):
        sys.exit(f"{runner.bench} not built")
    facts = machine_facts()
    t_start = datetime.datetime.now().astimezone()
    have_iox = False
    if args.no_iceoryx:
        runner.iox_status = "skipped, because --no-iceoryx was given"
    else:
        have_iox = runner.start_roudi()
    print(f"iceoryx: {runner.iox_status}", flush=True)
    try:
        groups = suite(args.quick, have_iox)
        for rnd in range(args.rounds):
            print(f"round {rnd + 1}/{args.rounds}", flush=True)
            for g in groups:
                k = rnd % len(g)
                for group, label, binary, argv in g[k:] + g[:k]:
                    extra = {}
                    if group == "fanout":
                        extra["subs"] = int(argv[argv.index("--subs") + 1])
                    r = runner.run(group, label, binary, argv, rnd, extra)
                    if group == "rss" and label == "iceoryx":
                        r["roudi"] = runner.roudi_memory()
        runner.durable = run_durable_bench(args.build, args.quick, log)
        runner.bridge = [] if args.quick else run_bridge_bench(args.build, log)
        runner.metrics_cost = {} if args.quick else metrics_cost.run(args.build, log)
    finally:
        runner.stop_roudi()
    t_end = datetime.datetime.now().astimezone()
    facts["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    finish(args, runner, facts, plots_dir, log, have_iox, t_start, t_end, save=True)


def run_durable_bench(build, quick, log):
    """Durable topics (bench/durable_bench.cpp): one run, each case beside its floor in the
    same process; the ratios are printed and kept in results.json under "durable"."""
    binary = os.path.join(build, "bench", "shmbus_durable_bench")
    if not os.path.exists(binary):
        print(f"durable: {binary} not built, skipped", flush=True)
        return []
    argv = [binary] + (["--quick"] if quick else [])
    log.write("$ " + " ".join(argv) + "\n")
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=log, text=True, timeout=600)
    cases = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    for c in cases:
        print("  durable " + " ".join(f"{k}={v}" for k, v in c.items()), flush=True)
    if p.returncode != 0:
        print(f"durable: exit {p.returncode} (see {log.name})", flush=True)
    return cases


def run_bridge_bench(build, log):
    """The NATS bridge (bridge/tests/bridge_bench.cpp), full runs only: bus -> NATS -> bus
    beside the NATS C client alone through the same nats-server, alternating in rounds within
    one run; the medians are kept in results.json under "bridge"."""
    binary = os.path.join(build, "bridge", "shmbus_bridge_bench")
    if not os.path.exists(binary):
        print(f"bridge: {binary} not built (needs libnats-dev and nats-server), skipped", flush=True)
        return []
    argv = [binary, "100000", "3"]
    log.write("$ " + " ".join(argv) + "\n")
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=log, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        print("bridge: timed out after 600 s, skipped", flush=True)
        return []
    cases = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    for c in cases:
        print("  bridge " + " ".join(f"{k}={v}" for k, v in c.items()), flush=True)
    if p.returncode != 0:
        print(f"bridge: exit {p.returncode} (see {log.name})", flush=True)
    return cases


def finish(args, runner, facts, plots_dir, log, have_iox, t_start, t_end, save):
    plots = write_plots(runner.results, plots_dir, have_iox, log)
    if isinstance(plots, str):
        print(plots)
        plots = []
        if not save:  # re-rendering saved results: the plots already drawn from them still hold
            plots = [p for p in PLOTS if os.path.exists(os.path.join(plots_dir, p))]
            if plots:
                print(f"keeping the plots already in {plots_dir}: {', '.join(plots)}")
    write_report(args.out, plots_dir, runner.results, facts, args, runner, plots, t_start, t_end)
    write_runs(args.out, runner.results, t_start)
    if save:
        with open(os.path.join(plots_dir, "results.json"), "w") as f:
            json.dump({"facts": facts, "quick": args.quick, "rounds": args.rounds, "iox_status": runner.iox_status,
                       "t_start": t_start.isoformat(), "t_end": t_end.isoformat(), "results": runner.results,
                       "durable": getattr(runner, "durable", []), "bridge": getattr(runner, "bridge", []),
                       "metrics_cost": getattr(runner, "metrics_cost", {})}, f, indent=1)
    print(f"wrote {args.out} ({sum(1 for r in runner.results if r['kept'])}/{len(runner.results)} runs kept), "
          f"plots {', '.join(plots) or 'none'}; log {log.name}")


if __name__ == "__main__":
    main()
