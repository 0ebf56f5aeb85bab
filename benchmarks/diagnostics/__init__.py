"""Diagnostics of trained comparison jobs: each reloads the finished jobs of ``run.py --out``
folders and asks one question of their maps on the stored test scenes.

    python -m benchmarks.diagnostics.agreement runs/preset5            # do the two networks agree?
    python -m benchmarks.diagnostics.audio_dependence runs/preset5     # do the maps use the audio?
    python -m benchmarks.diagnostics.pointing_breakdown runs/preset5   # where do the maps peak?

(``python benchmarks/diagnostics/<name>.py`` runs the same.) What they share, finding and
rebuilding the jobs, lives in ``benchmarks.diagnostics.shared``.
"""
