"""`hpo submit`: run an experiment as a Ray Job on a cluster's head (through its dashboard).

The validated, resolved spec travels in the job's working directory; the job runs
`hpo run spec.yaml --address auto` on the cluster, which must have hpo installed (the Docker
images do). Results go to `--storage`, a path every node can write (shared filesystem).
"""

from __future__ import annotations

import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

from hpo.errors import SpecError
from hpo.experiment import Experiment
from hpo.spec import spec_to_yaml

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def entrypoint(storage: str, name: str | None, spec_file: str = "spec.yaml") -> str:
    """The job's shell command. The driver moves to the storage folder first: Ray may delete
    the job's unpacked working_dir while Tune still needs a current directory."""
    # `python -m` rather than the `hpo` script: the job shell may not have it on PATH
    args = ["python", "-m", "hpo.cli", "run", "$SPEC", "--address", "auto", "--quiet",
            "--storage", storage, "--reports", str(Path(storage) / "reports")]
    if name:
        args += ["--name", name]
    q = shlex.quote
    return (f'SPEC="$PWD/{spec_file}" && mkdir -p {q(storage)} && cd {q(storage)} && '
            + " ".join('"$SPEC"' if a == "$SPEC" else q(a) for a in args))


def submit(exp: Experiment, address: str, storage: str, name: str | None = None,
           working_dir: str | None = None, excludes: list[str] | None = None) -> tuple[Any, str]:
    """Submit; returns (client, job_id). `working_dir` uploads a project (e.g. a user's own
    trainable module) next to the spec."""
    from ray.job_submission import JobSubmissionClient

    if not Path(storage).is_absolute() and "://" not in storage:
        raise SpecError(f"--storage must be an absolute path on the cluster's shared filesystem "
                        f"(or a URI), got {storage!r}: a relative path would land in the job's "
                        f"temporary working directory.", field="--storage")
    try:
        client = JobSubmissionClient(address)
    except Exception as e:  # noqa: BLE001 - connection / auth errors from the SDK
        raise SpecError(f"cannot reach the Ray dashboard at {address}: {e}", field="--address") from None
    staging = Path(tempfile.mkdtemp(prefix="hpo-submit-"))
    work = Path(working_dir) if working_dir else staging
    (staging / "spec.yaml").write_text(spec_to_yaml(exp.spec))
    runtime_env: dict[str, Any] = {"working_dir": str(work),
                                   "excludes": excludes or [".venv", ".git", "runs", "reports"]}
    if working_dir:  # the spec goes in as a file of the uploaded project
        (work / ".hpo-submit-spec.yaml").write_text(spec_to_yaml(exp.spec))
        ep = entrypoint(storage, name, ".hpo-submit-spec.yaml")
    else:
        ep = entrypoint(storage, name)
    try:
        job_id = _submit_job(client, entrypoint=ep, runtime_env=runtime_env,
                             metadata={"hpo_experiment": exp.spec.name})
    except RuntimeError as e:  # the dashboard's answer, e.g. 500 with Ray's reason
        raise SpecError(f"the Ray dashboard at {address} did not take the job: {e}",
                        field="--address") from None
    return client, job_id


# A head that has just started has its dashboard up before the agent that runs jobs; Ray then
# answers 500 "No available agent to submit job, please try again later".
AGENT_WAIT_S = 60.0


def _submit_job(client: Any, wait_s: float = AGENT_WAIT_S, poll_s: float = 2.0, **job: Any) -> str:
    """`client.submit_job(**job)`, tried again while the head has no job agent yet."""
    deadline = time.time() + wait_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.time() >= deadline:
                raise
            time.sleep(poll_s)


def wait(client: Any, job_id: str, timeout_s: float = 3600, poll_s: float = 2.0) -> str:
    deadline = time.time() + timeout_s
    status = str(client.get_job_status(job_id))
    while status.split(".")[-1] not in TERMINAL and time.time() < deadline:
        time.sleep(poll_s)
        status = str(client.get_job_status(job_id))
    return status.split(".")[-1]
