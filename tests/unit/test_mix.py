"""The broadcast's audio mix: a bed that dips under speech, comes back between stories and fades at both ends, and
a mix at its loudness target under its true-peak ceiling, measured with ffmpeg's own ebur128 on real files."""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from job.video.mix import Bed, Loudness, MixError, MixReport, MusicError, _Envelope, measure, mix
from tests.support.audio import write_wav
from tests.support.media import FFMPEG

VOICE_RATE = 24_000
RATE = 48_000
DURATION = 22.0
SEGMENTS = ((4.0, 7.0), (10.0, 12.0), (14.0, 15.5))
"""Three stories with long pauses between them, so the bed has room to come back up."""
UNDER_SPEECH = ((4.6, 6.6), (10.5, 11.7))
BETWEEN_STORIES = (8.0, 9.6)
AT_THE_END = (16.5, 19.5)
"""After the last story and before the fade-out (the last 2 s)."""
BAND = (100.0, 400.0)
"""The bed's chord (165 and 220 Hz); the voice is at 2.2-2.8 kHz."""

FORMATS = {
    "flac": ["-c:a", "flac"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "ogg": ["-c:a", "libvorbis"],
    "opus": ["-c:a", "libopus", "-b:a", "96k"],
    "wav": ["-c:a", "pcm_s16le"],
    "m4a": ["-c:a", "aac", "-b:a", "128k"],
}


# -- fixtures ------------------------------------------------------------------------------------------------------


def _write_voice(path: Path, samples: np.ndarray) -> Path:
    return write_wav(path, samples, VOICE_RATE)


def _narration(path: Path, *, level: float = 0.2, clicks: bool = False, silent: bool = False) -> Path:
    """Syllable-like bursts of a 2.2-2.8 kHz tone, each under a smooth window, in three segments with pauses."""
    track = np.zeros(round(DURATION * VOICE_RATE))
    if not silent:
        rng = np.random.default_rng(3)
        for start, end in SEGMENTS:
            position = start
            while position + 0.18 <= end + 1e-9:
                length = round(0.18 * VOICE_RATE)
                t = np.arange(length) / VOICE_RATE
                burst = level * np.hanning(length) * np.sin(2 * np.pi * rng.uniform(2200, 2800) * t)
                first = round(position * VOICE_RATE)
                track[first : first + length] += burst
                position += 0.25
        if clicks:  # sharp transients well above the speech: the limiter's work
            for second in (5.0, 11.0, 14.5):
                first = round(second * VOICE_RATE)
                track[first : first + 24] += 0.95 * np.hanning(24)
    return _write_voice(path, track)


def _music(path: Path, seconds: float) -> Path:
    """A low two-note chord in stereo, in the format that the file name's extension says."""
    chord = "0.3*sin(2*PI*165*t)+0.3*sin(2*PI*220*t)"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"aevalsrc={chord}|{chord}:s=44100:d={seconds}", *FORMATS[path.suffix[1:]], str(path)],
        check=True,
    )  # fmt: skip
    return path


def _samples(path: Path) -> np.ndarray:
    """The output's samples as float, one column per channel; checks it is 48 kHz 16-bit stereo."""
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (RATE, 2, 2)
        data = wav.readframes(wav.getnframes())
    return np.frombuffer(data, dtype="<i2").reshape(-1, 2).astype(np.float64) / 32768


def _band_db(samples: np.ndarray, span: tuple[float, float], band: tuple[float, float] = BAND) -> float:
    """The power of the bed's frequency band within `span` (seconds), in dB: the voice does not count."""
    piece = samples[round(span[0] * RATE) : round(span[1] * RATE)].mean(axis=1)
    window = np.hanning(len(piece))
    spectrum = np.abs(np.fft.rfft(piece * window)) ** 2
    frequencies = np.fft.rfftfreq(len(piece), 1 / RATE)
    # Parseval, so spans of different lengths compare: the band's share of the mean power per sample.
    power = 2 * spectrum[(frequencies >= band[0]) & (frequencies <= band[1])].sum() / (len(piece) * np.sum(window**2))
    return float(10 * np.log10(power + 1e-20))


