"""One Redis client per app, built from REDIS_URL on first use (None without it)."""

from __future__ import annotations

import redis
from flask import Flask, current_app
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def get_redis(app: Flask | None = None) -> redis.Redis | None:
    app = app or current_app
    if not app.config.get("REDIS_URL"):
        return None
    client = app.extensions.get("redis")
    if client is None:
        # One quick retry only: the relay has its own backoff, and /health must answer fast.
        client = redis.Redis.from_url(
            app.config["REDIS_URL"],
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(ExponentialBackoff(cap=0.5), 1),
        )
        app.extensions["redis"] = client
    return client
