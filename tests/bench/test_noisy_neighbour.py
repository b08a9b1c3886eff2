"""The noisy neighbour benchmark's view of a phase by block and by second
(bench/noisy_neighbour/run.py): a stall of one block must not hide in the pool."""

from types import SimpleNamespace

from bench.noisy_neighbour import run as noisy_neighbour


def _block(latency_ms, *, stall_at: float | None = None, stall_ms: float = 400.0):
    """100 requests a second for 10 s at ``latency_ms``; a second-long stall from
    ``stall_at`` (seconds into the block)."""
    due = [index / 100 for index in range(1000)]
    latencies = [
        stall_ms
        if stall_at is not None and stall_at <= moment < stall_at + 1
        else latency_ms
        for moment in due
    ]
    return due, latencies


def test_a_stall_in_one_block_shows_in_that_block_only():
    blocks = [_block(10), _block(10, stall_at=4), _block(10)]
    schedule = SimpleNamespace(due_s=[], latencies_ms=[])
    for number, (due, latencies) in enumerate(blocks):
        schedule.due_s += [10 * number + moment for moment in due]
        schedule.latencies_ms += latencies

    part = noisy_neighbour.by_block_part([schedule], block=10)

    assert part["p99_ms_by_round"] == [10, 400, 10]
    assert part["max_ms_by_round"] == [10, 400, 10]
    # pooled by second of the block, the one stall looks like a cost of second 4
    assert part["p99_ms_by_second"][4] == 400
    assert part["p99_ms_by_second"][3] == 10
