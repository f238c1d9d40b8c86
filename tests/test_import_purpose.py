"""`records import --purpose` records the consent purpose for the new sources."""

from __future__ import annotations

from pathlib import Path

from test_workspace_support import bundles

from workbench.cli import main
from workbench.workspace import open_workspace


def test_cli_purpose_flag_sets_the_grant(tmp_path: Path) -> None:
    ws_dir = tmp_path / "ws"
    assert (
        main(
            [
                "records",
                "import",
                *map(str, bundles()),
                "--workspace",
                str(ws_dir),
                "--purpose",
                "research",
                "--json",
            ]
        )
        == 0
    )
    ws = open_workspace(ws_dir)
    grants = ws.consent.list()
    assert grants and {g["purpose"] for g in grants} == {"research"}
    assert ws.active_sources("personal_care") == []
