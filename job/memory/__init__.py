"""What a broadcast remembers between pods and days, kept where its runs are published (`state`): the stories
earlier runs aired (`aired`), each run's checkpoints so a retried pod resumes (`checkpoint`), and the audio cache of
spoken sentences (`audio_cache`). Every read is bounded and anything missing or unreadable counts as absent: memory
only saves work, it never decides a run's outcome.
"""
