"""`make bench`: load scenarios against the whole platform, baselines, and the report they write.

Run it from the repository root as `python -m bench.run` (`--smoke` for the short version that
`make test` runs). It is a tool, not part of the installed platform.
"""
