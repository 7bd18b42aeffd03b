"""Fixtures that several parts' test files share; each part's own between its markers."""

from __future__ import annotations

# team:begin
from collections.abc import Iterator

import pytest
from team_up import Team, team_up


@pytest.fixture(scope="session")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """One `make team-up` for every test that uses it (their files share an xdist group, so one
    worker); `make team-down` at the end, checked."""
    with team_up(tmp_path_factory.mktemp("team")) as up:
        yield up


# team:end
