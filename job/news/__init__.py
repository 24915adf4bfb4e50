"""The news stage. Takes the broadcast's `spec.sources` and gives `Story` objects: each feed fetched through an
address-checked, size- and time-bounded download (`fetch`), parsed by feedparser in a separate process with a
memory cap and a deadline (`parser_process`), its text cleaned of markup, URLs' credentials and control characters
(`text`), then filtered, ordered and de-duplicated (`reader`). Each story's own picture, from its feed or the
article page's og:image (`page_picture`), is fetched the same guarded way and decoded under limits into a file
sized for the room the pipeline gives it (`pictures`).
"""
