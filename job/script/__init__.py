"""The script stage. Takes the chosen `Story` objects and the broadcast's `spec.script`, gives a `Script`: the
anchor's words as segments of short sentences for the engine. The built-in templates (`templates`) write it in
Japanese or English; with `spec.script.llm` an OpenAI-compatible model (`llm`) writes each story's words, bounded in
size and time and checked, and any failure falls back to the templates.
"""
