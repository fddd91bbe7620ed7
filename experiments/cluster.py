"""The Dask client of the experiments: a local cluster of worker processes, or an
existing scheduler (``--workers N`` / ``--scheduler ADDRESS``)."""

from __future__ import annotations

import contextlib
import logging
import os


def dask_client(workers: int | None = None, scheduler: str | None = None, *, minimum: int = 2):
    """A ``dask.distributed.Client``, or None to run here.

    ``scheduler``: the address of a running scheduler (``tcp://host:8786``), used as it
    is. Otherwise a :class:`LocalCluster` of ``workers`` single-threaded worker
    processes (default: the machine's cores) is started; with fewer than ``minimum``
    workers there is nothing to gain from one and None is returned. The caller closes
    the client and its cluster (:func:`close_client`).
    """
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler)
    n = (os.cpu_count() or 1) if workers is None else workers
    if n < minimum:
        return None
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster)


def close_client(client) -> None:
    """Close a client from :func:`dask_client` and the local cluster it started (an
    existing scheduler's cluster is left running)."""
    if client is None:
        return
    cluster = client.cluster
    client.close()
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close()
