"""Load test of the Streamlit app: N concurrent headless-browser sessions each upload M images on the Predict page.

Counts errors, checks that every answer shown equals `dance predict`'s for the same file, and reports
the latency per session (upload -> all answers drawn, p50/p95/max) and the server's resident memory
before, at peak and after. Localhost only, bounded in sessions, images and time; not part of `make test`.

    .venv/bin/python bench/loadtest.py                      # 20 sessions x 5 images, writes bench/reliability.md
    .venv/bin/python bench/loadtest.py --sessions 4 --images 2 --no-write    # a quick smoke run

Uses Debian's chromium (`apt-get install chromium`, as `make test` does) through Playwright's Python API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.browser import SCRIPT_IDLE, free_port, launch_chromium, start_app, stop_process, wait_healthy  # noqa: E402
from dance import paths  # noqa: E402
from dance.data.labels import load_unlabelled  # noqa: E402
from dance.models import checkpoint  # noqa: E402
from dance.models.sidecar import sidecar_file  # noqa: E402
from dance.paths import find_data_dir  # noqa: E402


@dataclass
class Session:
    """What one browser session saw."""

    index: int
    files: list[Path]
    latency: float | None = None
    shown: list[str] = field(default_factory=list)
    confidences: list[str] = field(default_factory=list)
    error: str | None = None
    mismatches: list[str] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (psutil when installed, else /proc)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, in seconds (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine(load: float) -> str:
    """CPU model, logical cores and memory of this machine, in one line."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem = next((int(line.split()[1]) / 2**20 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), float("nan"))
    return f"{model}, {os.cpu_count()} logical cores, {mem:.0f} GiB RAM, Linux {platform.release()}; " \
           f"1-min load average {load:.1f} just before the sessions (the machine is shared with other jobs)"


def expected_answers(files: list[Path], weights: Path) -> dict[str, dict]:
    """`dance predict --json` for every file: the reference the app must match."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "dance", "predict", *map(str, files), "--json", "--weights",
                           str(weights)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"dance predict failed: {proc.stderr.strip()}")
    return {row["image"]: row for row in map(json.loads, proc.stdout.splitlines())}


def headline(row: dict) -> str:
    """The heading the Predict page shows for one CLI answer."""
    if row.get("error"):
        return "error"
    if row["unsure"]:
        ranked = sorted(row["probs"].items(), key=lambda kv: kv[1], reverse=True)
        return f"Not sure — top-2: {ranked[0][0]} or {ranked[1][0]}"
    return row["label"]


async def settle(page) -> None:
    """Wait until the script run is over and nothing is still loading."""
    await page.wait_for_timeout(300)
    await page.wait_for_function(SCRIPT_IDLE)
    await page.wait_for_function("() => document.querySelectorAll('[data-testid=stSkeleton]').length === 0")


async def run_session(browser, url: str, session: Session, timeout_ms: int) -> None:
    """Open the Predict page in a fresh context, upload the files, wait for every answer and read them."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = await context.new_page()
        page.set_default_timeout(timeout_ms)
        await page.goto(url)
        await page.get_by_role("heading", name="Predict", exact=True).first.wait_for()
        await settle(page)
        started = time.perf_counter()
        await page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(
            [str(p) for p in session.files])
        count = len(session.files)
        if count > 1:
            await page.get_by_text(f"of {count} images classified").first.wait_for()
        await page.wait_for_function(
            f"() => Array.from(document.querySelectorAll('[data-testid=stMain] h3'))"
            f".filter(h => !h.innerText.startsWith('Results:')).length >= {count}")
        await settle(page)
        session.latency = time.perf_counter() - started
        headings = await page.locator("[data-testid=stMain] h3").all_inner_texts()
        session.shown = [h.strip() for h in headings if not h.strip().startswith("Results:")]
        session.confidences = [c.strip() for c in await page.locator("[data-testid=stCaptionContainer]")
                               .all_inner_texts() if c.strip().startswith("confidence ")]
        exceptions = await page.locator("[data-testid=stException]").count()
        alerts = await page.locator("[data-testid=stAlertContentError]").all_inner_texts()
        if exceptions or alerts:
            session.error = f"{exceptions} exception(s), errors shown: {alerts[:3]}"
    except Exception as exc:  # noqa: BLE001 - a failed session is a result to count, not a crash of the bench
        session.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    finally:
        await context.close()


