"""What a user sees of a run.

The progress display, the run log, the summary, ``lakelabel status``, and the redaction that keeps credentials out
of all of them.
"""
