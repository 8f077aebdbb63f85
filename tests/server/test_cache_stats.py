"""CacheStats and LatencyStats: the figures that the debug command and the benchmarks report."""

from tiny_copilot.server.inference import LATENCY_SAMPLES, CacheStats, LatencyStats


def test_empty_stats_are_zero() -> None:
    stats = CacheStats()

    assert stats.hit_rate == 0.0
    assert stats.mean_prompt_tokens == 0.0


def test_stats_sum_over_requests() -> None:
    stats = CacheStats()
    stats.add(prompt_tokens=1000, reused_tokens=0)
    stats.add(prompt_tokens=1010, reused_tokens=1000)
    stats.add(prompt_tokens=990, reused_tokens=980)

    assert stats.requests == 3
    assert stats.hit_rate == 1980 / 3000
    assert stats.mean_prompt_tokens == 1000.0


def test_latency_percentiles_by_rank() -> None:
    stats = LatencyStats()
    assert stats.percentile(50) is None

    for elapsed_ms in range(100, 0, -1):
        stats.add(float(elapsed_ms))

    assert stats.percentile(50) == 51.0
    assert stats.percentile(95) == 96.0
    assert stats.percentile(100) == 100.0


def test_latency_keeps_only_latest_samples() -> None:
    stats = LatencyStats()
    for elapsed_ms in range(LATENCY_SAMPLES + 10):
        stats.add(float(elapsed_ms))

    assert len(stats.samples_ms) == LATENCY_SAMPLES
    assert min(stats.samples_ms) == 10.0
