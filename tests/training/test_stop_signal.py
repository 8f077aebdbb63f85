"""Ctrl-C during training: the first requests a checkpoint, the second stops at once."""

from __future__ import annotations

import logging
import os
import signal

import pytest

from tiny_copilot.training.trainer import _StopOnSignal


def test_first_ctrl_c_explains_second(caplog: pytest.LogCaptureFixture) -> None:
    # A second Ctrl-C a moment after the first aborted the save, and the user learnt only afterwards
    # that the run folder was removed for want of a checkpoint.
    with caplog.at_level(logging.WARNING, logger="tiny_copilot.training.trainer"), _StopOnSignal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)

    message = caplog.records[-1].getMessage()
    assert "stopping after this step and saving a checkpoint" in message
    assert "Ctrl-C again stops at once without saving" in message
