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
