"""The base for every suite model: unknown fields are errors that list the allowed ones."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in cls.model_fields:
                    raise PydanticCustomError(
                        "unknown_field",
                        "unknown field '{field}' (allowed: {allowed})",
                        {"field": key, "allowed": ", ".join(allowed)},
                    )
        return data


class Configurable:
    """A registered component (method, routing strategy) built from its own validated parameter model."""

    Params: ClassVar[type[Strict]]

    def __init__(self, params: Strict) -> None:
        self.params = params


def tagged_union(models: list[type[BaseModel]], tag: str) -> Any:
    """A union of registered parameter models, discriminated by their ``tag`` literal field."""
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator=tag)]  # noqa: UP007


def describe(config: dict[str, Any], params: type[BaseModel], tag: str, hidden: tuple[str, ...] = ()) -> str:
    """A component's config as a table label: its name and each short field that differs from the default,
    e.g. ``lora r=4`` or ``random placement=adapter`` (prose fields such as prompt templates are left out)."""
    defaults = params().model_dump(mode="json")
    changed = [
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in config.items()
        if k != tag
        and k not in hidden
        and defaults.get(k) != v
        and isinstance(v, int | float | str)
        and len(str(v)) <= 24
    ]
    return " ".join([config[tag], *changed])
