"""``none``: the dense baseline, every token takes the single pretrained path."""

from __future__ import annotations

from typing import Literal

from harness.core.config import Strict
from harness.routing.base import Routing, routers


class DenseParams(Strict):
    strategy: Literal["none"] = "none"


@routers.register("none")
class Dense(Routing):
    Params = DenseParams
