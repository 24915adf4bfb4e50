"""The job program: one broadcast run, from feeds to a published video, in one package per stage.

    news/     feeds in (fetched and parsed without trusting them), `Story` objects and their pictures out
    script/   stories in, the anchor's words out (`Script`): built-in templates, or an OpenAI-compatible LLM
    voice/    a script in, one WAV per sentence out (`Narration`), through the VOICEVOX engine's HTTP API
    video/    script and narration in, the MP4, thumbnail, subtitles and podcast audio out (`Rendering`)
    publish/  the run's files in, published last-manifest-first, and the broadcast's page and feeds rewritten
    memory/   what a broadcast remembers between pods and days: aired stories, checkpoints, the audio cache
    shared/   what stages share without importing each other: storage, a picture fitted to its room, URL hygiene

The stages never import one another (tests/unit/test_layers.py): they meet in `model.py`'s types, and
`pipeline.py` runs them in order. `cli.py` is the command line, `progress.py` the run's events, `telemetry.py`
the GPU's, `cost.py` the GPU time's price.
"""
