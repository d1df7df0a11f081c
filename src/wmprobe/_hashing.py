"""Content hashing: ``json_hash(obj, digits)`` is the first ``digits`` hex digits of sha256 over
``json.dumps(obj, sort_keys=True)`` (``default``: json's fallback for other objects, e.g. ``str``).

Equal JSON content gives an equal hash whatever the key order; cache keys (``study.cache.content_key``), zoo
recipes, simulator parameters and encoder specs are all hashed this way.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable


def json_hash(obj: Any, digits: int, default: Callable[[Any], Any] | None = None) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=default).encode()).hexdigest()[:digits]
