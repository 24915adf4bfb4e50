"""The voice stage. Takes a `Script` and the broadcast's voice, gives a `Narration`: one WAV per sentence and the
engine's credit, spoken through the VOICEVOX engine's HTTP API (`engine_client`, following the engine's OpenAPI
document) by `narrator`, which waits for the engine, asks for each sentence's AudioQuery and synthesis, and takes a
sentence already spoken by this engine and voice from the cache the pipeline hands it.
"""
