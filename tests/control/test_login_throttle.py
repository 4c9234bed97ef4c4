"""Password guessing is slowed: five wrong logins for one user name (or from one address) within
the window, and further tries get 429 naming the wait, right password or not, until it has passed."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from control import login_throttle, users

LOGIN = "/api/v1/login"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(login_throttle.time, "monotonic", fake)
    return fake


async def test_wrong_passwords_lock_the_name_until_the_window_passes(
    app: FastAPI, api: httpx.AsyncClient, clock: Clock
) -> None:
    with app.state.orchestrator.store.transaction() as ses:
        users.create_user(ses, "root", "right-password", admin=True)
    right = {"userName": "root", "password": "right-password"}
    wrong = {"userName": "root", "password": "wrong-password"}
    for _ in range(app.state.settings.login_max_failures):
        assert (await api.post(LOGIN, json=wrong)).status_code == 401
    locked = await api.post(LOGIN, json=right)
    assert locked.status_code == 429
    assert locked.json()["msg"].startswith("too many failed logins for user 'root': try again in ")
    # the address is locked too: guessing another name from it is refused the same way
    other = await api.post(LOGIN, json={"userName": "someone", "password": "x" * 8})
    assert other.status_code == 429 and "127.0.0.1" in other.json()["msg"]

    clock.now += app.state.settings.login_window_s + 1
    assert (await api.post(LOGIN, json=right)).status_code == 200


async def test_a_right_password_clears_the_names_count(
    app: FastAPI, api: httpx.AsyncClient, clock: Clock
) -> None:
    with app.state.orchestrator.store.transaction() as ses:
        users.create_user(ses, "root", "right-password", admin=True)
    right = {"userName": "root", "password": "right-password"}
    wrong = {"userName": "root", "password": "wrong-password"}
    limit = app.state.settings.login_max_failures
    for _ in range(limit - 1):
        assert (await api.post(LOGIN, json=wrong)).status_code == 401
    assert (await api.post(LOGIN, json=right)).status_code == 200
    clock.now += app.state.settings.login_window_s + 1  # the address's count ages out too
    for _ in range(limit - 1):
        assert (await api.post(LOGIN, json=wrong)).status_code == 401
    assert (await api.post(LOGIN, json=right)).status_code == 200


def test_the_login_route_documents_429(app: FastAPI) -> None:
    responses = app.openapi()["paths"][LOGIN]["post"]["responses"]
    assert "429" in responses
