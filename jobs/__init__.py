"""spark-submit entry points and the pure DataFrame functions they are built from.

``jobs.windowing`` and ``jobs.device_stats`` hold the logic (pure functions
DataFrame -> DataFrame, unit-tested on batch DataFrames); ``jobs.windowed_max``
and ``jobs.device_stats_job`` only parse arguments, wire sources and sinks and
start the queries.
"""
