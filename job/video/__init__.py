"""The video stage. Takes a `Script` and its `Narration`, gives a `Rendering`: the MP4 (slides, burned-in
subtitles, the narration track), the thumbnail, SRT and WebVTT (`render`). The timeline is laid out in audio samples
(`timeline`); each distinct picture is drawn once (`slides`, on `canvas` with `fonts` and line breaking by `wrap`,
a story's own picture placed by `story_picture`) and ffmpeg encodes them in one pass (`encode`); `subtitles` writes
the caption files and `narration_audio` copies the podcast's M4A out of the finished video.
"""
