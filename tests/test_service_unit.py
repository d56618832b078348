"""Issue 13: the systemd unit in contrib/ passes `systemd-analyze verify` with no warning, with
its ExecStart pointed at this checkout's installed command (the unit names /opt/inboxdesk)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "systemd" / "inboxdesk.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_service_unit_verifies(tmp_path):
    command = Path(sys.executable).with_name("inboxdesk")
    assert command.exists()
    unit = tmp_path / "inboxdesk.service"
    unit.write_text(UNIT.read_text().replace("/opt/inboxdesk/.venv/bin/inboxdesk", str(command)))
    checked = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == "" and checked.stdout.strip() == "", checked.stderr + checked.stdout
    text = UNIT.read_text()
    for hardening in ("ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes", "Restart=on-failure",
                      "ReadWritePaths=/var/lib/inboxdesk", "EnvironmentFile=/etc/inboxdesk/environment"):
        assert hardening in text
