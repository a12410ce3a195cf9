"""Start a real two-node Ray cluster on this machine with Ray's own test utilities, print its
address, and shut down exactly the processes it started when stdin closes.

    python -m tests.cluster_helper   # prints "ADDRESS <gcs address>" then waits
"""

from __future__ import annotations

import sys

from ray.cluster_utils import Cluster


def main() -> None:
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "resources": {"head": 1}})
    cluster.add_node(num_cpus=1, resources={"worker": 1})
    cluster.wait_for_nodes()
    print(f"ADDRESS {cluster.address}", flush=True)
    try:
        sys.stdin.read()  # until the test closes our stdin
    finally:
        cluster.shutdown()
        print("SHUTDOWN", flush=True)


if __name__ == "__main__":
    main()
