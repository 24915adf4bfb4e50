"""benchmarks/render_peers.py's options and table, on made-up numbers: nothing is rendered or timed here."""

from __future__ import annotations

import pytest

from benchmarks.render_peers import METHODS, Measurement, parse_args, table


def a_row(method: str, target: float, wall: float) -> Measurement:
    return Measurement(
        method=method,
        target_seconds=target,
        video_seconds=target + 0.7,
        wall_seconds=wall,
        cpu_seconds=wall * 1.5,
        peak_rss_mib=300.4,
        largest_rss_mib=151.2,
        file_mib=5.55,
        process_seconds=wall + 1,
        detail={},
    )


def test_defaults_run_every_method_at_both_lengths() -> None:
    args = parse_args([])
    assert args.lengths == (60.0, 180.0)
    assert args.only == METHODS
    assert args.repeat == 1


def test_lengths_and_methods_are_lists() -> None:
    args = parse_args(["--lengths", "60, 180,", "--only", "ffmpeg,anchor,ffmpeg"])
    assert args.lengths == (60.0, 180.0)
    assert args.only == ("ffmpeg", "anchor")


@pytest.mark.parametrize(
    "argv", [["--only", "anchor,handbrake"], ["--lengths", "sixty"], ["--lengths", "5"], ["--repeat", "0"]]
)
def test_bad_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_table_gives_each_method_its_ratio_to_anchor_at_the_same_length() -> None:
    rows = [a_row("anchor", 60, 6.0), a_row("moviepy", 60, 30.0), a_row("anchor", 180, 20.0), a_row("ffmpeg", 180, 25)]
    lines = table(rows).splitlines()
    assert lines[0].startswith("| method | video s | wall s | × real time | wall ÷ anchor's |")
    assert lines[2] == "| anchor | 60.7 | 6.00 | 10.1 | 1.00 | 9.0 | 1.00 | 300 / 151 | 5.5 |"
    assert lines[3].startswith("| moviepy | 60.7 | 30.00 | 2.0 | 5.00 | 45.0 | 5.00 |")
    assert lines[5].startswith("| ffmpeg | 180.7 | 25.00 | 7.2 | 1.25 | 37.5 | 1.25 |")


def test_table_without_anchor_leaves_the_ratio_out() -> None:
    assert "| 6.00 | 10.1 | – | 9.0 | – |" in table([a_row("ffmpeg", 60, 6.0)])
