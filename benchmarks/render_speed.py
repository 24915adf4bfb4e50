"""How fast the render stage is: seconds of video per second of wall time, for about a minute of narration.

    python -m benchmarks.render_speed [--resolution 1920x1080] [--fps 30] [--seconds 60] [--language ja]

No VOICEVOX engine is needed: each sentence's "voice" is a synthesised tone with a little noise, as long as a
newsreader would take to say it. The target is at least 6x real time at 1920x1080@30 on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from api.v1alpha1 import Video
from job.model import Credit, EngineInfo, Narration, Script, Segment, Story, Utterance
from job.video import render
from tests.support.audio import write_tone

SAMPLE_RATE = 24_000
HEADLINES = {
    "ja": [
        "気象庁、週末にかけて全国的に気温が下がる見通し",
        "地方の路線バス、自動運転で実証運行を開始",
        "港町で冬の灯りまつり、今週末に開幕",
        "新しい図書館が駅前に完成、来月から利用開始",
    ],
    "en": [
        "Cold snap expected across the country this weekend",
        "Rural bus routes begin self-driving trials",
        "Harbour town lights up for its winter festival",
        "New library opens next to the station next month",
    ],
}
SENTENCE = {
    "ja": "関係者によりますと、この取り組みは地域の暮らしを支えるために計画されたもので、今後も続けられる予定です。",
    "en": "Officials say the plan was drawn up to support local life, and it is expected to continue next year.",
}


def build(language: str, seconds: float, workdir: Path) -> tuple[Script, Narration]:
    """A script of an intro, four stories and an outro, and tone "voices" adding up to about `seconds`."""
    aired = datetime(2026, 11, 24, 7, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    stories = [
        Story(title, f"https://news.example/{n}", "Example News", SENTENCE[language] * 2, aired - timedelta(hours=n))
        for n, title in enumerate(HEADLINES[language])
    ]
    per_story = max(1, round((seconds - 12) / 4 / 4.5))
    segments = [Segment("intro", ("おはようございます。" if language == "ja" else "Good morning.",) * 2)]
    segments += [Segment("story", (story.title, *[SENTENCE[language]] * per_story), story) for story in stories]
    segments.append(Segment("outro", ("以上、ニュースでした。" if language == "ja" else "That's all for today.",) * 2))
    script = Script(language, "ベンチマークニュース", "ずんだもん", aired, tuple(segments))  # type: ignore[arg-type]

    spoken = sum(len(s) for segment in segments for s in segment.sentences)
    seconds_per_char = (seconds - 0.6 * len(segments)) / spoken
    utterances = []
    for index, (number, sentence) in enumerate((n, s) for n, segment in enumerate(segments) for s in segment.sentences):
        length = round(len(sentence) * seconds_per_char * SAMPLE_RATE)
        path = write_tone(workdir / f"{index:04d}.wav", length, SAMPLE_RATE, frequency=180, noise=0.02)
        utterances.append(Utterance(number, sentence, path, length / SAMPLE_RATE))
    credit = Credit("VOICEVOX:ずんだもん", "ずんだもん", "ノーマル", 3)
    return script, Narration(tuple(utterances), SAMPLE_RATE, (credit,), EngineInfo("none", "0", "cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", default="1920x1080", choices=["1920x1080", "1280x720", "1080x1920"])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--language", default="ja", choices=["ja", "en"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="anchor-bench-") as scratch:
        workdir = Path(scratch)
        script, narration = build(args.language, args.seconds, workdir)
        video = Video.model_validate({"resolution": args.resolution, "fps": args.fps})
        marks: dict[str, float] = {}

        def progress(step: str, done: int, total: int) -> None:
            marks.setdefault(step, time.perf_counter())

        started = time.perf_counter()
        rendering = render.render(script, narration, video, workdir / "render", progress=progress)
        wall = time.perf_counter() - started
        size = rendering.video.stat().st_size
    drawing = marks.get("encode", started) - started
    print(
        f"{args.resolution}@{args.fps}: {rendering.duration:.1f} s of video in {wall:.2f} s "
        f"(pictures {drawing:.2f} s, encoding {wall - drawing:.2f} s), {size / 1e6:.1f} MB, "
        f"{len(narration.utterances)} sentences at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(f"speed: {rendering.duration / wall:.2f} seconds of video per wall second")


if __name__ == "__main__":
    main()
