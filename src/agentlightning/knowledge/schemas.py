"""Request and response shapes of the knowledge API (and of the service functions behind it)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agentlightning.validation import DbInt, JsonObject, Text

MAX_CONTENT_CHARS = 1_000_000
MAX_TAGS = 50
MAX_BULK_ITEMS = 1000
MAX_SEARCH_LIMIT = 100
MAX_SEARCH_OFFSET = 1000


class SearchMode(str, Enum):
    """How search ranks items: words (full-text), meaning (embeddings), or both fused (RRF)."""

    fulltext = "fulltext"
    semantic = "semantic"
    hybrid = "hybrid"


def _clean_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    cleaned = sorted({t.strip() for t in tags if t and t.strip()})
    if any(len(t) > 100 for t in cleaned):
        raise ValueError("a tag is at most 100 characters")
    if len(cleaned) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return cleaned


class KnowledgeItemCreate(BaseModel):
    """A new knowledge item."""

    model_config = ConfigDict(extra="forbid")

    title: Text = Field(min_length=1, max_length=500)
    content: Text = Field(min_length=1, max_length=MAX_CONTENT_CHARS)
    category: Text | None = Field(default=None, max_length=100)
    tags: list[Text] = Field(default_factory=list, max_length=1000)
    metadata: JsonObject = Field(default_factory=dict)

    @field_validator("title", "content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return _clean_tags(value) or []


class KnowledgeItemUpdate(BaseModel):
    """Fields to change (omitted ones stay); ``expected_version`` turns on optimistic locking."""

    model_config = ConfigDict(extra="forbid")

    title: Text | None = Field(default=None, min_length=1, max_length=500)
    content: Text | None = Field(default=None, min_length=1, max_length=MAX_CONTENT_CHARS)
    category: Text | None = Field(default=None, max_length=100)
    tags: list[Text] | None = Field(default=None, max_length=1000)
    metadata: JsonObject | None = None
    expected_version: DbInt | None = Field(default=None, ge=1)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return _clean_tags(value)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> KnowledgeItemUpdate:
        nulled = [
            f
            for f in ("title", "content", "tags", "metadata")
            if f in self.model_fields_set and getattr(self, f) is None
        ]
        if nulled:
            raise ValueError(f"{', '.join(nulled)} may be omitted but not null")
        return self


class KnowledgeItemOut(BaseModel):
    """A knowledge item as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    content: str
    category: str | None
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    created_by: str | None
    updated_by: str | None
    version: int


class KnowledgeVersionOut(BaseModel):
    """One version of an item (the current one included when listing)."""

    item_id: int
    version: int
    title: str
    content: str
    category: str | None
    tags: list[str]
    metadata: dict[str, Any]
    changed_by: str | None
    valid_from: datetime | None
    valid_to: datetime | None
    current: bool = False


class SearchQuery(BaseModel):
    """A search request; also the identity of a cached result."""

    q: str = Field(min_length=1, max_length=1000)
    mode: SearchMode = SearchMode.hybrid
    category: str | None = Field(default=None, max_length=100)
    tags: list[str] = Field(default_factory=list)
    limit: int = Field(default=10, ge=1, le=MAX_SEARCH_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_SEARCH_OFFSET)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return _clean_tags(value) or []


class SearchHit(BaseModel):
    """One result: which item, how well it matched, and a highlighted snippet (HTML, ``<mark>``)."""

    id: int
    title: str
    snippet: str
    score: float
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    version: int = 1
    updated_at: datetime | None = None
    #: 1-based rank of the item in each ranking that found it (``fulltext``, ``semantic``).
    ranks: dict[str, int] = Field(default_factory=dict)


class SearchResult(BaseModel):
    """A page of search hits."""

    query: str
    mode: SearchMode
    items: list[SearchHit]
    limit: int
    offset: int
    has_more: bool
    #: True when more items matched the words than full-text search ranks (``RANK_CANDIDATES`` on
    #: PostgreSQL): the order is exact among the ranked candidates; a narrower query ranks them all.
    ranking_bounded: bool = False
    cached: bool = False
    took_ms: float = 0.0


class BulkCreate(BaseModel):
    """Many items at once; with ``skip_existing`` items whose content is already stored are skipped."""

    model_config = ConfigDict(extra="forbid")

    items: list[KnowledgeItemCreate] = Field(min_length=1, max_length=MAX_BULK_ITEMS)
    skip_existing: bool = True
    embed: bool = True


class BulkResult(BaseModel):
    """What a bulk import did."""

    created: int
    skipped: int
    ids: list[int]
    embedded: int = 0


class ItemDeleted(BaseModel):
    """What deleting an item did."""

    id: int
    deleted: bool = True


class ItemPage(BaseModel):
    """A page of items from the list endpoint."""

    items: list[KnowledgeItemOut]
    limit: int
    offset: int
    total: int
