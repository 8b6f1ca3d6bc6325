"""A slow stand-in engine for the batch tests, importable by Dask worker processes.

Workers import this module (``--preload test_batch_support``) to register ``fake-slow``: the fake
engine of fakes.py with a sleep per image, so a test can kill a worker or interrupt a run while
partitions are certainly being read, without spending CPU on this busy machine. No tests here.
"""
from __future__ import annotations

import time

import fakes
from plateread import registry


class SlowFakeDetector(fakes.FakeDetector):
    def __init__(self, *, threshold: int = 200, delay: float = 0.05) -> None:
        super().__init__(threshold=threshold)
        self.delay = delay

    def detect(self, image, debug=None):
        time.sleep(self.delay)
        return super().detect(image, debug=debug)


registry.register_detector("fake-slow", "test_batch_support:SlowFakeDetector")
registry.register_engine("fake-slow", "fake-slow", "fake", "test stand-in that takes its time")