async def drive(url: str, sessions: list[Session], timeout_s: float, warmup: bool = False) -> None:
    """One Chromium, one context per session, all sessions started together (or only a warm-up visit)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        try:
            browser = await launch_chromium(pw)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        try:
            if warmup:
                page = await browser.new_page()
                page.set_default_timeout(int(timeout_s * 1000))
                await page.goto(url)
                await page.get_by_role("heading", name="Predict", exact=True).first.wait_for()
                await settle(page)
                await page.close()
            await asyncio.wait_for(
                asyncio.gather(*(run_session(browser, url, s, int(timeout_s * 1000)) for s in sessions)),
                timeout=timeout_s + 60)
        finally:
            await browser.close()


def start_server(port: int, weights_dir: Path, log_path: Path) -> subprocess.Popen:
    """The app as `make run` starts it, bound to 127.0.0.1; returns once it answers its health check."""
    proc = start_app(port, {"DANCE_WEIGHTS_DIR": str(weights_dir)}, open(log_path, "wb"))
    try:
        wait_healthy(proc, port, 120)
    except RuntimeError:
        proc.kill()
        raise SystemExit(f"streamlit did not start; see {log_path}") from None
    return proc


def report(args, weights: Path, sessions: list[Session], rss: dict[str, float], wall: float, command: str,
           load: float, server_cpu: float, alone: Session) -> str:
    """The results as Markdown."""
    latencies = np.array([s.latency for s in sessions if s.latency is not None])
    errors = [s for s in sessions if s.error]
    wrong = [s for s in sessions if s.mismatches]
    answers = sum(len(s.shown) for s in sessions)
    pct = (lambda q: f"{np.percentile(latencies, q):.1f} s") if len(latencies) else (lambda q: "n/a")
    lines = [
        "## Load test of the Streamlit app",
        "",
        f"- Date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Command: `{command}`",
        f"- Machine: {machine(load)}",
        f"- Checkpoint: `{weights.name}` ({json.loads(sidecar_file(weights).read_text())['arch']})",
        f"- Load: {args.sessions} concurrent Chromium sessions (one browser, one context each), each uploading "
        f"{args.images} different images from the data set's test/ folder on the Predict page "
        f"({args.sessions * args.images} uploads in all, no two sessions share an image).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| sessions with an error (exception, error box, timeout) | {len(errors)} of {len(sessions)} |",
        f"| answers shown | {answers} of {args.sessions * args.images} |",
        f"| answers differing from `dance predict` (label or confidence) | "
        f"{sum(len(s.mismatches) for s in sessions)} (in {len(wrong)} sessions) |",
        f"| one session alone first (same work, no concurrency): latency | "
        f"{f'{alone.latency:.1f} s' if alone.latency else alone.error} |",
        f"| latency per session, upload -> all answers drawn: p50 | {pct(50)} |",
        f"| p95 | {pct(95)} |",
        f"| max | {pct(100)} |",
        f"| server RSS before the sessions | {rss['before']:.0f} MB |",
        f"| server RSS peak during the sessions | {rss['peak']:.0f} MB |",
        f"| server RSS after the sessions closed | {rss['after']:.0f} MB |",
        f"| server CPU time used by the sessions (user + system) | {server_cpu:.0f} s |",
        f"| wall time of the sessions | {wall:.0f} s |",
        "",
    ]
    for s in errors:
        lines.append(f"- session {s.index}: {s.error}")
    if alone.mismatches:
        lines.append(f"- the lone session: {'; '.join(alone.mismatches[:5])}")
    for s in wrong:
        lines.append(f"- session {s.index}: {'; '.join(s.mismatches[:5])}")
    return "\n".join(lines) + "\n"


START, END = "<!-- loadtest:start -->", "<!-- loadtest:end -->"


def write_section(path: Path, text: str) -> None:
    """Replace the measured section of `path` (between the markers), keeping the hand-written notes around it."""
    section = f"{START}\n{text}{END}\n"
    old = path.read_text() if path.is_file() else ""
    if START in old and END in old:
        before, rest = old.split(START, 1)
        new = before + section + "\n" + rest.split(END, 1)[1].lstrip("\n")
    else:
        new = section + ("\n" + old if old else "")
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    """Run the load test and print (and by default write) the report; exit 1 on any error or mismatch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (max 40)")
    parser.add_argument("--images", type=int, default=5, help="images uploaded per session (max 8)")
    parser.add_argument("--weights-dir", type=Path, default=paths.WEIGHTS_DIR,
                        help="checkpoint folder the app reads; its first checkpoint (default first) is used")
    parser.add_argument("--timeout", type=float, default=600, help="seconds allowed per session")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "reliability.md")
    parser.add_argument("--no-write", action="store_true", help="print the report only")
    args = parser.parse_args(argv)
    args.sessions, args.images = min(args.sessions, 40), min(args.images, 8)
    stems = checkpoint.list_checkpoints(args.weights_dir)
    if not stems:
        raise SystemExit(f"no checkpoint in {args.weights_dir}; train one first or pass --weights-dir")
    weights = stems[0]
    pool = load_unlabelled(find_data_dir(None))
    needed = (args.sessions + 1) * args.images
    if len(pool) < needed:
        raise SystemExit(f"need {needed} test images, the data set has {len(pool)}")
    files = pool[:needed]
    expected = expected_answers(files, weights)
    sessions = [Session(i, files[i * args.images:(i + 1) * args.images]) for i in range(args.sessions)]
    alone = Session(args.sessions, files[args.sessions * args.images:])  # the same work with no concurrency

    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"dance-loadtest-{port}.log"
    server = start_server(port, args.weights_dir, log_path)
    rss = {"before": 0.0, "peak": 0.0, "after": 0.0}
    try:
        # one warm-up visit, so "before" includes the loaded model (what every real session starts from)
        asyncio.run(drive(f"http://127.0.0.1:{port}", [], 300, warmup=True))
        asyncio.run(drive(f"http://127.0.0.1:{port}", [alone], args.timeout))
        rss["before"] = rss["peak"] = rss_mb(server.pid)
        load, cpu_before, started = os.getloadavg()[0], cpu_seconds(server.pid), time.perf_counter()

        async def sampled():
            async def sampler():
                while True:
                    rss["peak"] = max(rss["peak"], rss_mb(server.pid))
                    await asyncio.sleep(0.5)

            task = asyncio.create_task(sampler())
            try:
                await drive(f"http://127.0.0.1:{port}", sessions, args.timeout)
            finally:
                task.cancel()

        asyncio.run(sampled())
        wall = time.perf_counter() - started
        server_cpu = cpu_seconds(server.pid) - cpu_before
        time.sleep(3)
        rss["after"] = rss_mb(server.pid)
    finally:
        stop_process(server, timeout=20)

    for s in [*sessions, alone]:
        if s.error:
            continue
        rows = [expected[str(p)] for p in s.files]
        want = [headline(r) for r in rows]
        if s.shown != want:
            s.mismatches.append(f"shown {s.shown} but dance predict says {want}")
        want_conf = [f"confidence {r['confidence']:.1%}" for r in rows if not r.get("error") and not r["unsure"]]
        if s.confidences != want_conf:
            s.mismatches.append(f"confidences {s.confidences} but dance predict says {want_conf}")
    command = "python bench/loadtest.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(args, weights, sessions, rss, wall, command.strip(), load, server_cpu, alone)
    print(text)
    if not args.no_write:
        write_section(args.output, text)
        print(f"wrote {args.output}")
    return 1 if any(s.error or s.mismatches for s in [*sessions, alone]) else 0


if __name__ == "__main__":
    sys.exit(main())
