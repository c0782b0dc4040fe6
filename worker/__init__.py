"""Background work (Celery) and the ML core (worker.ml, plain Python/numpy, no Django)."""
