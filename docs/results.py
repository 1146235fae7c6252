"""Results as data: every generated table of README.md and docs/ comes from a file in docs/data/.

    python docs/results.py list                      # the results, their commands and files
    python docs/results.py refresh                   # re-measure every fast result, then rewrite the docs
    python docs/results.py refresh --only speed      # one result (repeatable)
    python docs/results.py refresh --render-only     # rewrite the docs from the committed files only
    python docs/results.py check                     # exit 1 if a doc or a result file is stale

Run it from the root of the checkout; data, runs and the dev split live next to the checkout
(``../data/widerface``, ``../runs``, ``../dev``), as in ``configs/``. Measurements that take a core
should be run with the thread setting they state, e.g. ``OMP_NUM_THREADS=1 taskset -c 1 python
docs/results.py refresh --load "machine shared with a training job"``; the machine (CPU model, logical
and usable cores, threads, load average and ``--load``) is written into each result file.

Each result ``NAME`` has a file ``docs/data/NAME.json``::

    {"name", "command", "git_commit", "date", "machine": {"cpu", "cores", "usable_cores", "threads",
     "load"}, "versions": {...}, "weights": "packaged" | "historical: ..." | "...",
     "weights_sha256": {"v2_ultra": ...} | {}, "data": ...}

and a block in one Markdown file::

    <!-- results:NAME -->
    ... generated: the source line and the table ...
    <!-- /results:NAME -->

``refresh`` rewrites what is between the markers from the file; ``check`` (run by
``tests/test_results_docs.py``) fails when a block differs from its rendered file, when a registered
result has no block or no file, or when a result file cites ``v2_ultra`` weights whose sha256 is not
that of the packaged file (``src/featherface/weights/v2_ultra/model.safetensors``) without declaring
itself historical (``"weights": "historical: ..."``, rendered with that label). After new weights are
packaged, ``python docs/results.py refresh`` re-measures every result that depends on them.

Results without a measuring function are committed historical measurements: ``refresh`` only
renders them, and their source line says so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"
PACKAGED_V2_ULTRA = ROOT / "src" / "featherface" / "weights" / "v2_ultra" / "model.safetensors"
SHARED = Path(os.environ.get("FEATHERFACE_SHARED", ROOT.parent / "shared"))
WIDERFACE = ROOT.parent / "data" / "widerface"
REFERENCE_V1 = SHARED / "data" / "weights" / "featherface_v1_reference.safetensors"
DOC_FILES = ("README.md", "docs/*.md")
MARKER = re.compile(r"<!-- results:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /results:(?P=name) -->", re.S)


# -- provenance -------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    from featherface._weights.files import sha256_file

    return sha256_file(path)


def packaged_sha256() -> str:
    """sha256 of the packaged v2_ultra weights, read now (they change when new weights ship)."""
    return sha256(PACKAGED_V2_ULTRA)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine(threads: int | str | None, load: str | None) -> dict[str, Any]:
    from featherface._bench import cpu_model

    cpu = cpu_model()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    note = load or "not stated"
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "threads": threads,
            "load": note, "load_average_1min_at_start": round(load_avg, 2) if load_avg is not None else None,
            "platform": platform.platform()}


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for mod in ("featherface", "torch", "onnxruntime", "cv2", "numpy"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            out[mod] = None
    return out


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    """Run a measuring command from the root of the checkout; its stdout."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(env or {})}
    sys.stderr.write("results: $ " + " ".join(cmd) + "\n")
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc.stdout


def env_threads() -> int | str:
    v = os.environ.get("OMP_NUM_THREADS")
    return int(v) if v and v.isdigit() else "torch default"


def converted_reference_v1(tmp: str) -> str:
    """The authors' V1 weights converted into a folder under ``tmp`` (what ``--weights v1=`` takes)."""
    if not REFERENCE_V1.is_file():
        raise RuntimeError(f"needs the authors' V1 weights at {REFERENCE_V1} (set FEATHERFACE_SHARED)")
    out = str(Path(tmp) / "reference_v1")
    run([sys.executable, "-m", "featherface", "convert-reference", str(REFERENCE_V1), out])
    return out


