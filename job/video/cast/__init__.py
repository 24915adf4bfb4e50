"""The cast on screen: each member's portrait (a folder of PNGs, a layered PSD, or a built-in character drawn by
code), its mouth shape in every frame from the engine's own phoneme timings, its eyes blinking on a seeded
schedule, and the small face patches the encode lays over the slides.
"""
