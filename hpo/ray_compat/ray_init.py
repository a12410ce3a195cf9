"""Ray's start and its warm head: the private names hpo.runner.session, head and served need
(each listed in hpo.ray_compat.TOUCHES, each switched off or refused when gone)."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from hpo.ray_compat import require, usable

# loggers of Ray's private modules whose notices hpo says in its own words (TOUCHES["log_filters"])
STORAGE_LOGGER = "ray.train._internal.storage"
TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"

_INTEGRATIONS = ("WandbLoggerCallback", "MLflowLoggerCallback", "CometLoggerCallback", "AimLoggerCallback")


@contextlib.contextmanager
def callbacks_counted_by_name() -> Iterator[None]:
    """While inside: Tune's usage tag of the callbacks a run passes (class name -> count) is
    taken by class name. Ray's imports its W&B, MLflow, Comet and Aim integrations only to compare
    classes: wandb and mlflow cost 1.3 s of every run's driver here, before the first trial."""
    if not usable("callback_census"):
        yield
        return
    from ray.air._internal import usage

    before = usage._count_callbacks
    usage._count_callbacks = _count
    try:
        yield
    finally:
        usage._count_callbacks = before


def _count(callbacks: list[Any] | None) -> dict[str, int]:
    from ray.tune import Callback
    from ray.tune.logger import LoggerCallback
    from ray.tune.utils.callback import DEFAULT_CALLBACK_CLASSES

    names = {*_INTEGRATIONS, *(c.__name__ for c in DEFAULT_CALLBACK_CLASSES)}
    counts: dict[str, int] = collections.defaultdict(int)
    for cb in callbacks or []:
        if isinstance(cb, Callback):
            name = type(cb).__name__
            counts[name if name in names else
                   "CustomLoggerCallback" if isinstance(cb, LoggerCallback) else "CustomCallback"] += 1
    return counts


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """A local Ray listens on 127.0.0.1 only: its node address is the loopback one, so its GCS,
    raylet, workers, object manager and agents bind there instead of on every interface (Ray
    binds its servers to the node's address when that is a loopback one). Ray takes the node
    address from the machine unless its `ENABLE_RAY_CLUSTER` switch is off, which is what Ray
    itself does on macOS and Windows; hpo turns it off for the start of a local Ray only.
    Without the switch a local start is refused (hpo.ray_compat.require)."""
    require("loopback")
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def token_auth_like_the_head() -> None:
    """Ray turns token authentication on by itself only for a cluster it finds on its own, never
    for an explicit address: a driver joining the warm head must ask for it (the token is the
    one the head made, ~/.ray/auth_token or RAY_AUTH_TOKEN[_PATH]). Without Ray's function, the
    documented variable alone (Ray's cached config may then miss it: joining may be refused)."""
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    if not usable("token_auth"):
        os.environ["RAY_AUTH_MODE"] = "token"
        return
    from ray._private.authentication.authentication_token_setup import _enable_token_auth

    _enable_token_auth()


@contextlib.contextmanager
def raylet() -> Iterator[tuple[Any, bytes, Any]]:
    """(this node's raylet gRPC stub, this job's id, the driver's worker), over Ray's own channel
    (with the token when authentication is on). Callers check usable("prestart_workers")."""
    import ray
    from ray._private.grpc_utils import init_grpc_channel
    from ray.core.generated import node_manager_pb2_grpc

    w = ray._private.worker.global_worker
    channel = init_grpc_channel(f"{w.node.node_ip_address}:{w.node.node_manager_port}")
    try:
        yield node_manager_pb2_grpc.NodeManagerServiceStub(channel), w.current_job_id.binary(), w
    finally:
        channel.close()


def quiet_storage_notices() -> None:
    logging.getLogger(STORAGE_LOGGER).setLevel(logging.WARNING)
