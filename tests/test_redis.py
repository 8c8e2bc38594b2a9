"""A round trip to the test bed's real redis-server with the asyncio client the registry will use."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis


async def test_round_trip_with_expiry(redis_url: str) -> None:
    client = aioredis.from_url(redis_url, decode_responses=True)
    key = f"jvnc:test:{uuid.uuid4().hex}"
    try:
        await client.hset(key, mapping={"user": "someone", "job_id": "42", "node": "node1"})
        await client.expire(key, 60)
        assert await client.hgetall(key) == {"user": "someone", "job_id": "42", "node": "node1"}
        assert 0 < await client.ttl(key) <= 60
    finally:
        await client.delete(key)
        await client.aclose()
    check = aioredis.from_url(redis_url)
    try:
        assert await check.exists(key) == 0
    finally:
        await check.aclose()
