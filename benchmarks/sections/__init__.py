"""The sections of the suite, one module each: ``run(svc, cfg, progress)`` returns its figures.

A section returns the result keys it measures (see :data:`benchmarks.spec.KEYS`), plus
``details`` (every figure, recorded under ``details.<section>``) and optionally ``checks``
(correctness checks that must hold). :mod:`benchmarks.suite` runs them in order.
"""
