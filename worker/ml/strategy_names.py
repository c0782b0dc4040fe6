"""Names of the query strategies, importable without their code.

worker.ml.strategies imports modAL, which imports torch (seconds per process); the web process
only needs the names to list and validate them. tests/test_settings_page.py checks that these
are exactly the keys of worker.ml.strategies.STRATEGIES.
"""

STRATEGY_NAMES: tuple[str, ...] = (
    "random", "least_confident", "margin", "entropy", "diversity", "badge", "balanced",
    "coverage", "auto",
)
