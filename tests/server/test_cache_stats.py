"""CacheStats: the KV-cache hit rate and prompt length that the debug command and the benchmarks report."""

from tiny_copilot.server.inference import CacheStats


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
