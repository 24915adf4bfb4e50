"""What a daily broadcast costs in GPU time, measured: one whole run (`anchor render`, every stage) of a broadcast
of about three minutes, against the GPU time of a VM kept up an hour a day.

    python -m benchmarks.run_cost [--stories 8] [--resolution 1920x1080] [--on-demand 2.5] [--spot 0.9]

The run is the job as a pod runs it: news from a feed file, the built-in script, speech from the CPU stand-in
engine (voicevox_standin, on this machine's CPU: a real GPU engine speaks faster), render, publication to a local
directory and the broadcast's page and feeds. The pod holds its GPU for the job's whole run plus the engine's
start-up; the GPU time below is the job's wall time (the manifest's gpuTime) and, separately, that plus an
allowance for the engine's start, so the figure is an upper bound for this machine's speed. The prices are examples
(set yours in the chart's cost.gpuPrices); the ratio to the VM does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from voicevox_standin.server import start_standin

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "run_cost.json"
VM_SECONDS_A_DAY = 3600.0
ENGINE_START_ALLOWANCE = 30.0
"""Seconds a GPU engine takes to load its models before the job starts (the pod holds the GPU meanwhile)."""
SUMMARY = (
    "市の担当者によりますと、この計画は地域の暮らしを支えるため数年前から準備されてきたもので、来年の春から本格的に始まる予定です。"
    "住民からは期待の声が上がる一方、費用や運用の体制について丁寧な説明を求める意見も出ています。"
    "市は説明会を重ね、寄せられた意見を計画に反映させたいとしています。"
)
TITLES = [
    "市議会、夜間バスの通年運行を可決",
    "北部の丘陵地で大規模な洞窟を確認",
    "図書館が工具の貸し出しを開始",
    "港町で冬の灯りまつりが開幕",
    "地方路線バスで自動運転の実証運行",
    "駅前に新しい図書館が完成",
    "気象庁、週末は全国的に冷え込む見通し",
    "高校生が開発した防災アプリが全国大会で優勝",
    "老舗の和菓子店が百周年",
    "市民マラソンの参加者募集が始まる",
]


def feed(stories: int, now: datetime) -> str:
    items = "".join(
        f"<item><title>{escape(title)}</title><link>https://news.example.jp/{n}</link>"
        f"<guid>bench-{n}</guid><pubDate>{(now - timedelta(minutes=10 * n)).strftime('%a, %d %b %Y %H:%M:%S +0000')}"
        f"</pubDate><description>{escape(SUMMARY)}</description></item>"
        for n, title in enumerate(TITLES[:stories])
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>ベンチマーク通信</title>'
        f"<link>https://news.example.jp/</link><description>bench</description>{items}</channel></rss>"
    )


def broadcast(work: Path, stories: int, resolution: str) -> Path:
    document = {
        "apiVersion": "anchor.news/v1alpha1",
        "kind": "NewsBroadcast",
        "metadata": {"name": "cost-bench"},
        "spec": {
            "sources": {"feeds": [{"url": "feed.xml"}], "maxAgeHours": 0, "rememberAiredHours": 0},
            "script": {"language": "ja", "stories": stories, "title": "ベンチマークニュース"},
            "video": {"resolution": resolution, "storyImages": False},
            "output": {"directory": str(work / "out"), "audioCache": {"enabled": False}},
            "timeZone": "Asia/Tokyo",
        },
    }
    path = work / "broadcast.yaml"
    path.write_text(json.dumps(document, ensure_ascii=False))
    return path


def run_once(stories: int, resolution: str, allocation: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="anchor-cost-") as scratch, start_standin() as engine:
        work = Path(scratch)
        (work / "feed.xml").write_text(feed(stories, datetime.now(UTC)), encoding="utf-8")
        path = broadcast(work, stories, resolution)
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
            "PYTHONPATH": str(REPO),
            "ANCHOR_VOICEVOX_URL": engine.url,
            "ANCHOR_GPU_ALLOCATION": json.dumps(allocation),
        }
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", "anchor", "render", str(path), "--run-id", "bench"],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        wall = time.monotonic() - started
        if completed.returncode != 0:
            raise SystemExit(f"the run failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        manifest = json.loads((work / "out" / "cost-bench" / "bench" / "manifest.json").read_text())
        events = [json.loads(line) for line in completed.stderr.splitlines() if line.startswith("{")]
        return {"wall": wall, "result": result, "manifest": manifest, "stages": _stages(events)}


def _stages(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds from the run's start to each stage's end, from the events' timestamps."""
    times = {e["event"]: datetime.fromisoformat(e["time"]) for e in events if "time" in e and "event" in e}
    start = times.get("run.start")
    if start is None:
        return {}
    names = ("script.done", "voice.done", "render.done", "store.done", "listing.done")
    return {name: round((times[name] - start).total_seconds(), 1) for name in names if name in times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stories", type=int, default=8)
    parser.add_argument("--resolution", default="1920x1080")
    parser.add_argument("--on-demand", type=float, default=2.5, help="example price of a GPU-hour, on demand")
    parser.add_argument("--spot", type=float, default=0.9, help="example price of a GPU-hour, spot")
    args = parser.parse_args()
    price = {"onDemand": args.on_demand, "spot": args.spot}
    allocation = {"resource": "nvidia.com/gpu", "count": 1, "currency": "USD", "price": price}
    measured = run_once(args.stories, args.resolution, allocation)
    video = float(measured["manifest"]["durationSeconds"])
    job_seconds = float(measured["manifest"]["gpuTime"]["gpuSeconds"])
    pod_seconds = job_seconds + ENGINE_START_ALLOWANCE

    def per_day(seconds: float, hourly: float) -> float:
        return round(seconds / 3600 * hourly, 4)

    report = {
        "measuredAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, CPU stand-in engine",
        "resolution": args.resolution,
        "stories": measured["result"].get("stories"),
        "videoSeconds": round(video, 1),
        "processWallSeconds": round(measured["wall"], 1),
        "stageEndSeconds": measured["stages"],
        "manifestGpuTime": measured["manifest"]["gpuTime"],
        "podGpuSecondsWithEngineStart": round(pod_seconds, 1),
        "examplePricePerGpuHour": price,
        "perDay": {
            "broadcast": {"onDemand": per_day(pod_seconds, args.on_demand), "spot": per_day(pod_seconds, args.spot)},
            "vmHourADay": {
                "onDemand": per_day(VM_SECONDS_A_DAY, args.on_demand),
                "spot": per_day(VM_SECONDS_A_DAY, args.spot),
            },
        },
        "gpuTimeShareOfVm": round(pod_seconds / VM_SECONDS_A_DAY, 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
