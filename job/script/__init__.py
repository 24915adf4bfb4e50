"""The script stage. Takes the chosen `Story` objects, the broadcast's `spec.script` and its cast's names, gives a
`Script`: the presenters' words as segments of short sentences for the engine, each with who says it. The built-in
templates write a monologue (`templates`) or a dialogue of the cast taking turns (`dialogue`) in Japanese or
English; with `spec.script.llm` an OpenAI-compatible model (`llm`) writes each story's words, bounded in
size and time and checked, and any failure falls back to the templates.
"""
