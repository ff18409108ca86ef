"""``ganzoo report RUN_DIR``: one self-contained HTML page for a training run, viewable with no server and no network.

The page holds, from what ``ganzoo train`` leaves in the run folder:

- the sample grids over steps (``samples_<step>.png``, embedded as data URIs) as a strip the reader steps through with
  a slider or the arrow keys, and every grid below it;
- the loss curves from ``metrics.jsonl``, drawn as inline SVG by this module (no plotting package, no script needed);
- the evaluation results (``*.eval.json``, what ``ganzoo eval`` writes beside a checkpoint, and any other result JSON
  in the folder) as tables;
- the objective's name and config, the training settings and precision policy, and the speed (median it/s).

API: ``read_run(run_dir) -> RunSummary``, ``render_report(summary) -> str``, ``write_report(run_dir, out=None,
overwrite=False) -> Path``. The page is written atomically; a page this command wrote before is replaced, any other
existing file is refused unless ``overwrite``.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ganzoo_core._atomic import atomic_path
from ganzoo_core.errors import GanzooError

GENERATOR_TAG = '<meta name="generator" content="ganzoo report">'
CHECKPOINT = "checkpoint.safetensors"
MAX_GRIDS = 24  # sample grids embedded by default: evenly spaced over the run, the last one always
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_SAMPLE = re.compile(r"samples_(\d+)\.png$")


@attrs.frozen(kw_only=True)
class RunSummary:
    """What a run folder holds, read without loading any tensor."""

    run_dir: Path
    name: str  # the objective's registry name ("" without a checkpoint)
    config: Mapping[str, Any]  # the objective's config
    train: Mapping[str, Any]  # the engine's record: step, policy, train_cfg
    versions: Mapping[str, str]
    rows: tuple[Mapping[str, float], ...]  # metrics.jsonl
    samples: tuple[tuple[int, Path], ...]  # (step, grid), by step
    evals: tuple[tuple[str, Mapping[str, Any]], ...]  # (file name, result)


def read_run(run_dir: str | Path) -> RunSummary:
    """Read ``run_dir``'s checkpoint metadata, metrics, sample grids and result JSONs."""
    run = Path(run_dir)
    if not run.is_dir():
        raise GanzooError(f"run folder {str(run)!r} does not exist; pass the --out folder of a `ganzoo train` run")
    name, config, train, versions = "", {}, {}, {}
    if (run / CHECKPOINT).is_file():
        from ganzoo_core.checkpoints import read_info  # late: reads the registry

        info = read_info(run / CHECKPOINT)
        name, config, versions = info.name, info.config, info.versions
        try:
            train = json.loads(_raw_meta(run / CHECKPOINT).get("ganzoo.train", "{}"))
        except json.JSONDecodeError:
            train = {}  # a checkpoint saved outside the engine: no training record
        train = train if isinstance(train, dict) else {}
    rows = tuple(_read_rows(run / "metrics.jsonl"))
    samples = tuple(sorted((int(m.group(1)), p) for p in run.glob("samples_*.png") if (m := _SAMPLE.search(p.name))))
    if not samples and (run / "samples.png").is_file():
        samples = ((int(train.get("step", 0) or 0), run / "samples.png"),)
    evals = tuple(_read_results(run))
    if not (rows or samples or name):
        raise GanzooError(f"{str(run)!r} holds no checkpoint, metrics.jsonl or samples_*.png; pass the --out folder "
                          "of a `ganzoo train` run")
    return RunSummary(run_dir=run, name=name, config=config, train=train, versions=versions, rows=rows,
                      samples=samples, evals=evals)


def _raw_meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as handle:
        return dict(handle.metadata() or {})


def _read_rows(path: Path) -> Iterable[Mapping[str, float]]:
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                return  # the last line cut by an interrupted write: the run resumes past it
            raise GanzooError(f"{path}: line {number} is not JSON ({line[:60]!r}); expected one metrics row per "
                              "line") from None
        if isinstance(row, dict) and "step" in row:
            yield {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _read_results(run: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    for path in sorted(run.glob("*.json")):
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # not a result file
        if isinstance(value, dict):
            yield path.name, value


# -- rendering ---------------------------------------------------------------------------------------------------


def render_report(summary: RunSummary, *, max_grids: int = MAX_GRIDS) -> str:
    """The page as one HTML string (images embedded)."""
    title = f"{summary.name or 'run'} — {summary.run_dir.name}"
    parts = [_overview(summary), _samples_section(summary, max_grids), _curves_section(summary.rows),
             _evals_section(summary.evals), _config_section(summary)]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', GENERATOR_TAG,
        f"<title>{_e(title)}</title>", f"<style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
        *parts, f"<script>{_JS}</script>", "</body></html>", ""])


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    if isinstance(value, int) or (math.isfinite(value) and value == int(value) and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:.4g}"


def _table(rows: Iterable[tuple[str, Any]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in rows)
    return f'<table class="{cls}">{body}</table>'


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]


