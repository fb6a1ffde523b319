"""The bridge tests' fixtures live in the root conftest (``start_bridge``); helpers in :mod:`tests.bridge.helpers`."""