def _speech() -> list[tuple[float, float]]:
    return list(SEGMENTS)


def _assert_on_target(report: MixReport, output: Path, target: float, ceiling: float = -1.5) -> Loudness:
    measured = measure(output)
    assert abs(measured.integrated_lufs - target) <= 0.5, measured
    assert measured.true_peak_dbtp <= ceiling, measured
    assert report.loudness == measured, "the report is what the written file measures"
    return measured


def _assert_length(output: Path) -> None:
    with wave.open(str(output), "rb") as wav:
        assert wav.getnframes() == round(DURATION * RATE)


# -- the bed -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", list(FORMATS))
def test_the_bed_dips_under_speech_comes_back_between_stories_and_fades(tmp_path: Path, extension: str) -> None:
    narration = _narration(tmp_path / "narration.wav")
    music = _music(tmp_path / f"bed.{extension}", 30)
    output = tmp_path / "mix.wav"

    report = mix(narration, _speech(), output, bed=Bed(music))

    assert report.music
    _assert_length(output)
    _assert_on_target(report, output, -16.0)
    samples = _samples(output)
    between = _band_db(samples, BETWEEN_STORIES)
    for span in UNDER_SPEECH:
        assert between - _band_db(samples, span) >= 12, f"the bed is not ducked under the speech at {span}"
    assert abs(_band_db(samples, AT_THE_END) - between) < 1.5, "the bed is back up after the last story"
    assert _band_db(samples, (2.5, 3.5)) - _band_db(samples, (0.0, 0.1)) >= 20, "the bed fades in"
    assert _band_db(samples, (DURATION - 0.1, DURATION)) < between - 20, "the bed fades out"


def _loudness_of(path: Path, span: tuple[float, float]) -> float:
    piece = path.with_name(f"{path.stem}-{span[0]}.wav")
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(path), "-af",
         f"atrim=start={span[0]}:end={span[1]}", str(piece)],
        check=True,
    )  # fmt: skip
    return measure(piece).integrated_lufs


@pytest.mark.parametrize("level", [-6.0, -20.0])
def test_between_stories_the_bed_sits_its_level_below_the_voice(tmp_path: Path, level: float) -> None:
    output = tmp_path / "mix.wav"
    mix(_narration(tmp_path / "narration.wav"), _speech(), output, bed=Bed(_music(tmp_path / "bed.flac", 30), level))

    voice = _loudness_of(output, SEGMENTS[0])  # the bed is 15 dB down under it: the voice's own loudness
    assert abs(_loudness_of(output, BETWEEN_STORIES) - (voice + level)) <= 1.0


def test_a_long_bed_is_trimmed_and_a_short_one_looped(tmp_path: Path) -> None:
    narration = _narration(tmp_path / "narration.wav")
    for name, seconds in (("long.mp3", 90.0), ("short.ogg", 1.7)):
        output = tmp_path / f"{name}.wav"
        report = mix(narration, _speech(), output, bed=Bed(_music(tmp_path / name, seconds)))
        _assert_length(output)
        _assert_on_target(report, output, -16.0)
        samples = _samples(output)
        between = _band_db(samples, BETWEEN_STORIES)
        assert abs(_band_db(samples, AT_THE_END) - between) < 1.5, f"{name}: the bed is still there at the end"
        assert between - _band_db(samples, UNDER_SPEECH[0]) >= 12


def test_the_loudness_target_is_met_at_minus_23_too(tmp_path: Path) -> None:
    narration = _narration(tmp_path / "narration.wav")
    output = tmp_path / "mix.wav"
    report = mix(narration, _speech(), output, target_lufs=-23.0, bed=Bed(_music(tmp_path / "bed.wav", 30)))
    _assert_on_target(report, output, -23.0)
    assert report.target_lufs == -23.0 and report.ceiling_dbtp == -1.5


