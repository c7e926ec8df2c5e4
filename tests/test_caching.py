from app.caching import LruCache, TtlCache


def test_a_bounded_cache_drops_the_least_recently_used_entry() -> None:
    entries: LruCache[str, int] = LruCache(2)
    entries.put("a", 1)
    entries.put("b", 2)
    assert entries.get("a") == 1
    entries.put("c", 3)
    assert entries.get("b") is None
    assert (entries.get("a"), entries.get("c")) == (1, 3)


def test_a_timed_cache_keeps_no_more_than_its_bound() -> None:
    entries: TtlCache[int, str] = TtlCache(ttl=60.0, max_entries=3)
    for key in range(5):
        entries.put(key, str(key))
    assert [entries.get(key) for key in range(5)] == [None, None, "2", "3", "4"]
