"""The project's benchmarks: the composed data generator (``benchmarks.composed``), the
comparison runner (``python benchmarks/run.py``) and its diagnostics and timing scripts."""