def _speed(rows: Sequence[Mapping[str, float]]) -> float | None:
    speeds = [r["it_per_s"] for r in rows if r.get("it_per_s", 0) > 0]
    return statistics.median(speeds) if speeds else None


def _overview(s: RunSummary) -> str:
    cfg = s.train.get("train_cfg", {}) if isinstance(s.train, Mapping) else {}
    step = s.train.get("step") or (int(s.rows[-1]["step"]) if s.rows else None)
    facts = [("objective", s.name or "?"), ("steps done", step if step is not None else "?"),
             ("of", cfg.get("steps", "?")), ("batch size", cfg.get("batch_size", "?")),
             ("policy", s.train.get("policy_name", "?")), ("device", cfg.get("device", "?"))]
    speed = _speed(s.rows)
    if speed is not None:
        facts.append(("speed (median it/s)", round(speed, 2)))
    if s.rows:
        last = s.rows[-1]
        facts += [(f"last {k}", v) for k, v in last.items() if k.startswith("loss_")]
    return f'<section id="overview"><h2>Overview</h2>{_table(facts)}</section>'


def _pick(samples: Sequence[tuple[int, Path]], k: int) -> list[tuple[int, Path]]:
    if len(samples) <= k:
        return list(samples)
    idx = sorted({round(i * (len(samples) - 1) / (k - 1)) for i in range(k)})
    return [samples[i] for i in idx]


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _samples_section(s: RunSummary, max_grids: int) -> str:
    if not s.samples:
        return '<section id="samples"><h2>Samples</h2><p>No sample grids in this run.</p></section>'
    picked = _pick(s.samples, max(2, max_grids))
    uris = [(step, _data_uri(path)) for step, path in picked]
    last = len(uris) - 1
    frames = "".join(
        f'<img class="frame" data-step="{step}" alt="samples at step {step}" src="{uri}"'
        f'{"" if i == last else " hidden"}>' for i, (step, uri) in enumerate(uris))
    strip = "".join(
        f'<figure><img alt="step {step}" src="{uri}"><figcaption>step {step:,}</figcaption></figure>'
        for step, uri in uris)
    note = "" if len(picked) == len(s.samples) else f" ({len(picked)} of {len(s.samples)} grids, evenly spaced)"
    return (f'<section id="samples"><h2>Samples</h2><div class="viewer">{frames}</div>'
            f'<label>step <input id="step-slider" type="range" min="0" max="{last}" value="{last}"> '
            f'<output id="step-label">{picked[-1][0]:,}</output></label>'
            f'<p class="note">Drag the slider or use the arrow keys{note}.</p><div class="strip">{strip}</div></section>')


def _curves_section(rows: Sequence[Mapping[str, float]]) -> str:
    if not rows:
        return '<section id="curves"><h2>Loss curves</h2><p>No metrics.jsonl in this run.</p></section>'
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "step"]
    groups = [("Losses", [k for k in keys if k.startswith("loss_")]),
              ("Loss terms", [k for k in keys if "/" in k and not k.startswith("lr")]),
              ("Speed (it/s)", [k for k in keys if k == "it_per_s"])]
    charts = [svg_chart(title, rows, series) for title, series in groups if series]
    return f'<section id="curves"><h2>Loss curves</h2>{"".join(charts)}</section>'


def svg_chart(title: str, rows: Sequence[Mapping[str, float]], series: Sequence[str], width: int = 640,
              height: int = 260) -> str:
    """An inline SVG line chart of ``series`` against ``step``: axes with 5 ticks each, a legend, one polyline per
    series (non-finite values leave a gap)."""
    left, right, top, bottom = 56, 12, 24, 32
    pts = {k: [(r["step"], r[k]) for r in rows if k in r and math.isfinite(r[k])] for k in series}
    xs = [x for p in pts.values() for x, _ in p] or [0.0, 1.0]
    ys = [y for p in pts.values() for _, y in p] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    out = [f'<figure class="chart"><svg class="curve" data-series="{_e(",".join(series))}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
           f'<text x="{left}" y="14" class="title">{_e(title)}</text>',
           f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" class="area"/>']
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        x = x0 + (x1 - x0) * i / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" class="grid"/>'
                   f'<text x="{left - 4}" y="{sy(y) + 4:.1f}" class="ytick">{_e(f"{y:.3g}")}</text>'
                   f'<text x="{sx(x):.1f}" y="{height - bottom + 14}" class="xtick">{_e(_fmt(round(x)))}</text>')
    for i, (key, p) in enumerate(pts.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in p)
        out.append(f'<polyline data-key="{_e(key)}" points="{coords}" stroke="{colour}" class="line"/>')
    legend = "".join(f'<span class="key" style="color:{COLOURS[i % len(COLOURS)]}">&#9644; {_e(k)}</span>'
                     for i, k in enumerate(pts))
    out.append(f"</svg><figcaption>{legend}</figcaption></figure>")
    return "".join(out)


