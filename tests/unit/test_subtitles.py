"""SRT and WebVTT: exact format, escaping, and reading back what was written."""

from __future__ import annotations

import random

import pytest

from job.model import Cue
from job.video.subtitles import cue_text, parse_srt, parse_vtt, to_srt, to_vtt

CUES = [Cue(0.3, 1.8, "おはようございます。"), Cue(1.8, 3723.4567, "Rates rose & fell.")]


def test_srt_numbers_cues_with_comma_milliseconds_and_blank_lines_between() -> None:
    assert to_srt(CUES) == (
        "1\n00:00:00,300 --> 00:00:01,800\nおはようございます。\n"
        "\n"
        "2\n00:00:01,800 --> 01:02:03,457\nRates rose & fell.\n"
    )


def test_vtt_has_the_header_dot_milliseconds_and_escapes_markup() -> None:
    vtt = to_vtt([Cue(0, 2.5, "Tom & Jerry <b>live</b> --> now")])
    assert vtt == "WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.500\nTom &amp; Jerry &lt;b&gt;live&lt;/b&gt; → now\n"
    (cue,) = parse_vtt(vtt)
    assert cue.text == "Tom & Jerry <b>live</b> → now"


def test_a_cue_is_one_line_so_no_text_can_end_it_early() -> None:
    cues = [Cue(0, 1, "first line\n\nsecond   line"), Cue(1, 2, "1\n00:00:05,000 --> 00:00:06,000")]
    for text, parse in ((to_srt(cues), parse_srt), (to_vtt(cues), parse_vtt)):
        parsed = parse(text)
        assert [c.text for c in parsed] == ["first line second line", "1 00:00:05,000 → 00:00:06,000"]
        assert [(c.start, c.end) for c in parsed] == [(0, 1), (1, 2)]
    assert cue_text(" a\tb\n") == "a b"


def test_parsers_read_files_other_tools_write() -> None:
    srt = (
        "\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\nTwo\r\nlines\r\n\r\n\r\n"
        "2\r\n00:00:03,000 --> 00:00:04,000\r\nend\r\n"
    )
    assert parse_srt(srt) == [Cue(1.0, 2.5, "Two lines"), Cue(3.0, 4.0, "end")]
    vtt = (
        "WEBVTT - a title\n\nNOTE written by hand\n\nSTYLE\n::cue { color: red }\n\n"
        "00:01.000 --> 00:02.000 align:start\nshort timestamps &amp; settings\n\n"
        "intro\n01:00:00.250 --> 01:00:01.000\nwith an id\n"
    )
    assert parse_vtt(vtt) == [Cue(1.0, 2.0, "short timestamps & settings"), Cue(3600.25, 3601.0, "with an id")]
    with pytest.raises(ValueError, match="WEBVTT"):
        parse_vtt("1\n00:00:01.000 --> 00:00:02.000\nno header\n")


def test_what_is_written_reads_back_to_the_millisecond() -> None:
    rng = random.Random(4)
    alphabet = "abcXYZ &<>-→。、「」日本語 "
    cues, start = [], 0.0
    for _ in range(200):
        end = start + rng.uniform(0.001, 9)
        text = cue_text("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))) or "x"
        cues.append(Cue(start, end, text))
        start = end + rng.choice([0, 0.6])
    for parsed in (parse_srt(to_srt(cues)), parse_vtt(to_vtt(cues))):
        assert [c.text for c in parsed] == [c.text for c in cues]
        for got, want in zip(parsed, cues, strict=True):
            assert got.start == pytest.approx(want.start, abs=0.0005)
            assert got.end == pytest.approx(want.end, abs=0.0005)


def test_a_dialogues_cues_name_their_speaker_as_each_format_allows() -> None:
    cues = [
        Cue(0.0, 1.0, "こんにちは。", "四国めたん"),
        Cue(1.0, 2.0, "a < b & c", "Tom <the> & Jerry"),
        Cue(2.0, 3.0, "—"),
    ]
    vtt = to_vtt(cues)
    assert "<v 四国めたん>こんにちは。" in vtt
    assert "<v Tom &lt;the&gt; &amp; Jerry>a &lt; b &amp; c" in vtt  # nothing a name holds can end the span early
    assert [(c.speaker, c.text) for c in parse_vtt(vtt)] == [(c.speaker, c.text) for c in cues]
    assert [c.text for c in parse_srt(to_srt(cues))] == [
        "四国めたん: こんにちは。",
        "Tom <the> & Jerry: a < b & c",
        "—",
    ]


def test_a_voice_span_with_classes_and_a_closing_tag_is_read_as_players_write_it() -> None:
    (cue,) = parse_vtt("WEBVTT\n\n00:00.000 --> 00:01.000\n<v.loud Esme>It's a blue apple tree!</v>\n")
    assert (cue.speaker, cue.text) == ("Esme", "It's a blue apple tree!")
