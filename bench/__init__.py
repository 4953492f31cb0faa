"""The project's own benchmarks; ``python -m bench.assignment`` runs the engine's."""
