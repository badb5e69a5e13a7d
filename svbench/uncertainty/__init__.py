"""Uncertainty, in one place: what every interval of a study is drawn from.

- :mod:`~svbench.uncertainty.bootstrap`: the speaker bootstrap of EER and minDCF (one model's trials, speakers
  resampled; the paired bootstrap of two systems) and the study's level and resample count.
- :mod:`~svbench.uncertainty.score_intervals`: ``svbench intervals``, one job's replicates from its score files,
  with draws shared by every model (hence paired); the ``uncertainty:`` config block.
- :mod:`~svbench.uncertainty.draws`: Monte Carlo draws of seeds (resampled studies), Pareto-front frequencies, a
  job's energy (sensor tolerances, coverage gaps) and the carbon factors' ranges.
- :mod:`~svbench.uncertainty.study_draws`: the study's intervals, per job and per architecture, from those draws.

Nothing here imports the study or the accounting: the study (summary, trade-off, footprint) and the command line
call in.
"""
