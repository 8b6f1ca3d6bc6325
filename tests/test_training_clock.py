"""A paused training run does not spend its time budget."""
from plateread.training.clock import MAX_STEP_S, step_seconds


def test_a_step_counts_its_wall_time_and_a_pause_counts_as_one_long_step():
    assert abs(step_seconds(101.2, 100.0) - 1.2) < 1e-9
    assert step_seconds(100.0 + 600, 100.0) == MAX_STEP_S       # SIGSTOPped for ten minutes
    assert step_seconds(99.0, 100.0) == 0.0                      # the clock stepped back