def _evals_section(evals: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    if not evals:
        return ('<section id="evals"><h2>Evaluation</h2><p>No result JSON in this run folder (<code>ganzoo eval '
                'RUN/checkpoint.safetensors</code> writes one beside the checkpoint).</p></section>')
    tables = "".join(f'<h3>{_e(name)}</h3>{_table(_flatten(value), "eval")}' for name, value in evals)
    return f'<section id="evals"><h2>Evaluation</h2>{tables}</section>'


def _config_section(s: RunSummary) -> str:
    parts = []
    if s.config:
        parts.append(f"<h3>Objective config</h3>{_table(_flatten(s.config))}")
    if s.train:
        parts.append(f"<h3>Training</h3>{_table(_flatten(s.train))}")
    if s.versions:
        parts.append(f"<h3>Versions</h3>{_table(sorted(s.versions.items()))}")
    body = "".join(parts) or "<p>No checkpoint in this run folder.</p>"
    return f'<section id="config"><h2>Config</h2>{body}</section>'


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222}
h1{font-size:20px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:2px;margin-top:28px}h3{font-size:14px}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #e3e3e3;padding:2px 8px;text-align:left}
th{background:#f6f6f6;font-weight:600}td{font-variant-numeric:tabular-nums}
.viewer img{width:min(100%,512px);image-rendering:pixelated;border:1px solid #ccc}
.strip{display:flex;gap:6px;overflow-x:auto}.strip figure{margin:0}.strip img{height:96px;image-rendering:pixelated}
.strip figcaption,.note{font-size:12px;color:#666}
svg .area{fill:none;stroke:#999}svg .grid{stroke:#eee}svg .line{fill:none;stroke-width:1.5}
svg text{font-size:11px;fill:#444}svg .ytick{text-anchor:end}svg .xtick{text-anchor:middle}
svg .title{font-weight:600}.chart{margin:8px 0}.key{margin-right:14px;font-size:12px}
"""

_JS = """
(function(){var f=document.querySelectorAll('.viewer .frame'),s=document.getElementById('step-slider'),
l=document.getElementById('step-label');if(!s)return;
function show(i){f.forEach(function(e,j){e.hidden=j!=i});l.textContent=Number(f[i].dataset.step).toLocaleString('en')}
s.addEventListener('input',function(){show(+s.value)});
document.addEventListener('keydown',function(e){var d=e.key=='ArrowRight'?1:e.key=='ArrowLeft'?-1:0;
if(d){s.value=Math.min(+s.max,Math.max(0,+s.value+d));show(+s.value)}});})();
window.addEventListener('load',function(){var i=[].slice.call(document.images);
document.body.dataset.imagesDecoded=i.filter(function(e){return e.complete&&e.naturalWidth>0}).length+'/'+i.length});
"""


# -- writing and the command -------------------------------------------------------------------------------------


def write_report(run_dir: str | Path | RunSummary, out: str | Path | None = None, *, overwrite: bool = False,
                 max_grids: int = MAX_GRIDS) -> Path:
    """Write ``report.html`` (or ``out``) for ``run_dir`` (or a ``RunSummary`` already read). A page this function
    wrote before is replaced; another existing file is refused unless ``overwrite``."""
    summary = run_dir if isinstance(run_dir, RunSummary) else read_run(run_dir)
    path = Path(out) if out is not None else summary.run_dir / "report.html"
    replace = overwrite or _is_our_report(path)
    page = render_report(summary, max_grids=max_grids)
    with atomic_path(path, overwrite=replace, what="report") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _is_our_report(path: Path) -> bool:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return GENERATOR_TAG in f.read(4096)
    except OSError:
        return False


def add_report_command(subparsers: Any) -> None:
    """``ganzoo report RUN_DIR [--out FILE] [--overwrite] [--max-grids N] [--json]``."""
    from ganzoo_core.argtypes import int_at_least

    p = subparsers.add_parser(
        "report", help="one self-contained HTML page for a training run",
        description="Write a self-contained HTML page for a run folder: the sample grids over steps, the loss "
                    "curves, the evaluation results, the config, the policy and the speed. It opens in any browser "
                    "with no server and no network.")
    p.add_argument("run_dir", type=Path, help="the --out folder of a `ganzoo train` run")
    p.add_argument("--out", type=Path, default=None, help="the page (default: RUN_DIR/report.html)")
    p.add_argument("--overwrite", action="store_true", help="replace --out even if this command did not write it")
    p.add_argument("--max-grids", type=int_at_least(2), default=MAX_GRIDS,
                   help="sample grids embedded, evenly spaced over the run (the last one always)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    summary = read_run(args.run_dir)  # read once, for the page and for the line printed
    path = write_report(summary, args.out, overwrite=args.overwrite, max_grids=args.max_grids)
    if args.json:
        print(json.dumps({"report": str(path), "objective": summary.name, "grids": len(summary.samples),
                          "metrics_rows": len(summary.rows), "results": [n for n, _ in summary.evals]}, indent=2))
    else:
        print(f"wrote {path} ({len(summary.samples)} sample grids, {len(summary.rows)} metrics rows, "
              f"{len(summary.evals)} result files)")
    return 0
