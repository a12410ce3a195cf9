"""hpo.submit's retry while a fresh head has no job agent yet (the end to end submit is in
test_cluster.py)."""
from __future__ import annotations

import pytest

from hpo.submit import _submit_job

NO_AGENT = RuntimeError("Request failed with status code 500: No available agent to submit job, "
                        "please try again later..")


class Client:
    def __init__(self, errors: list[Exception]):
        self.errors, self.calls = errors, []

    def submit_job(self, **job):
        self.calls.append(job)
        if self.errors:
            raise self.errors.pop(0)
        return "raysubmit_1"


def test_a_head_without_a_job_agent_yet_is_asked_again():
    client = Client([NO_AGENT, NO_AGENT])
    assert _submit_job(client, poll_s=0, entrypoint="python -m hpo.cli run") == "raysubmit_1"
    assert len(client.calls) == 3 and client.calls[-1] == {"entrypoint": "python -m hpo.cli run"}


def test_other_errors_and_an_agent_that_never_comes_are_raised():
    client = Client([RuntimeError("Request failed with status code 401: Unauthorized"), NO_AGENT])
    with pytest.raises(RuntimeError, match="401"):
        _submit_job(client, poll_s=0, entrypoint="x")
    assert len(client.calls) == 1
    with pytest.raises(RuntimeError, match="No available agent"):
        _submit_job(Client([NO_AGENT] * 100), wait_s=0.05, poll_s=0.01, entrypoint="x")
