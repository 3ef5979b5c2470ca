"""`nascomp report`: pages of small run directories shaped like real ones, loaded in headless Chromium.

The browser is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages ending in
NUL on file descriptors 3 and 4), so no Python package is needed. A page fails on any console error, uncaught
exception, failed or external resource load, broken image, empty chart, or a sortable table that a header click
does not sort; `test_the_checker_catches_*` prove the checker sees each of those.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from nascomp.cli import main
from nascomp.core.errors import NascompError
from nascomp.core.runlog import make_logger
from nascomp.report import render_report

CHROMIUM = os.environ.get("NASCOMP_CHROMIUM", "/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)")


# --- the browser ------------------------------------------------------------------------------------


class Browser:
    """One headless Chromium, commands and events over the DevTools pipe."""

    def __init__(self, width: int = 1280, height: int = 900):
        self.profile = tempfile.mkdtemp(prefix="nascomp-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def wire() -> None:  # in the child: the protocol reads fd 3 and writes fd 4
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
            "--hide-scrollbars",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=wire, pass_fds=(3, 4)
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer, self.events, self.next_id, self.session = b"", [], 0, None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _read(self, timeout: float) -> dict:
        import select

        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.from_browser], [], [], timeout)
            if not ready:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, timeout: float = 30.0, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict:
        deadline = time.time() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(max(0.1, deadline - time.time())))

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the centre of the element."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}}); "
            "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def screenshot(self, path: Path, width: int = 1280) -> None:
        height = self.evaluate("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, timeout=60)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.to_browser)
        os.close(self.from_browser)
        shutil.rmtree(self.profile, ignore_errors=True)


# The page-side checks: charts with visible marks, no broken image, and every sortable column sorting both ways.
_CHECKS = r"""
(() => {
  const problems = [];
  const charts = Array.from(document.querySelectorAll("svg.chart"));
  charts.forEach((svg, i) => {
    const marks = Array.from(svg.querySelectorAll(".mark")).filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
    const box = svg.getBoundingClientRect();
    if (!marks.length) problems.push(`chart ${i} (${svg.getAttribute("aria-label")}) has no visible data mark`);
    if (box.width < 100 || box.height < 50) problems.push(`chart ${i} is ${box.width}x${box.height} px`);
  });
  Array.from(document.images).forEach(img => { if (!img.complete || img.naturalWidth === 0) problems.push(`broken image ${img.src}`); });
  const key = (td, numeric) => numeric ? parseFloat(td.dataset.sort) : td.dataset.sort;
  let sorted = 0, reordered = 0;
  Array.from(document.querySelectorAll("table.sortable")).forEach(table => {
    const name = table.dataset.name || "table";
    Array.from(table.tHead.rows[0].cells).forEach((th, c) => {
      const numeric = th.dataset.type === "number";
      const before = Array.from(table.tBodies[0].rows).map(r => r.dataset.index).join();
      for (const direction of ["ascending", "descending"]) {
        th.click();
        if (th.getAttribute("aria-sort") !== direction) problems.push(`${name} column ${c}: aria-sort is not ${direction}`);
        const cells = Array.from(table.tBodies[0].rows).map(r => r.cells[c]);
        const full = cells.filter(td => td.dataset.sort !== "");
        if (cells.slice(full.length).some(td => td.dataset.sort !== "")) problems.push(`${name} column ${c}: empty cells are not last`);
        for (let i = 1; i < full.length; i++) {
          const a = key(full[i - 1], numeric), b = key(full[i], numeric);
          const order = numeric ? a - b : a.localeCompare(b, undefined, {numeric: true, sensitivity: "base"});
          if (direction === "ascending" ? order > 0 : order < 0) { problems.push(`${name} column ${c} is not ${direction}`); break; }
        }
        if (Array.from(table.tBodies[0].rows).map(r => r.dataset.index).join() !== before) reordered++;
      }
      sorted++;
    });
  });
  return {problems, charts: charts.length, sorted, reordered, tables: document.querySelectorAll("table.sortable").length,
          external: Array.from(document.querySelectorAll("[src],link[href]")).map(e => e.getAttribute("src") || e.getAttribute("href"))};
})()
"""


def check_page(browser: Browser, path: Path) -> dict:
    """Load ``path`` and return what is wrong with it (``problems``) and what it holds."""
    browser.open(path)
    result = browser.evaluate(_CHECKS)
    problems = result["problems"]
    page_url = path.resolve().as_uri()
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            problems.append(f"uncaught exception: {details.get('exception', {}).get('description') or details['text']}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            problems.append("console error: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            problems.append(f"browser error: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            problems.append(f"failed to load a resource: {params.get('errorText')}")
        elif method == "Network.requestWillBeSent" and params["request"]["url"] != page_url:
            problems.append(f"the page requested {params['request']['url']}: everything must be inline")
    problems += [f"external reference {ref}" for ref in result.pop("external")]
    return {**result, "problems": problems}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    b = Browser()
    yield b
    b.close()


# --- run directories shaped like real ones (see the module docstrings of nascomp.nas.report and nascomp.compression) ----

ARCH = {
    "patch_size": 4,
    "stages": [
        {"embed_dim": d, "blocks": [{"heads": h, "qkv_dim": d, "mlp_ratio": 4.0, "window": 7}] * n}
        for d, h, n in ((96, 3, 2), (192, 6, 2), (384, 12, 4), (768, 24, 2))
    ],
}
DIMENSIONS = ("depth", "embed_dim", "heads", "qkv_dim", "mlp_ratio", "window")


def _write(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) if not isinstance(doc, str) else doc)


def _arch(depths: tuple[int, ...], width: int) -> dict:
    return {
        "patch_size": 4,
        "stages": [
            {"embed_dim": width * 2**s, "blocks": [{"heads": 2**s, "qkv_dim": width * 2**s, "mlp_ratio": 4.0, "window": 7}] * d}
            for s, d in enumerate(depths)
        ],
    }


def _candidates(n: int = 14) -> list[dict]:
    rows = []
    for i in range(n):
        depths, width = (1 + i % 3, 2, 4 + i % 4, 2), 80 + 16 * (i % 3)
        macs = int(1.6e9 + 1.8e8 * ((i * 7) % n))
        rows.append(
            {
                "rank": 0,
                "generation": i // 8,
                "origin": ("seed", "random", "mutation", "crossover")[i % 4],
                "val_top1": 20 + (i * 37) % 19 + macs / 1e9,
                "val_top5": 60 + i % 20,
                "val_loss": 3 - i / 20,
                "cost": float(macs),
                "pareto": False,
                "params": int(1.5e7 + 3e5 * i),
                "macs": macs,
                "flops": 2 * macs,
                "arch": _arch(depths, width),
            }
        )
    for r, row in enumerate(sorted(rows, key=lambda r: (-r["val_top1"], r["cost"])), start=1):
        row["rank"] = r
    for row in rows:
        row["pareto"] = not any(o["cost"] <= row["cost"] and o["val_top1"] >= row["val_top1"] and o is not row for o in rows)
    return rows


def _candidates_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "rank",
            "generation",
            "origin",
            "val_top1",
            "val_top5",
            "val_loss",
            "gmacs",
            "gflops",
            "params_m",
            "pareto",
            "depths",
            "embed_dims",
            "arch",
        ]
    )
    for r in sorted(rows, key=lambda r: r["rank"]):
        writer.writerow(
            [
                r["rank"],
                r["generation"],
                r["origin"],
                f"{r['val_top1']:.4f}",
                f"{r['val_top5']:.4f}",
                f"{r['val_loss']:.6f}",
                f"{r['macs'] / 1e9:.6f}",
                f"{r['flops'] / 1e9:.6f}",
                f"{r['params'] / 1e6:.6f}",
                int(r["pareto"]),
                "-".join(str(len(s["blocks"])) for s in r["arch"]["stages"]),
                "-".join(str(s["embed_dim"]) for s in r["arch"]["stages"]),
                json.dumps(r["arch"], separators=(",", ":")),
            ]
        )
    return buf.getvalue()


def _history(epochs: int, start: float) -> list[dict]:
    return [
        {
            "epoch": e + 1,
            "train_loss": 3.8 - 0.4 * e,
            "val_top1": start + 6 * e,
            "val_loss": 3.1 - 0.3 * e,
            "lr": 1e-3 / (e + 1),
            "seconds": 12.0,
        }
        for e in range(epochs)
    ]


def _step(t: int, Q: float) -> dict:
    space = {"name": "s3-vit" if t == 0 else f"s3-vit-evolved-{t}", "resolution": 224, "patch_size": 4, "stages": []}
    table = [
        {"stage": s, "dimension": d, "value": v, "E": Q + v % 3, "T": Q - 2, "Q": Q + 1 - (v % 2), "weight": 3.0}
        for s in range(4)
        for d in DIMENSIONS
        for v in (1, 2, 3)
    ]
    slopes = [
        {
            "stage": s,
            "dimension": d,
            "choices": [1, 2, 3],
            "step": 1.0,
            "Q": [Q, Q - 1, None],
            "weight": [3.0, 2.0, 0.0],
            "slope": -2.4 if (s, d) == (0, "depth") else 0.2,
            "p": 0.04 if (s, d) == (0, "depth") else 0.8,
        }
        for s in range(4)
        for d in DIMENSIONS
    ]
    decisions = [
        {
            **sl,
            "p_adjusted": min(1.0, sl["p"] * 24),
            "action": "shift up" if sl["slope"] < -1 else "keep",
            "new_choices": [2, 3, 4] if sl["slope"] < -1 else sl["choices"],
            "reason": "slope beyond tau" if sl["slope"] < -1 else "|slope| <= tau",
        }
        for sl in slopes
    ]
    return {
        "step": t,
        "space": space,
        "E": Q + 1.5,
        "T": Q - 1.5,
        "Q": Q,
        "n": 32,
        "k": 8,
        "supernet_val": {"top1": 40.0 + 3 * t, "top5": 80.0, "loss": 2.5, "n": 96},
        "et_table": table,
        "slopes": slopes,
        "decisions": decisions,
    }


def make_search_run(root: Path) -> Path:
    """A finished `nascomp search` run directory (2 evolution steps, 14 candidates, 2 finalists, the stand-alone check)."""
    rows = _candidates()
    winner = min(rows, key=lambda r: r["rank"])
    settings = {
        "space": {"name": "s3-vit", "resolution": 224, "patch_size": 4, "stages": []},
        "budget": "4gflops",
        "preset": "smoke",
        "data": {"dataset": "fashion-mnist", "train": 64, "val": 96, "test": 100, "classes": 10},
        "seed": 0,
        "in_chans": 3,
        "lut": None,
        "resolved": {"supernet": {"resolution": 32, "epochs": 1, "batch_size": 32, "lr": 0.001}},
    }
    _write(
        root / "run.json",
        {
            "settings": settings,
            "command": ["nascomp", "search", "--space", "s3-vit", "--budget", "4gflops", "--preset", "smoke", "--out", str(root)],
            "out": str(root),
        },
    )
    _write(root / "candidates.csv", _candidates_csv(rows))
    config = {
        "population": 8,
        "generations": 1,
        "parents": 3,
        "mutations": 3,
        "crossovers": 3,
        "mutation_prob": 0.2,
        "stage_prob": 0.4,
        "retry_factor": 10,
        "objective": "accuracy",
    }
    history = [
        {
            "generation": g,
            "evaluated": 8,
            "total": 8 * (g + 1),
            "best_top1": 37.5 + g,
            "best_cost": 3.86e9,
            "population_mean_top1": 22.6 + 5 * g,
            "front_size": 4 - g,
            "origins": {"seed": 8 - 8 * g, "random": 2 * g, "mutation": 3 * g, "crossover": 3 * g},
        }
        for g in range(2)
    ]
    _write(root / "search/result.json", {"space": settings["space"], "config": config, "history": history, "candidates": rows})
    steps = [_step(0, 67.2), _step(1, 64.9)]
    steps[-1]["decisions"] = []
    _write(root / "evolution/history.json", {"steps": steps})
    for s in steps:
        _write(
            root / f"evolution/step-{s['step']}/et.json",
            {
                "step": s["step"],
                "space": s["space"],
                "et": {k: s[k] for k in ("E", "T", "Q", "n", "k")} | {"space": s["space"]["name"], "choices": s["et_table"]},
                "slopes": s["slopes"],
                "supernet": s["supernet_val"],
                "samples": [],
            },
        )
        _write(
            root / f"supernet/step-{s['step']}/metrics.json",
            {"val": s["supernet_val"], "epochs": 2, "history": _history(2, 30 + 4 * s["step"])},
        )
    finalists = []
    for k, row in enumerate(sorted(rows, key=lambda r: r["rank"])[:2], start=1):
        finalists.append(
            {
                "rank": k,
                "search_rank": row["rank"],
                "arch": row["arch"],
                "val": {"top1": 21.9 + k, "top5": 70.3, "loss": 2.98, "n": 64},
                "val_split": "selection",
                "test": {"top1": 36.0 - k, "top5": 77.0, "loss": 2.3, "n": 100},
                "source": "inherited supernet weights (no retraining)",
                "search_val_top1": row["val_top1"],
                "search_val_n": 32,
                "cost": row["cost"],
                "params": row["params"],
                "macs": row["macs"],
                "flops": row["flops"],
                "model_dir": f"finalists/rank-{k}/model",
            }
        )
        _write(root / f"finalists/rank-{k}/result.json", finalists[-1])
    compare = {
        "recipe": {"epochs": 1, "seeds": 2, "train_images": 64, "resolution": 32, "lr": 0.001, "batch_size": 32, "from": "scratch"},
        "archs": {
            "found": {
                "name": "the search's winner",
                "arch": winner["arch"],
                "cost": winner["cost"],
                "params": winner["params"],
                "macs": winner["macs"],
                "flops": winner["flops"],
                "runs": [{"seed": 0, "val_top1": 29.7, "test_top1": 26.0}, {"seed": 1, "val_top1": 7.8, "test_top1": 15.0}],
            },
            "hand-designed": {
                "name": "Swin-T with 2-2-4-2 blocks",
                "arch": ARCH,
                "cost": 3.78e9,
                "params": 23974060,
                "macs": 3781421568,
                "flops": 7562843136,
                "runs": [{"seed": 0, "val_top1": 23.4, "test_top1": 16.0}, {"seed": 1, "val_top1": 14.1, "test_top1": 16.0}],
            },
        },
        "test_difference": {"difference": 4.5, "ci": [-19.16, 28.16], "level": 0.95, "separated": False, "df": 2},
    }
    _write(root / "compare/result.json", compare)
    _write(
        root / "timings.json",
        {
            "stages": {
                name: {"wall_s": w, "cpu_s": 0.8 * w, "sessions": 1, "finished": True}
                for name, w in (
                    ("supernet-0", 45.3),
                    ("et-0", 7.9),
                    ("supernet-1", 25.8),
                    ("et-1", 17.5),
                    ("search", 16.3),
                    ("finalist-1", 6.7),
                    ("finalist-2", 8.0),
                    ("compare", 95.4),
                )
            }
        },
    )
    collapsed = [
        {
            "stage": 3,
            "dimension": "heads",
            "choices": [16, 24, 32],
            "fixed": 24,
            "reason": "on the 1x1 map at 32 px every head attends to the one token with weight 1: same function",
        }
    ]
    _write(
        root / "best_arch.json",
        {
            "arch": {**winner["arch"], "name": "s3-vit-4gflops-seed0"},
            "params": winner["params"],
            "macs": winner["macs"],
            "flops": winner["flops"],
            "gmacs": winner["macs"] / 1e9,
            "resolution": 224,
            "cost_note": "params and MACs of the standalone model at 224 px",
            "budget": {
                "text": "4gflops",
                "metric": "macs",
                "limit": 4e9,
                "unit": "MACs",
                "target": None,
                "cost": winner["cost"],
                "within": True,
                "cheapest_in_space": 1.6e9,
                "share": f"{winner['macs'] / 1e9:.2f} G of the 4 G budget (4gflops; papers' FLOPs = MACs)",
            },
            "val_top1": 22.9,
            "test_top1": 35.0,
            "val_top5": 70.3,
            "test_top5": 77.0,
            "selection": {
                "split": "selection",
                "images": 64,
                "top1": 22.9,
                "ci95": [13.5, 33.4],
                "search_val_top1": winner["val_top1"],
                "search_images": 32,
                "finalists": 2,
                "test_minus_selected": {"points": 12.1, "ci95": [0.3, 27.9]},
                "test_minus_search_score": {"points": -1.5, "ci95": [-20.7, 17.7]},
            },
            "accuracy_note": "inherited supernet weights (no retraining); fashion-mnist at 32 px",
            "collapsed": collapsed,
            "compare": compare,
            "finalist_rank": 1,
            "model_dir": "finalists/rank-1/model",
            "space": {
                "initial": "s3-vit",
                "final": "s3-vit-evolved-1",
                "evolve_steps": 1,
                "final_space_file": "evolution/step-1/space.yaml",
            },
            "et_error": [{"step": s["step"], "Q": s["Q"], "E": s["E"], "T": s["T"]} for s in steps],
            "preset": "smoke",
            "seed": 0,
            "data": "fashion-mnist",
            "run_dir": str(root),
        },
    )
    return root


def make_teacher(root: Path) -> Path:
    """``nascomp train`` with 3 epochs; and, when tensorboard is installed, the event files of a logged run (900 steps)."""
    if importlib.util.find_spec("tensorboard") is not None:
        with make_logger("tensorboard", root, run_name="teacher") as logger:
            for step in range(900):
                logger.scalars({"train/loss": 3.0 / (1 + step / 100), "train/images_per_s": 800.0 + step % 7}, step)
    _write(
        root / "metrics.json",
        {
            "val": {"top1": 44.5, "top5": 85.2, "loss": 2.1, "n": 128},
            "test": {"top1": 56.3, "top5": 90.1, "loss": 1.9, "n": 128},
            "epochs": 3,
            "history": _history(3, 30.0),
            "params": 310112,
            "data": {"dataset": "fashion-mnist", "train": 512, "val": 128, "test": 128, "classes": 10},
            "config": {"epochs": 3, "batch_size": 128, "lr": 0.001, "opt": "adamw", "seed": 0, "resolution": 32, "in_chans": 1},
            "model": {"builder": "timm", "kwargs": {"name": "swin_tiny_patch4_window7_224", "img_size": 32, "in_chans": 1}},
            "world_size": 1,
            "device": "cpu",
            "global_batch": 128,
            "effective_lr": 0.001,
            "weights": "trained",
            "train_seconds": 8.4,
        },
    )
    return root


def make_compress_run(root: Path, teacher: Path) -> Path:
    """``nascomp compress TEACHER --method shrink --budget 6e5macs`` as it writes metrics.json."""
    summary = {
        "model": str(teacher),
        "method": "shrink",
        "resolution": 32,
        "in_chans": 1,
        "params_before": 310112,
        "macs_before": 953856,
        "gmacs_before": 0.001,
        "budget": {"text": "6e5macs", "metric": "macs", "limit": 600000.0, "unit": "MACs", "target": None},
        "family": "swin",
        "params_after": 74682,
        "params_ratio": 0.2408,
        "macs_after": 331520,
        "gmacs_after": 0.0003,
        "init": "teacher",
        "arch": _arch((1, 1, 1, 1), 12),
        "cost_in_budget_unit": {"before": 953856.0, "after": 331520.0, "smallest_reachable": 247552.0, "how": "analytic MACs at 32 px"},
        "importance": "measured on 256 training images (activations; Minitron-style)",
        "search": {
            "candidates": 216,
            "population": 24,
            "generations": 8,
            "seed": 0,
            "score": "validation top-1 (%) with inherited weights",
            "best_score": 45.3,
        },
        "teacher": str(teacher),
        "distill": {"method": "minivit", "alpha": 0.0, "temperature": 1.0, "layer_pairs": [[0, 0]]},
    }
    _write(
        root / "metrics.json",
        {
            "val": {"top1": 40.6, "top5": 81.3, "loss": 2.0, "n": 128},
            "test": {"top1": 46.1, "top5": 89.8, "loss": 2.0, "n": 128},
            "epochs": 2,
            "history": _history(2, 35.0),
            "params": 74682,
            "data": {"dataset": "fashion-mnist", "train": 512, "val": 128, "test": 128, "classes": 10},
            "config": {"epochs": 2, "batch_size": 128, "lr": 0.001, "opt": "adamw", "seed": 0},
            "world_size": 1,
            "device": "cpu",
            "train_seconds": 4.2,
            "compress": summary,
        },
    )
    return root


def make_auto_run(root: Path) -> Path:
    """``nascomp compress ... --method auto``: table.json and a folder per method."""
    rows = [
        {
            "name": n,
            "method": m,
            "params": p,
            "gmacs": g,
            "size_mb": s,
            "latency_ms": lat,
            "iqr_ms": 0.02,
            "val_top1": v,
            "test_top1": t,
            "meets_budget": meets,
            "out": None if m == "none" else str(root / m.replace(",", "+")),
        }
        for n, m, p, g, s, lat, v, t, meets in (
            ("original", "none", 310112, 0.000954, 1.18, 0.207, 44.5, 56.3, False),
            ("shrink", "shrink", 74682, 0.000332, 0.29, 0.188, 40.6, 46.1, True),
            ("shrink + int8", "shrink,int8", 74682, 0.000332, 0.43, 0.224, 39.8, 45.3, True),
        )
    ]
    _write(
        root / "table.json",
        {
            "budget": {"text": "6e5macs", "metric": "macs", "limit": 600000.0, "unit": "MACs", "target": None},
            "target": "mobile-cpu",
            "rows": rows,
            "skipped": {"drop-blocks": "no leading-block configuration at full width meets the budget"},
            "best": "shrink",
            "latency_protocol": "host CPU under a mobile-class profile; this is not a phone",
        },
    )
    _write(root / "shrink/metrics.json", {"history": _history(2, 35.0)})
    return root


def make_profile(path: Path) -> Path:
    measured = {
        "latency_ms": 49.6,
        "iqr_ms": 3.97,
        "p25_ms": 49.0,
        "p75_ms": 53.0,
        "p90_ms": 54.7,
        "mean_ms": 51.3,
        "std_ms": 2.7,
        "min_ms": 49.0,
        "max_ms": 55.8,
        "runs": 5,
        "energy_mj": None,
        "details": {"timer": "wall clock", "cpu_steal_pct": 0.16, "load_average_before": [1.8, 1.9, 1.4]},
    }
    _write(
        path,
        {
            "model": "deit_tiny_patch16_224",
            "target": "cpu",
            "runtime": "onnxruntime",
            "precision": "fp32",
            "latency_ms": 49.6,
            "iqr_ms": 3.97,
            "energy_mj": None,
            "energy_kind": None,
            "note": "host CPU",
            "params": 5717416,
            "macs": 1253683200,
            "gmacs": 1.2537,
            "protocol": {
                "target": "cpu",
                "device": "host CPU",
                "cpu_count": 2,
                "threads": 2,
                "batch": 1,
                "resolution": 224,
                "warmup": 1,
                "repetitions": 5,
                "statistic": "median of the timed runs; spread = interquartile range (p75 - p25)",
                "versions": {"nascomp": "0.2.0", "torch": "2.15.0", "onnxruntime": "1.31.1"},
            },
            "measurements": [
                {"runtime": "onnxruntime", "precision": "fp32", **measured},
                {"runtime": "torch", "precision": "fp32", **measured, "latency_ms": 88.1, "p25_ms": 80.2, "p75_ms": 97.0},
                {"runtime": "onnxruntime", "precision": "int8", "skipped": "no int8 model for this target"},
            ],
        },
    )
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    teacher = make_teacher(root / "teacher")
    return {
        "search": make_search_run(root / "search"),
        "compress": make_compress_run(root / "compress", teacher),
        "train": teacher,
        "auto": make_auto_run(root / "auto"),
        "profile": make_profile(root / "profile.json"),
    }


# --- rendering (no browser) -------------------------------------------------------------------------


def test_each_kind_is_detected_and_written_where_expected(runs, tmp_path):
    expected = {"search": "search", "compress": "compress", "auto": "compress", "train": "train", "profile": "profile"}
    for name, source in runs.items():
        result = render_report(source)
        assert result.kind == expected[name], name
        assert result.path == (source.with_suffix(".html") if source.is_file() else source / "report.html")
        html = result.path.read_text()
        assert html.startswith("<!DOCTYPE html>") and "<script>" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in html and "<link" not in html and " src=" not in html
    custom = render_report(runs["search"], out=tmp_path / "elsewhere.html")
    assert custom.path == tmp_path / "elsewhere.html" and custom.path.is_file()


def test_search_page_shows_result_baseline_front_candidates_and_warnings(runs):
    result = render_report(runs["search"])
    html = result.path.read_text()
    assert result.sections == (
        "Result",
        "Warnings",
        "What was run",
        "Candidates",
        "Finalists",
        "Space evolution",
        "Search",
        "Training",
        "Time",
        "Not available",
    )
    assert "nascomp search --space s3-vit --budget 4gflops --preset smoke" in html
    assert "found − hand-designed" in html and "95 % CI −19.16 to +28.16" in html and "not told apart" in html
    assert html.count("<tr data-index=") >= 14 + 2 + 2 + 8 and html.count('class="chosen"') == 2  # the winner's candidate and finalist rows
    assert "stage 4 heads {16, 24, 32} fixed to 24" in " ".join(result.warnings)
    assert "step 0 → 1: 1 of 24 (stage, dimension) choices moved" in html
    assert '<table class="sortable" data-name="moved">' in html and '<td data-sort="{2, 3, 4}">{2, 3, 4}</td>' in html
    assert any(m.startswith("run.json versions") for m in result.missing)


def test_older_run_without_optional_files_lists_what_is_missing(runs, tmp_path):
    old = shutil.copytree(runs["search"], tmp_path / "old")
    for rel in ("run.json", "timings.json", "compare/result.json", "candidates.csv", "evolution/history.json", "supernet"):
        (shutil.rmtree if (old / rel).is_dir() else Path.unlink)(old / rel)
    best = json.loads((old / "best_arch.json").read_text())
    del best["compare"], best["collapsed"]
    (old / "best_arch.json").write_text(json.dumps(best))
    result = render_report(old)
    missing = "\n".join(result.missing)
    for rel in ("run.json", "timings.json", "compare/result.json", "candidates.csv", "evolution/history.json"):
        assert rel in missing
    assert "Candidates" in result.sections  # from search/result.json
    assert "Space evolution" in result.sections  # from evolution/step-*/et.json
    assert "Time" not in result.sections


def test_compress_page_puts_the_original_beside_the_compressed_model(runs):
    result = render_report(runs["compress"])
    html = result.path.read_text()
    assert result.title == "Compression: shrink of teacher under 6e5macs"
    assert "310.1 k" in html and "74.68 k" in html and "× 0.241" in html
    assert "56.30 %" in html and "46.10 %" in html  # the teacher's test top-1 beside the student's
    auto = render_report(runs["auto"])
    assert "not tried: drop-blocks: no leading-block configuration at full width meets the budget" in auto.warnings


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="the tensorboard package is not installed")
def test_train_page_charts_the_tensorboard_scalars_thinned(runs):
    html = render_report(runs["train"]).path.read_text()
    assert "train/images_per_s: 900 points, 301 shown" in html and "train/loss at step 899: " in html  # every 3rd and the last


def test_profile_page_lists_skipped_measurements(runs):
    result = render_report(runs["profile"])
    assert result.warnings == ("not measured: onnxruntime int8: no int8 model for this target",)
    assert "2.15.0" in result.path.read_text()


def test_errors_are_one_line(tmp_path):
    with pytest.raises(NascompError, match="not a nascomp run directory"):
        render_report(tmp_path)
    with pytest.raises(NascompError, match="no such run directory or profile JSON"):
        render_report(tmp_path / "nowhere")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(NascompError, match="not a profile report"):
        render_report(tmp_path / "x.json")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "best_arch.json").write_text("{not json")
    with pytest.raises(NascompError, match="not valid JSON"):
        render_report(tmp_path / "bad")


def test_cli(runs, tmp_path, capsys, monkeypatch):
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    assert main(["report", str(runs["train"]), "--out", str(tmp_path / "t.html"), "--open"]) == 0
    assert capsys.readouterr().out.strip().endswith(str(tmp_path / "t.html"))
    assert opened == [(tmp_path / "t.html").resolve().as_uri()]
    assert main(["report", str(runs["profile"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "profile"
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_report_package_loads_no_torch():
    code = "import sys, nascomp.report, nascomp.cli.report; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


# --- in the browser ---------------------------------------------------------------------------------


@needs_chromium
@pytest.mark.parametrize("name", ["search", "compress", "auto", "train", "profile"])
def test_page_works_in_chromium(browser, runs, name):
    result = render_report(runs[name])
    report = check_page(browser, result.path)
    assert report["problems"] == []
    assert report["charts"] >= 1 and report["tables"] >= 1 and report["sorted"] >= 3
    if name == "search":
        assert report["charts"] >= 7 and report["reordered"] > 0  # sorting really moved rows
    if name == "train" and importlib.util.find_spec("tensorboard") is not None:
        assert report["charts"] == 3 + 2  # the epochs' curves and one chart per TensorBoard tag


@needs_chromium
def test_a_real_click_sorts_the_candidates(browser, runs):
    browser.open(render_report(runs["search"]).path)
    column = "table[data-name=candidates] thead th:nth-child(4)"  # val top-1
    values = "Array.from(document.querySelectorAll('table[data-name=candidates] tbody tr')).map(r => parseFloat(r.cells[3].dataset.sort))"
    before = browser.evaluate(values)
    browser.click(column)
    ascending = browser.evaluate(values)
    browser.click(column)
    descending = browser.evaluate(values)
    assert ascending == sorted(before) != before and descending == sorted(before, reverse=True)
    assert browser.evaluate(f"document.querySelector({json.dumps(column)}).getAttribute('aria-sort')") == "descending"


@needs_chromium
@pytest.mark.parametrize(
    "fault, expected",
    [
        ("<script>throw new Error('injected failure')</script>", "uncaught exception: Error: injected failure"),
        ("<script>console.error('injected console error')</script>", "console error: injected console error"),
        ('<img src="missing.png" alt="">', "broken image"),
        ('<svg class="chart" viewBox="0 0 720 300" width="720" height="300"><title>empty</title></svg>', "has no visible data mark"),
        (
            '<script>document.querySelectorAll("table.sortable thead th").forEach(th => th.replaceWith(th.cloneNode(true)))</script>',
            "is not ascending",
        ),
    ],
)
def test_the_checker_catches_a_broken_page(browser, runs, tmp_path, fault, expected):
    html = render_report(runs["search"]).path.read_text().replace("</body>", fault + "</body>")
    broken = tmp_path / "broken.html"
    broken.write_text(html)
    problems = check_page(browser, broken)["problems"]
    assert any(expected in p for p in problems), problems
