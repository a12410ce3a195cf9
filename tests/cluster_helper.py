"""Start a real two-node Ray cluster on this machine with Ray's own test utilities, print its
address, and shut down exactly the processes it started when stdin closes.

    python -m tests.cluster_helper   # prints "DASHBOARD <url>", "ADDRESS <gcs address>", waits
"""

from __future__ import annotations

import socket
import sys

from ray.cluster_utils import Cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    port = free_port()
    # the head's job agent on a free port: Ray's default (52365) is taken by the agent of the
    # test session's own local Ray when one is up, and jobs were then refused ("No available
    # agent to submit job")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"head": 1}, "include_dashboard": True,
        "dashboard_host": "127.0.0.1", "dashboard_port": port,
        "dashboard_agent_listen_port": free_port()})
    cluster.add_node(num_cpus=1, resources={"worker": 1})
    cluster.wait_for_nodes()
    print(f"DASHBOARD http://127.0.0.1:{port}", flush=True)
    print(f"ADDRESS {cluster.address}", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin
    finally:
        cluster.shutdown()
        print("SHUTDOWN", flush=True)


if __name__ == "__main__":
    main()
