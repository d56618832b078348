"""Issue 9: progress whatever the kill rate. Processing commits in steps bounded by time as well
as by count, so a process killed every few seconds still moves forward; what a step committed
stays done after the crash, and the next run finishes the rest, each message once."""

from __future__ import annotations

import pytest

from inboxdesk.app import App
from inboxdesk.settings import load_settings
from mailflow import intake as intake_module
from tests.story import cli_json, letter, maildir_settings


class Crash(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs, no handler catches it."""


def test_a_crash_mid_batch_keeps_the_steps_already_committed(tmp_path, db_url, monkeypatch):
    config = maildir_settings(tmp_path, db_url)
    app = App(load_settings(config))
    box = app.settings.mailbox("help")
    raws = [letter(sender=f"user{n}@sev.gov.ru", subject=f"Заявка {n}") for n in range(100)]
    app.intake.record(box, [intake_module.FetchedMail(source_ref="", raw=r) for r in raws], None)

    monkeypatch.setattr(intake_module, "STEP_SECONDS", 0.0)  # every group of 32 is its own step
    steps = []
    real_step = app.intake._process_step

    def step(*args, **kwargs):
        if len(steps) == 2:
            raise Crash  # killed during the third step
        steps.append(real_step(*args, **kwargs))
        return steps[-1]

    monkeypatch.setattr(app.intake, "_process_step", step)
    with pytest.raises(Crash):
        app.intake.process_pending(box)
    app.close()

    assert steps == [(intake_module.GROUP, intake_module.GROUP)] * 2
    states = [r["state"] for r in cli_json(config, "inbound", "list")]
    assert states.count("acked") == 2 * intake_module.GROUP and states.count("recorded") == 36

    app = App(load_settings(config))  # the next run finishes the rest, each once
    try:
        app.intake.process_pending(box)
    finally:
        app.close()
    assert [r["disposition"] for r in cli_json(config, "inbound", "list")] == ["ticket"] * 100
    assert len(cli_json(config, "tickets", "list")) == 100