# -- rendering helpers ------------------------------------------------------------------------------


def short(sha: str) -> str:
    return f"`{sha[:8]}…{sha[-4:]}`" if re.fullmatch(r"[0-9a-f]{64}", sha) else f"`{sha}`"


def source_line(rec: dict[str, Any]) -> str:
    """The line above every generated table: where the numbers come from, on what, with what."""
    m = rec["machine"]
    v = rec.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("torch", "onnxruntime") if v.get(k))
    weights = rec.get("weights", "")
    shas = rec.get("weights_sha256") or {}
    if shas:
        weights += " (" + ", ".join(f"{k} sha256 {short(s)}" for k, s in shas.items()) + ")"
    kind = ("Committed historical measurement, not re-measured by `refresh`"
            if rec.get("historical") else "Generated")
    cores = f"{m['usable_cores']} usable of {m['cores']} logical cores" if m.get("usable_cores") else \
        f"{m.get('cores', '?')} cores"
    threads = m.get("threads")
    threads_txt = f"{threads} thread(s)" if isinstance(threads, int) else (threads or "threads not recorded")
    return (f"*{kind}: `docs/data/{rec['name']}.json`, from `{rec['command']}` at commit "
            f"`{rec['git_commit'][:12]}`, {rec['date']}; {m['cpu']}, {cores}, {threads_txt}; "
            f"load: {m.get('load', 'not stated')}"
            + (f", 1-min load average {m['load_average_1min_at_start']} at start"
               if m.get("load_average_1min_at_start") is not None else "")
            + (f"; {libs}" if libs else "") + (f"; weights: {weights}" if weights else "") + ".*")


