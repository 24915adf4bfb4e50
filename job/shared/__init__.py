"""What the stages share without importing each other: where runs and memory are kept (`storage`), a picture fitted
to its room (`imaging`), URL hygiene (`urls`) and outside text made fit to speak and show, from feeds
and from language models alike (`text`). Nothing here knows about a stage.
"""