def test_an_aac_encode_of_the_mix_stays_on_target(tmp_path: Path) -> None:
    """The encoder's AAC, as the video gets it, of a mix whose peaks had to be limited to the ceiling."""
    narration = _narration(tmp_path / "narration.wav", level=0.08, clicks=True)
    output = tmp_path / "mix.wav"
    report = mix(narration, _speech(), output, bed=Bed(_music(tmp_path / "bed.m4a", 30)))
    assert report.limited
    encoded = tmp_path / "mix.mp4"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(output), "-c:a", "aac", "-b:a", "128k",
         str(encoded)],
        check=True,
    )  # fmt: skip

    measured = measure(encoded)
    print(f"mix: {report.loudness}; AAC 128k: {measured}")
    assert abs(measured.integrated_lufs + 16.0) <= 1.0
    assert measured.true_peak_dbtp <= -1.5 + 0.5


# -- speech alone ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [-16.0, -23.0])
def test_without_music_the_speech_alone_is_normalised(tmp_path: Path, target: float) -> None:
    output = tmp_path / "mix.wav"
    report = mix(_narration(tmp_path / "narration.wav"), _speech(), output, target_lufs=target)

    assert not report.music
    _assert_length(output)
    _assert_on_target(report, output, target)
    assert report.gain_db != 0
    left, right = _samples(output).T
    assert np.array_equal(left, right), "the mono narration on both channels"


def test_peaks_past_the_ceiling_are_limited(tmp_path: Path) -> None:
    output = tmp_path / "mix.wav"
    narration = _narration(tmp_path / "narration.wav", level=0.08, clicks=True)
    report = mix(narration, _speech(), output, ceiling_dbtp=-1.0)

    assert report.limited
    _assert_on_target(report, output, -16.0, ceiling=-1.0)


def test_speech_under_the_ceiling_is_not_limited(tmp_path: Path) -> None:
    report = mix(_narration(tmp_path / "narration.wav"), _speech(), tmp_path / "mix.wav", target_lufs=-23.0)
    assert not report.limited


@pytest.mark.parametrize("music", [False, True])
def test_a_silent_narration_gets_no_gain(tmp_path: Path, music: bool) -> None:
    output = tmp_path / "mix.wav"
    bed = Bed(_music(tmp_path / "bed.flac", 30)) if music else None
    report = mix(_narration(tmp_path / "narration.wav", silent=True), _speech(), output, bed=bed)

    _assert_length(output)
    assert report.gain_db == 0
    assert report.loudness == measure(output)
    if music:
        assert report.loudness.integrated_lufs < -20, "the bed stays a bed, not raised to the target"
    else:
        assert report.loudness.integrated_lufs <= -69.5
        assert not _samples(output).any()
    json.dumps(report.document())


# -- a bed that cannot be used ---------------------------------------------------------------------------------


def test_garbage_named_mp3_is_refused_naming_the_file(tmp_path: Path) -> None:
    song = tmp_path / "song.mp3"
    song.write_bytes(np.random.default_rng(1).bytes(200_000))
    with pytest.raises(MusicError, match=r"song\.mp3.*cannot be used") as raised:
        mix(_narration(tmp_path / "narration.wav"), _speech(), tmp_path / "mix.wav", bed=Bed(song))
    assert len(str(raised.value)) < 500


def test_a_file_over_50_mib_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.flac"
    with big.open("wb") as sparse:
        sparse.truncate(51 * 1024 * 1024)
    with pytest.raises(MusicError, match=r"big\.flac is 51 MiB, larger than the 50 MiB allowed"):
        mix(_narration(tmp_path / "narration.wav"), _speech(), tmp_path / "mix.wav", bed=Bed(big))


