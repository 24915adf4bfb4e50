"""How fast the render stage is: seconds of video per second of wall time, for about a minute of narration.

    python -m benchmarks.render_speed [--resolution 1920x1080] [--fps 30] [--seconds 60] [--language ja]
                                      [--cast none|anchor|dialogue]

No VOICEVOX engine is needed: each sentence's "voice" is a synthesised tone with a little noise, as long as a
newsreader would take to say it, timed as the engine times its sounds (a consonant and a vowel every 0.13 s, a
pause now and then), so the cast's mouths move as much as with real speech. --cast anchor shows one speaking
anchor (the built-in character), dialogue two presenters taking turns sentence by sentence, none the slides alone.
Targets on 2 cores at 1920x1080@30: none 6x real time, a speaking anchor 8x, a dialogue of two 7x.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from api.v1alpha1 import CastMember, Video
from job.model import Credit, EngineInfo, Narration, Phoneme, Script, Segment, Story, Utterance
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


def build(
    language: str, seconds: float, workdir: Path, cast: Sequence[str] = ("ずんだもん",)
) -> tuple[Script, Narration]:
    """A script of an intro, four stories and an outro, and tone "voices" adding up to about `seconds`, spoken by
    the `cast` in turn, sentence by sentence."""
    aired = datetime(2026, 11, 24, 7, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    stories = [
        Story(title, f"https://news.example/{n}", "Example News", SENTENCE[language] * 2, aired - timedelta(hours=n))
        for n, title in enumerate(HEADLINES[language])
    ]
    per_story = max(1, round((seconds - 12) / 4 / 4.5))
    segments = [Segment("intro", ("おはようございます。" if language == "ja" else "Good morning.",) * 2)]
    segments += [Segment("story", (story.title, *[SENTENCE[language]] * per_story), story) for story in stories]
    segments.append(Segment("outro", ("以上、ニュースでした。" if language == "ja" else "That's all for today.",) * 2))
    format = "dialogue" if len(cast) > 1 else "monologue"
    script = Script(language, "ベンチマークニュース", cast[0], aired, tuple(segments), tuple(cast), format)  # type: ignore[arg-type]

    spoken = sum(len(s) for segment in segments for s in segment.sentences)
    seconds_per_char = (seconds - 0.6 * len(segments)) / spoken
    utterances = []
    for index, (number, sentence) in enumerate((n, s) for n, segment in enumerate(segments) for s in segment.sentences):
        length = round(len(sentence) * seconds_per_char * SAMPLE_RATE)
        path = write_tone(workdir / f"{index:04d}.wav", length, SAMPLE_RATE, frequency=180, noise=0.02)
        speaker = cast[index % len(cast)]
        utterances.append(
            Utterance(number, sentence, path, length / SAMPLE_RATE, speaker, _sounds(length / SAMPLE_RATE))
        )
    credit = Credit("VOICEVOX:ずんだもん", "ずんだもん", "ノーマル", 3)
    return script, Narration(tuple(utterances), SAMPLE_RATE, (credit,), EngineInfo("none", "0", "cpu"))


def _sounds(seconds: float) -> tuple[Phoneme, ...]:
    """Sounds as the engine would time a sentence this long: silence, then consonant-vowel moras of 0.05 + 0.08 s
    through the five vowels, a 0.3 s pause every 12 moras, silence at the end."""
    sounds = [Phoneme("sil", 0.0, 0.096)]
    at, count = 0.096, 0
    while at + 0.13 < seconds - 0.096:
        if count and count % 12 == 0 and at + 0.43 < seconds - 0.096:
            sounds.append(Phoneme("pau", at, at + 0.3))
            at += 0.3
        sounds += [Phoneme("k", at, at + 0.05), Phoneme("aiueo"[count % 5], at + 0.05, at + 0.13)]
        at, count = at + 0.13, count + 1
    sounds.append(Phoneme("sil", at, seconds))
    return tuple(sounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", default="1920x1080", choices=["1920x1080", "1280x720", "1080x1920"])
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--language", default="ja", choices=["ja", "en"])
    parser.add_argument("--cast", default="anchor", choices=["none", "anchor", "dialogue"])
    args = parser.parse_args()
    names = ("めたん", "ずんだもん") if args.cast == "dialogue" else ("ずんだもん",)
    members = [CastMember.model_validate({"name": name}) for name in names] if args.cast != "none" else []
    with tempfile.TemporaryDirectory(prefix="anchor-bench-") as scratch:
        workdir = Path(scratch)
        script, narration = build(args.language, args.seconds, workdir, names)
        video = Video.model_validate({"resolution": args.resolution, "fps": args.fps})
        marks: dict[str, float] = {}

        def progress(step: str, done: int, total: int) -> None:
            marks.setdefault(step, time.perf_counter())

        started = time.perf_counter()
        rendering = render.render(script, narration, video, workdir / "render", progress=progress, cast=members)
        wall = time.perf_counter() - started
        size = rendering.video.stat().st_size
    drawing = marks.get("encode", started) - started
    print(
        f"{args.resolution}@{args.fps}, cast {args.cast}: {rendering.duration:.1f} s of video in {wall:.2f} s "
        f"(pictures {drawing:.2f} s, encoding {wall - drawing:.2f} s), {size / 1e6:.1f} MB, "
        f"{len(narration.utterances)} sentences at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print(f"speed: {rendering.duration / wall:.2f} seconds of video per wall second")


if __name__ == "__main__":
    main()
