"""pytest's view of the harness (its doctests run with ``--doctest-modules``)."""

#: Files that run only in a peer's own virtualenv (their imports are not installed here).
collect_ignore = ["peers/locustfile.py"]