def md_table(columns: list[str], align: str, rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_generic(rec: dict[str, Any]) -> str:
    """A transcribed table: ``data = {"tables": [{"title", "columns", "align", "rows"}]}``."""
    parts = []
    for t in rec["data"]["tables"]:
        if t.get("title"):
            parts.append(t["title"] + "\n")
        parts.append(md_table(t["columns"], t["align"], t["rows"]) + "\n")
    return "\n".join(parts)


# -- results: measure + render ----------------------------------------------------------------------


def measure_small_faces() -> dict[str, Any]:
    out = run([sys.executable, "examples/small_faces.py", "--json"])
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {"command": "python examples/small_faces.py --json", "threads": env_threads(),
            "weights": "packaged", "weights_sha256": {"v2_ultra": packaged_sha256()}, "data": {"rows": rows}}


def render_small_faces(rec: dict[str, Any]) -> str:
    rows = rec["data"]["rows"]
    by_up: dict[float, dict[float, dict[str, Any]]] = {}
    for r in rows:
        by_up.setdefault(r["upscale"], {})[r["score_threshold"]] = r
    thresholds = sorted({r["score_threshold"] for r in rows})
    out = []
    for up, per_t in by_up.items():
        any_r = next(iter(per_t.values()))
        found = " / ".join(str(per_t[t]["found"]) for t in thresholds) + f" of {any_r['faces']}"
        mid = per_t.get(0.5) or per_t[thresholds[len(thresholds) // 2]]
        heights = [int(h) for h, (k, _n) in mid["found_per_height"].items() if k > 0]
        smallest = f"{min(heights)} px" if heights else "none"
        false = " / ".join(str(per_t[t]["false_detections"]) for t in thresholds)
        out.append([f"{up:g}" + (" (original size)" if up == 1 else ""), found, smallest, false,
                    f"{any_r['ms']:g}"])
    ts = " / ".join(f"{t:g}" for t in thresholds)
    table = md_table(["upscale (`input_size`)", f"faces found at score {ts}", "smallest height found at 0.5",
                      f"false detections at {ts}", "detect ms (one call, indicative)"], "lllll", out)
    return source_line(rec) + "\n\n" + table + "\n"


def measure_speed() -> dict[str, Any]:
    threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        ref = converted_reference_v1(tmp)
        js = str(Path(tmp) / "bench.json")
        run([sys.executable, "-m", "featherface", "bench", "--models", "v1", "v2_ultra", "--sizes", "640x480",
             "--threads", str(threads), "--runs", "50", "--warmup", "5", "--weights", f"v1={ref}",
             "--json-out", js])
        report = json.loads(Path(js).read_text())
    rows = [{"model": r["model"], "backend": r["backend"], "weights": r.get("weights"),
             "p50_ms": r["latency_ms"]["total"]["p50"], "p90_ms": r["latency_ms"]["total"]["p90"],
             "detections": r.get("detections")} for r in report["results"] if "error" not in r]
    return {"command": "featherface bench --models v1 v2_ultra --sizes 640x480 --threads 1 --runs 50 --warmup 5 "
                       "--weights v1=reference_v1", "threads": threads,
            "weights": "packaged (v2_ultra); the authors' weights converted (v1)",
            "weights_sha256": {"v2_ultra": packaged_sha256(), "v1_reference": sha256(REFERENCE_V1)},
            "data": {"rows": rows, "runs": 50, "warmup": 5, "size": "640x480"}}


def render_speed(rec: dict[str, Any]) -> str:
    rows = {(r["model"], r["backend"]): r for r in rec["data"]["rows"]}
    out = []
    for model, label in (("v2_ultra", "`v2_ultra` (packaged weights)"), ("v1", "`v1` (authors' weights, converted)")):
        ort, tor = rows.get((model, "onnxruntime")), rows.get((model, "torch"))
        ratio = f"{tor['p50_ms'] / ort['p50_ms']:.2f}x" if ort and tor else "-"
        out.append([label, f"{ort['p50_ms']:.2f} ms" if ort else "-", f"{tor['p50_ms']:.2f} ms" if tor else "-", ratio])
    table = md_table(["model", "ONNX Runtime backend (`backend=\"onnxruntime\"`), p50", "torch backend (default), p50",
                      "torch / ONNX Runtime"], "lrrr", out)
    d = rec["data"]
    return (source_line(rec) + f" End to end on one {d['size']} image, median of {d['runs']} calls after "
            f"{d['warmup']} warm-up calls, each configuration in a fresh process.\n\n" + table + "\n")


def measure_bench() -> dict[str, Any]:
    threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        ref = converted_reference_v1(tmp)
        js = str(Path(tmp) / "bench.json")
        run([sys.executable, "-m", "featherface", "bench", "--threads", str(threads), "--runs", "10", "--warmup", "3",
             "--weights", f"v1={ref}", "--json-out", js])
        report = json.loads(Path(js).read_text())
    return {"command": "featherface bench --threads 1 --runs 10 --warmup 3 --weights v1=reference_v1", "threads": threads,
            "weights": "packaged (v2_ultra); the authors' weights converted (v1)",
            "weights_sha256": {"v2_ultra": packaged_sha256(), "v1_reference": sha256(REFERENCE_V1)},
            "data": report}


def render_bench(rec: dict[str, Any]) -> str:
    from featherface._bench import markdown_table

    table = markdown_table(rec["data"]).split("\n", 2)[2]  # drop its machine line: the source line has it
    return source_line(rec) + f" The run took {rec['data']['wall_s']:.0f} s.\n\n" + table


TARGETS = (("v2_ultra", "onnxruntime", 8.0), ("v2_ultra", "torch", 20.0), ("v1", "onnxruntime", 25.0))


def render_bench_targets(rec: dict[str, Any]) -> str:
    out = []
    res = [r for r in rec["data"]["results"] if "error" not in r and r["size"] == "640x480"]
    for model, backend, target in TARGETS:
        rows = [r for r in res if r["model"] == model and r["backend"] == backend]
        if not rows:
            continue
        r = max(rows, key=lambda r: r["threads"])
        lat = r["latency_ms"]
        p50 = lat["total"]["p50"]
        verdict = "met" if p50 <= target else f"missed (x{p50 / target:.2f})"
        out.append([f"`{model}`, {'ONNX Runtime' if backend == 'onnxruntime' else 'torch'}, <= {target:g} ms (2 threads)",
                    r["threads"], f"{p50:.2f} ms",
                    f"{lat['preprocess']['p50']:.2f} / {lat['network']['p50']:.2f} / {lat['postprocess']['p50']:.2f} ms",
                    verdict])
    out.append(["`v2_ultra`, CUDA, batch 64 at 640x640, >= 5,000 images/s", "-", "-", "-", "not measured (no GPU)"])
    return ("*From `docs/data/bench.json` (the table above); a verdict only holds for the threads and load "
            "stated there.*\n\n"
            + md_table(["target", "threads measured", "measured p50", "preprocess / network / postprocess p50",
                        "this run"], "lrrll", out) + "\n")


def _measure_profile(model: str) -> dict[str, Any]:
    threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--weights", converted_reference_v1(tmp)] if model == "v1" else []
        js = str(Path(tmp) / "profile.json")
        run([sys.executable, "benchmarks/profile_onnxruntime.py", "--model", model, *extra, "--size", "640x480",
             "--threads", str(threads), "--json-out", js])
        data = json.loads(Path(js).read_text())
    data.pop("header", None)
    weights_arg = " --weights reference_v1" if model == "v1" else ""
    shas = {"v1_reference": sha256(REFERENCE_V1)} if model == "v1" else {"v2_ultra": packaged_sha256()}
    return {"command": f"python benchmarks/profile_onnxruntime.py --model {model}{weights_arg} --size 640x480 "
                       f"--threads {threads} --json-out FILE",
            "threads": threads, "weights": "the authors' weights, converted" if model == "v1" else "packaged",
            "weights_sha256": shas, "data": data}


def _profile_table(title: str, us: dict[str, float], nodes: dict[str, int], runs: int, top: int) -> str:
    rows = sorted(us.items(), key=lambda kv: -kv[1])
    total = float(sum(us.values()))
    out = [[k, f"{v / runs / 1000:.3f}", f"{100 * v / total:.1f}%", nodes.get(k, 0) // runs] for k, v in rows[:top]]
    rest = rows[top:]
    if rest:
        v = sum(r[1] for r in rest)
        out.append([f"(other {len(rest)})", f"{v / runs / 1000:.3f}", f"{100 * v / total:.1f}%", ""])
    out.append(["**total**", f"**{total / runs / 1000:.3f}**", "100%", ""])
    return md_table([title, "ms per call (profiled)", "share", "nodes"], "lrrr", out)


def render_profile(rec: dict[str, Any], top: int) -> str:
    d = rec["data"]
    w, h = d["size"]
    head = (f" ONNX Runtime per-node profile of `{d['model']}` at {w}x{h}, {d['threads']} intra-op thread(s), "
            f"{d['runs']} calls; unprofiled network median {d['network_ms_unprofiled']:.2f} ms.")
    return (source_line(rec) + head + "\n\n"
            + _profile_table("operator", d["by_operator_us"], d["nodes_by_operator"], d["runs"], top) + "\n\n"
            + _profile_table("module", d["by_module_us"], d["nodes_by_module"], d["runs"], top) + "\n")


def measure_train_step_cost() -> dict[str, Any]:
    cfg = "configs/cpu/v2_ultra_s1_frozen.yaml"
    out = run([sys.executable, "benchmarks/train_step_cost.py", cfg, "--steps", "5", "--warmup", "2", "--json"],
              env={"OMP_WAIT_POLICY": "PASSIVE"})
    data = json.loads(out[out.index("{"):])
    return {"command": f"OMP_WAIT_POLICY=PASSIVE python benchmarks/train_step_cost.py {cfg} --steps 5 --warmup 2 --json",
            "threads": data["threads"], "weights": "teacher: the authors' V1 weights (student trained from them)",
            "weights_sha256": {"v1_reference": sha256(REFERENCE_V1)}, "data": data}


STEP_PARTS = (("data", "data (waiting for the loader worker)"), ("match", "matching"),
              ("backbone+teacher", "backbone + teacher (one ONNX Runtime call)"),
              ("student_forward", "student forward (neck and heads only)"), ("loss", "loss"),
              ("backward", "backward"), ("optimizer", "optimizer + EMA"))


def render_train_step_cost(rec: dict[str, Any]) -> str:
    d = rec["data"]
    med = d["median_ms"]
    rows = [[label, f"{med[k]:,.0f}"] for k, label in STEP_PARTS]
    rows.append(["**total**", f"**{med['total']:,.0f} ({d['images_per_s']:.1f} images/s)**"])
    return (source_line(rec) + f" Batch {d['batch_size']} at {d['image_size']} px, {d['workers']} loader "
            f"worker(s), shared backbone {d['shared_backbone']}; median over the timed steps.\n\n"
            + md_table([f"part of a step (batch {d['batch_size']})", "ms"], "lr", rows) + "\n")


def measure_deployment_latency() -> dict[str, Any]:
    threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        js = str(Path(tmp) / "dl.json")
        run([sys.executable, "benchmarks/deployment_latency.py", "--threads", str(threads), "--json-out", js])
        data = json.loads(Path(js).read_text())
    return {"command": f"python benchmarks/deployment_latency.py --threads {threads} --json-out FILE",
            "threads": threads, "weights": "random (seeded; latency does not depend on the values)",
            "weights_sha256": {}, "data": data}


DEPLOY_PATHS = {"torch unfused": "torch, unfused (`fuse=False`)",
                "torch fused": "torch, fused, NCHW (`channels_last=False`)",
                "torch fused+CL": "torch, fused + channels-last (default)", "onnxruntime": "onnxruntime"}


def render_deployment_latency(rec: dict[str, Any]) -> str:
    d = rec["data"]
    rows = [[f"`{r['model']}`", DEPLOY_PATHS.get(r["path"], r["path"]), f"{r['network_ms']:.1f}", f"{r['detect_ms']:.1f}"]
            for r in d["rows"]]
    h, w = d["size_hxw"]
    return (source_line(rec) + f" One {w}x{h} image, median of {d['runs']} interleaved rounds after "
            f"{d['warmup']} warm-up rounds.\n\n"
            + md_table(["model", "path", "network (ms)", "detect (ms)"], "llrr", rows) + "\n")


def render_training_log(rec: dict[str, Any]) -> str:
    rows = [[r["stage"], f"`{r['checkpoint']}`", f"{r['crops_total']:,}", f"{r['wall_hours_total']:.2f}",
             *(f"{r['dev'][k]:.2f}" for k in ("large", "medium", "all")),
             *(f"{r[part]['all']:.2f}" for part in ("wider", "extra"))] for r in rec["data"]["records"]]
    return (md_table(["stage", "weights", "crops seen (all stages)", "hours (all stages)", "dev AP >= 50 px",
                      ">= 20 px", "all", "WIDER part, all", "extra part, all"], "llrrrrrrr", rows) + "\n")


def render_dev_ablation(rec: dict[str, Any]) -> str:
    start = rec["data"]["start"]
    base = [start] if start else []
    rows = [[r["stage"] if r is not start else "packaged (start of every run)", str(r["step"] or 0),
             *(f"{r['dev'][k]:.2f}" for k in ("large", "medium", "all")),
             f"{sum(r['dev'][k] for k in ('large', 'medium', 'all')) / 3:.2f}",
             *(f"{r[part]['all']:.2f}" for part in ("wider", "extra"))] for r in base + rec["data"]["records"]]
    return (md_table(["run", "step", "dev AP >= 50 px", ">= 20 px", "all", "mean", "WIDER part, all",
                      "extra part, all"], "lrrrrrrr", rows) + "\n")


def render_train_step_levers_s4(rec: dict[str, Any]) -> str:
    rows = [[r["label"], f"{r['median_ms']['backbone+teacher']:.0f}", f"{r['median_ms']['student_forward']:.0f}",
             f"{r['median_ms']['backward']:.0f}", f"{r['median_ms']['total']:.0f}", f"{r['images_per_s']:.2f}"]
            for r in rec["data"]["rows"]]
    checks = [r for r in rec["data"]["rows"] if r.get("loss_check")]
    text = md_table(["configuration (batch 16, 480 px, 1 thread, data loading inside the step)",
                     "teacher ms", "student forward ms", "backward ms", "total ms", "images/s"], "lrrrrr", rows)
    for r in checks:
        c = r["loss_check"]
        text += (f"\n\nLoss of one fixed batch, {r['label']}: float32 {c['float32']:.5f}, {c['amp']} autocast "
                 f"{c['autocast']:.5f} (relative difference {c['relative_difference']:.1e}).")
    return text + "\n"


def render_train_step_compile(rec: dict[str, Any]) -> str:
    text = render_train_step_levers_s4(rec)
    for r in rec["data"]["rows"]:
        if r.get("compile_s") is not None:
            text += f"\nFirst step of \"{r['label']}\" (compiling the forward and backward graphs): {r['compile_s']:.0f} s.\n"
    return text


def render_technique_ablation_dev(rec: dict[str, Any]) -> str:
    d = rec["data"]
    sched = d["schedule"]
    names = ("attention_multiplication", "smart_feature_reuse", "progressive_enhancement",
             "multi_scale_intelligence", "dynamic_weight_sharing")

    def cell(r: dict[str, Any], k: str) -> str:
        return f"{r[k]:.2f} ± {r[k + '_sd']:.2f}"

    rows = [[r["variant"], " / ".join("on" if r["techniques"][n] else "off" for n in names), str(len(r["seeds"])),
             *(cell(r, k) for k in ("large", "medium", "all", "mean")),
             ", ".join(f"{x:+.2f}" for x in r["diff_to_reference"]) if r["variant"] != "registry default" else "-",
             f"{r['ort_ms_640x480']:.1f}"] for r in d["summary"]]
    return (f"Each run: {sched['steps']} steps of batch {sched['batch_size']} at {sched['image_size']} px from the "
            f"teacher's backbone (frozen) and a fresh head, peak learning rate {sched['lr']:g}; dev AP of its last "
            "step (mean ± standard deviation over the seeds).\n\n"
            + md_table(["variant", "attention mult. / smart reuse / progressive / multi-scale / sharing gate", "seeds",
                        "dev AP >= 50 px", ">= 20 px", "all", "mean of the three", "mean minus the registry config's, per seed",
                        "ORT ms, 640x480"], "llrrrrrlr", rows) + "\n")


def render_size_policy(rec: dict[str, Any]) -> str:
    d = rec["data"]
    rows = [["none (original size)" if c == "None" else ("**1024 (the default)**" if c == "1024" else c),
             f"{r['found']} / {r['faces']}", str(r["false"]), f"{r['seconds_per_photo']:.2f}"]
            for c, r in d["caps"].items()]
    return (f"{d['photos']} photos upscaled to {d['photo_side']} px, teacher faces of at least {d['min_face']:.0f} px, "
            "default score threshold.\n\n"
            + md_table(["cap on the network input's longer side", "faces found", "false boxes", "seconds per photo"],
                       "lrrr", rows) + "\n")


def render_shared_machine(rec: dict[str, Any]) -> str:
    def label(k: str) -> str:
        if k == "default":
            return "default (one thread per call at this size)"
        n = k.split("=")[1]
        return f"`num_threads={n}`" + (" (torch's own default: one per core)" if int(n) == rec["machine"]["cores"] else "")

    rows = [[label(k), f"{r['alone_ms']:.1f}", f"{r['two_processes_ms']:.1f} ({r['two_over_alone']:.2f}x)",
             f"{r['busy_core_ms']:.1f} ({r['busy_over_alone']:.2f}x)"] for k, r in rec["data"]["rows"].items()]
    return (f"`detect` on a {rec['data']['image']} image, median over {rec['data']['seconds']:.0f} s per situation.\n\n"
            + md_table(["setting", "alone (ms)", "two processes side by side (ms, ratio)",
                        "next to a core busy with Python (ms, ratio)"], "lrrr", rows) + "\n")


@dataclass(frozen=True)
class Result:
    name: str
    doc: str  # the Markdown file that holds its block
    render: Callable[[dict[str, Any]], str]
    measure: Callable[[], dict[str, Any]] | None = None  # None: a committed historical measurement
    data_name: str | None = None  # render another result's file (several blocks from one file)

    @property
    def file(self) -> Path:
        return DATA / f"{self.data_name or self.name}.json"


RESULTS: tuple[Result, ...] = (
    Result("small_faces", "docs/quickstart.md", render_small_faces, measure_small_faces),
    Result("speed", "README.md", render_speed, measure_speed),
    Result("bench", "docs/benchmarks.md", render_bench, measure_bench),
    Result("bench_targets", "docs/benchmarks.md", render_bench_targets, data_name="bench"),
    Result("ort_variants", "docs/benchmarks.md", render_generic),
    Result("profile_v2_ultra", "docs/benchmarks.md", lambda r: render_profile(r, 12), lambda: _measure_profile("v2_ultra")),
    Result("profile_v1", "docs/benchmarks.md", lambda r: render_profile(r, 8), lambda: _measure_profile("v1")),
    Result("peers", "docs/benchmarks.md", render_generic),
    Result("train_step_cost", "docs/training.md", render_train_step_cost, measure_train_step_cost),
    Result("train_step_levers", "docs/training.md", render_generic),
    Result("train_step_levers_s4", "docs/training.md", render_train_step_levers_s4),
    Result("train_step_compile", "docs/training.md", render_train_step_compile),
    Result("technique_ablation_dev", "docs/training.md", render_technique_ablation_dev),
    Result("training_log", "docs/training.md", render_training_log),
    Result("dev_ablation", "docs/training.md", render_dev_ablation),
    Result("shared_machine", "docs/concepts.md", render_shared_machine),
    Result("install_sizes", "README.md", render_generic),
    Result("size_policy", "docs/concepts.md", render_size_policy),
    Result("deployment_latency", "docs/deployment.md", render_deployment_latency, measure_deployment_latency),
)
BY_NAME = {r.name: r for r in RESULTS}


def render(res: Result) -> str:
    rec = json.loads(res.file.read_text())
    body = res.render(rec)
    if rec.get("historical") and not body.startswith("*Committed historical"):
        body = source_line(rec) + "\n\n" + body
    return body


def record(res: Result, measured: dict[str, Any], load: str | None) -> dict[str, Any]:
    threads = measured.pop("threads", None)
    return {"name": res.name, "command": measured.pop("command"), "git_commit": git_commit(),
            "date": datetime.date.today().isoformat(), "machine": machine(threads, load), "versions": versions(),
            **measured}


# -- docs ------------------------------------------------------------------------------------------


def doc_paths() -> list[Path]:
    out: list[Path] = []
    for pattern in DOC_FILES:
        out += sorted(ROOT.glob(pattern))
    return out


def rewrite(text: str, only: set[str] | None = None) -> tuple[str, list[str]]:
    """``text`` with every known block re-rendered; the unknown block names."""
    unknown: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in BY_NAME:
            unknown.append(name)
            return m.group(0)
        if (only is not None and name not in only) or not BY_NAME[name].file.is_file():
            return m.group(0)
        return f"<!-- results:{name} -->\n{render(BY_NAME[name])}<!-- /results:{name} -->"

    return MARKER.sub(sub, text), unknown


def check() -> list[str]:
    """Every problem found; empty when the docs and the result files agree."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for res in RESULTS:
        if not res.file.is_file():
            problems.append(f"{res.name}: no result file {res.file.relative_to(ROOT)}")
    for path in doc_paths():
        text = path.read_text()
        rel = str(path.relative_to(ROOT))
        for m in MARKER.finditer(text):
            name = m.group("name")
            seen[name] = rel
            if name not in BY_NAME:
                problems.append(f"{rel}: block {name!r} has no registered result")
                continue
            if not BY_NAME[name].file.is_file():
                continue
            if m.group("body") != render(BY_NAME[name]):
                problems.append(f"{rel}: block {name!r} differs from docs/data/{BY_NAME[name].file.name} "
                                f"(run: python docs/results.py refresh --render-only)")
        opened = len(re.findall(r"<!-- results:[\w-]+ -->", text))
        if opened != len(MARKER.findall(text)):
            problems.append(f"{rel}: a results block is not closed")
    for res in RESULTS:
        if res.name not in seen:
            problems.append(f"{res.name}: no block <!-- results:{res.name} --> in {res.doc}")
        elif seen[res.name] != res.doc:
            problems.append(f"{res.name}: block is in {seen[res.name]}, registered for {res.doc}")
    packaged = packaged_sha256()
    for path in sorted(DATA.glob("*.json")):
        rec = json.loads(path.read_text())
        if not isinstance(rec, dict) or "weights_sha256" not in rec:
            continue  # a raw data file (e.g. technique_ablation.json), not a result file
        for key in ("name", "command", "git_commit", "date", "machine", "versions", "weights", "data"):
            if key not in rec:
                problems.append(f"{path.name}: no {key!r}")
        for key in ("cpu", "cores", "threads"):
            if key not in rec.get("machine", {}):
                problems.append(f"{path.name}: machine has no {key!r}")
        cited = (rec.get("weights_sha256") or {}).get("v2_ultra")
        historical = str(rec.get("weights", "")).startswith("historical:")
        if cited and cited != packaged and not historical:
            problems.append(f"{path.name}: cites v2_ultra weights sha256 {cited[:12]}…, the packaged file is "
                            f"{packaged[:12]}… (re-measure: python docs/results.py refresh --only {rec['name']})")
        if historical and not rec.get("historical"):
            problems.append(f"{path.name}: historical weights but not marked \"historical\": true")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    r = sub.add_parser("refresh", help="re-measure the fast results (or --only NAME), then rewrite the docs")
    r.add_argument("--only", action="append", default=None, metavar="NAME", choices=sorted(BY_NAME))
    r.add_argument("--render-only", action="store_true", help="do not measure: rewrite the docs from the files")
    r.add_argument("--load", default=None, metavar="TEXT",
                   help='what else ran on the machine, recorded with each measurement, e.g. "idle" or '
                        '"machine shared with a training job"')
    sub.add_parser("check")
    args = ap.parse_args(argv)
    os.chdir(ROOT)

    if args.cmd == "list":
        for res in RESULTS:
            kind = "measured" if res.measure else ("rendered from " + res.file.name if res.data_name else "historical")
            cmd = json.loads(res.file.read_text())["command"] if res.file.is_file() else "-"
            print(f"{res.name:20s} {res.doc:22s} {kind:28s} {cmd}")
        return 0
    if args.cmd == "check":
        problems = check()
        for p in problems:
            print(p)
        return 1 if problems else 0

    only = set(args.only) if args.only else None
    failed: list[str] = []
    if not args.render_only:
        for res in RESULTS:
            if res.measure is None or (only is not None and res.name not in only):
                continue
            try:
                rec = record(res, res.measure(), args.load)
            except (RuntimeError, OSError) as exc:  # keep the committed file; say so
                print(f"{res.name}: not re-measured: {exc}", file=sys.stderr)
                failed.append(res.name)
                continue
            res.file.write_text(json.dumps(rec, indent=1) + "\n")
            print(f"wrote {res.file.relative_to(ROOT)}", flush=True)
        if only is not None:  # blocks rendered from a refreshed file are refreshed too
            only |= {r.name for r in RESULTS if r.data_name in only}
    for path in doc_paths():
        text = path.read_text()
        new, unknown = rewrite(text, only)
        for name in unknown:
            print(f"{path.relative_to(ROOT)}: unknown block {name!r}", file=sys.stderr)
        if new != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
