"""What the stages share without importing each other: where runs and memory are kept (`storage`), a picture fitted
to its room (`imaging`) and URL hygiene (`urls`). Nothing here knows about a stage.
"""
