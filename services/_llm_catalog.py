"""The models, classes and providers an app declares, read from the registry for ``wippy.llm:llm``.

Models are ``registry.entry`` entries with ``meta.type: llm.model`` (capabilities, class list,
priority in ``meta``; ``max_tokens``, ``output_tokens``, ``pricing``, ``providers`` in the data).
Classes are ``meta.type: llm.model.class`` entries. A name resolves as Wippy's llm library
resolves it: ``"class:x"`` means the best model of class x; any other name is first an exact
``meta.name``, then a class. The best model of a class is the one with the highest
``meta.priority`` (ties go to the smaller name, so the choice never depends on registry order).

Cards and classes are returned as the plain tables Wippy's library returns (``available_models``,
``get_classes``). The index is rebuilt only when the registry's current state changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._llm_types import INVALID_REQUEST, MODEL_ERROR, LlmError

MODEL_TYPE = "llm.model"
CLASS_TYPE = "llm.model.class"
PROVIDER_TYPE = "llm.provider"


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(value) if value is not None else 0
        except (TypeError, ValueError):
            return 0
    return value


def model_card(entry: Any) -> dict[str, Any]:
    """A model entry as Wippy's model card: id, name, title, description, capabilities, class,
    priority, max_tokens, output_tokens, pricing, providers, and dimensions when the entry sets it."""
    meta, data = entry.meta or {}, entry.data or {}
    card: dict[str, Any] = {
        "id": entry.id,
        "name": meta.get("name") or "",
        "title": meta.get("title") or "",
        "description": meta.get("comment") or "",
        "capabilities": list(meta.get("capabilities") or []),
        "class": list(meta.get("class") or []),
        "priority": meta.get("priority") or 0,
        "max_tokens": data.get("max_tokens") or 0,
        "output_tokens": data.get("output_tokens") or 0,
        "pricing": dict(data.get("pricing") or {}),
        "providers": [dict(p) for p in data.get("providers") or [] if isinstance(p, Mapping)],
    }
    dimensions = data.get("dimensions")
    try:
        if dimensions is not None:
            card["dimensions"] = int(dimensions)
    except (TypeError, ValueError):
        pass
    return card


@dataclass(slots=True)
class _Index:
    key: tuple[Any, int]
    by_name: dict[str, dict[str, Any]] = field(default_factory=dict)
    cards: list[dict[str, Any]] = field(default_factory=list)
    classes: list[dict[str, Any]] = field(default_factory=list)


class ModelCatalog:
    """Model lookup over the registry's current entries (``registry.current()`` / ``registry.get``)."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._cache: _Index | None = None

    def _index(self) -> _Index:
        current = self._registry.current()
        key = (getattr(self._registry, "version", None), id(current))
        cached = self._cache
        if cached is not None and cached.key == key and key[0] is not None:
            return cached
        index = _Index(key)
        for entry in list(current.values()):
            if entry.kind != "registry.entry":
                continue
            kind = (entry.meta or {}).get("type")
            if kind == MODEL_TYPE:
                card = model_card(entry)
                index.cards.append(card)
                if card["name"]:
                    index.by_name.setdefault(card["name"], card)
            elif kind == CLASS_TYPE:
                meta = entry.meta
                index.classes.append({"id": entry.id, "name": meta.get("name"), "title": meta.get("title"),
                                      "description": meta.get("comment")})
        index.cards.sort(key=lambda c: (str(c["name"]), c["id"]))
        index.classes.sort(key=lambda c: (str(c["name"] or ""), c["id"]))
        self._cache = index
        return index

    def models(self, capability: str | None = None) -> list[dict[str, Any]]:
        """Every model card by name; only those listing ``capability`` when one is given."""
        cards = self._index().cards
        if capability is None:
            return list(cards)
        return [c for c in cards if capability in c["capabilities"]]

    def classes(self) -> list[dict[str, Any]]:
        """The declared model classes (``llm.model.class`` entries) by name: id, name, title, description."""
        return list(self._index().classes)

    def by_class(self, class_name: str) -> list[dict[str, Any]]:
        """The models of a class, best first (highest priority, then name)."""
        found = [c for c in self._index().cards if class_name in c["class"]]
        found.sort(key=lambda c: (-_number(c["priority"]), str(c["name"])))
        return found

    def resolve(self, model: str) -> dict[str, Any]:
        """The card ``model`` names (name, class, or ``class:x``); LlmError with Wippy's message if none."""
        if model.startswith("class:") and len(model) > len("class:"):
            class_name = model[len("class:"):]
            in_class = self.by_class(class_name)
            if not in_class:
                raise LlmError(f"No models found for class: {class_name}", error_type=MODEL_ERROR)
            return in_class[0]
        card = self._index().by_name.get(model)
        if card is not None:
            return card
        in_class = self.by_class(model)
        if in_class:
            return in_class[0]
        raise LlmError(f"Model or class not found: {model}", error_type=MODEL_ERROR)

    def provider_entry(self, provider_id: str) -> Any | None:
        """The ``llm.provider`` entry with this id; None when no entry has it (a built-in provider id);
        LlmError when the entry exists but is no provider."""
        entry = self._registry.get(provider_id)
        if entry is None:
            return None
        if entry.kind != "registry.entry" or (entry.meta or {}).get("type") != PROVIDER_TYPE:
            raise LlmError(f"Failed to open provider: Entry is not a provider: {provider_id}",
                           error_type=INVALID_REQUEST)
        driver = (entry.data or {}).get("driver")
        if not isinstance(driver, Mapping) or not driver.get("id"):
            raise LlmError(f"Failed to open provider: Provider missing driver configuration: {provider_id}",
                           error_type=INVALID_REQUEST)
        return entry
