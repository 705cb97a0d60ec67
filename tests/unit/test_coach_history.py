"""The coach reads its planning window of history in pages of the monolith's largest size, newest
first, and stops after a bound (fake stubs, no server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fitco.history.v1 import history_pb2
from fitco.user.v1 import user_pb2

from coach.breaker import CircuitBreaker
from coach.monolith_client import HISTORY_PAGE, MonolithClient


@dataclass
class Done:
    value: Any

    def result(self) -> Any:
        return self.value


@dataclass
class FakeListHistory:
    pages: int  # how many full pages the user's history holds
    requests: list[history_pb2.ListHistoryRequest] = field(default_factory=list)

    def __call__(self, req: history_pb2.ListHistoryRequest, **_: Any) -> Any:
        self.requests.append(req)
        n = len(self.requests)
        entries = [history_pb2.HistoryEntry(id=n * 1000 + i) for i in range(req.page_size)]
        token = f"page{n + 1}" if n < self.pages else ""
        return history_pb2.ListHistoryResponse(entries=entries, next_page_token=token)

    def future(self, req: history_pb2.ListHistoryRequest, **kw: Any) -> Done:
        return Done(self(req, **kw))


class FakeStubs:
    def __init__(self, history_pages: int) -> None:
        self.ListHistory = FakeListHistory(history_pages)
        prefs = user_pb2.GetPreferencesResponse(preferences=user_pb2.Preferences())
        self.GetPreferences = type("M", (), {"future": lambda _self, *a, **k: Done(prefs)})()


def _client(history_pages: int) -> tuple[MonolithClient, FakeListHistory]:
    client = MonolithClient("127.0.0.1:1", 1.0, CircuitBreaker("m"))
    stubs = FakeStubs(history_pages)
    client.users = stubs  # type: ignore[assignment]
    client.history = stubs  # type: ignore[assignment]
    return client, stubs.ListHistory


def test_history_is_read_page_by_page_up_to_the_bound() -> None:
    since = datetime(2026, 10, 23, tzinfo=UTC)
    client, fake = _client(history_pages=2)
    _, entries = client.preferences_and_history(since, (), max_pages=4)
    assert len(entries) == 2 * HISTORY_PAGE == 1000
    assert [r.page_token for r in fake.requests] == ["", "page2"]
    assert all(r.page_size == 500 and r.start_time.ToDatetime(UTC) == since for r in fake.requests)
    client.close()

    client, fake = _client(history_pages=10)
    _, entries = client.preferences_and_history(since, (), max_pages=4)
    assert len(entries) == 4 * HISTORY_PAGE and len(fake.requests) == 4  # bounded
    client.close()
