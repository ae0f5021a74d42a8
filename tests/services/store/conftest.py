"""Fixtures for the store tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from desk.config import StoreConfig
from desk.core.events import EVENT_TYPES, Event
from desk.services.store.store import EventStore
from tests.services.store.store_samples import sample_event


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., EventStore]]:
    """Build EventStores on tmp_path (relative paths, as in the shipped config); close them all afterwards.

    Keyword options (projection_process=True, say) go to the EventStore.
    """
    stores: list[EventStore] = []

    def build(database: str = "desk.db", journal: str = "journal", **options: Any) -> EventStore:
        config = StoreConfig(journal_dir=journal, database_url=f"sqlite:///{database}")
        store = EventStore(config, tmp_path, **options)
        stores.append(store)
        return store

    yield build
    for store in stores:
        store.close()


@pytest.fixture
def every_type_events() -> list[Event]:
    """One event of every type in the grammar, seqs 1..N, a minute apart."""
    return [sample_event(cls, seq) for seq, cls in enumerate(EVENT_TYPES.values(), start=1)]
