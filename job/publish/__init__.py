"""The publish stage. Takes the run's files (`Artifact` objects) and the broadcast's `spec.output`, gives a
`Publication`: every file copied or uploaded, manifest.json always last, so a reader never sees half a run
(`store`). Then the broadcast's page, podcast and video feeds and cover (`site`, built from the runs' manifests by
`listing`, `feeds` and `templates/index.html.j2`) are rewritten, each file replaced atomically.
"""