def test_a_file_without_sound_is_refused(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=c=navy:s=64x64:d=1:r=5",
         "-c:v", "libx264", "-preset", "ultrafast", str(video)],
        check=True,
    )  # fmt: skip
    empty = tmp_path / "empty.wav"
    _write_voice(empty, np.zeros(0))
    narration = _narration(tmp_path / "narration.wav")
    with pytest.raises(MusicError, match=r"clip\.mp4 cannot be used: it has no audio stream"):
        mix(narration, _speech(), tmp_path / "mix.wav", bed=Bed(video))
    with pytest.raises(MusicError, match=r"empty\.wav cannot be used: it has no sound"):
        mix(narration, _speech(), tmp_path / "mix.wav", bed=Bed(empty))
    with pytest.raises(MusicError, match=r"missing\.ogg cannot be read"):
        mix(narration, _speech(), tmp_path / "mix.wav", bed=Bed(tmp_path / "missing.ogg"))


def test_an_unreadable_narration_is_a_mix_error(tmp_path: Path) -> None:
    broken = tmp_path / "narration.wav"
    broken.write_bytes(b"RIFF....WAVEnot really")
    with pytest.raises(MixError, match=r"narration\.wav"):
        mix(broken, [], tmp_path / "mix.wav")
    with pytest.raises(MixError, match="could not measure"):
        measure(tmp_path / "nothing.wav")


# -- the envelope and the report -------------------------------------------------------------------------------


def _envelope(speech: list[tuple[float, float]], *, loop: int | None = None) -> np.ndarray:
    frames = round(DURATION * RATE)
    envelope = _Envelope.around(speech, frames, loop or frames, Bed(Path("bed.flac")))
    return envelope.gain(0, frames).astype(np.float64)


def test_the_envelope_is_down_before_the_voice_starts_and_has_no_steps() -> None:
    gain = _envelope(_speech())
    db = 20 * np.log10(np.maximum(gain, 1e-12))

    def at(second: float) -> float:
        return float(db[round(second * RATE)])

    assert at(3.0) == pytest.approx(0.0, abs=0.01), "up before the first story"
    assert at(3.65) > -0.1 and at(4.0) == pytest.approx(-15.0, abs=0.01), "ramps down in the 0.3 s before it"
    assert at(7.0) == pytest.approx(-15.0, abs=0.01) and at(7.5) == pytest.approx(0.0, abs=0.01)
    assert at(0.0) < -100 and at(1.0) == pytest.approx(20 * np.log10(0.5), abs=0.01), "a raised-cosine fade"
    # The largest step between neighbouring samples: 15 dB over a 0.3 s raised cosine is ~0.004 dB a sample.
    steps = np.abs(np.diff(db[round(3 * RATE) : round(19 * RATE)]))
    assert steps.max() < 0.01


def test_spans_too_close_for_the_bed_to_come_back_are_joined() -> None:
    db = 20 * np.log10(np.maximum(_envelope([(4.0, 6.0), (6.6, 8.0)]), 1e-12))
    assert db[round(6.3 * RATE)] == pytest.approx(-15.0, abs=0.01), "no swell in a 0.6 s pause"


def test_a_looped_bed_dips_smoothly_at_its_seams() -> None:
    loop = round(1.7 * RATE)
    gain = _envelope([], loop=loop)
    seam = 5 * loop
    assert gain[seam] == 0 and gain[seam - round(0.05 * RATE)] == pytest.approx(1.0, abs=1e-6)
    assert np.abs(np.diff(gain[seam - 4800 : seam + 4800])).max() < 0.001


def test_the_report_is_a_camel_case_document() -> None:
    report = MixReport(Loudness(-16.04, -1.6, 4.2), -16.0, -1.5, 7.254, True, True)
    assert report.document() == {
        "integratedLufs": -16.04,
        "truePeakDbtp": -1.6,
        "loudnessRangeLu": 4.2,
        "targetLufs": -16.0,
        "ceilingDbtp": -1.5,
        "gainDb": 7.25,
        "limited": True,
        "music": True,
    }
    silent = MixReport(Loudness(-70.0, float("-inf"), 0.0), -16.0, -1.5, 0.0, False, False)
    assert json.loads(json.dumps(silent.document()))["truePeakDbtp"] is None
