"""Simulated temperature devices (publishers) and a result receiver, as CLIs.

``python -m simulators.temperature`` publishes readings; ``python -m
simulators.receiver`` prints the windowed results. The model is pure
(:mod:`simulators.model`); the AMQP and Kafka plumbing lives in their own
modules.
"""
