"""The live-stream hub: who is woken, and that a brand nobody watches is known as such."""

from __future__ import annotations

import asyncio

from attain_server.application.live import Hub


async def test_publish_wakes_the_member_and_the_brand_followers_only() -> None:
    hub = Hub()
    mine = hub.subscribe("B", "M1")
    other = hub.subscribe("B", "M2")
    brand = hub.subscribe("B", "")
    elsewhere = hub.subscribe("C", "M1")
    hub.publish("B", ["M1"])
    assert mine.is_set() and brand.is_set()
    assert not other.is_set() and not elsewhere.is_set()


async def test_watched_follows_subscriptions_per_brand() -> None:
    hub = Hub()
    assert not hub.watched("B")
    first = hub.subscribe("B", "M1")
    second = hub.subscribe("B", "M1")
    whole = hub.subscribe("B", "")
    assert hub.watched("B") and not hub.watched("C")
    hub.unsubscribe("B", "M1", first)
    hub.unsubscribe("B", "M1", first)  # twice: counted once
    assert hub.watched("B")
    hub.unsubscribe("B", "M1", second)
    assert hub.watched("B")
    hub.unsubscribe("B", "", whole)
    assert not hub.watched("B")
    assert hub.subscriber_count == 0
    hub.unsubscribe("B", "M9", asyncio.Event())  # never subscribed: nothing happens
    assert not hub.watched("B")
