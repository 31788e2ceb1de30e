"""Redis topologies under their faults, against real servers with TLS from a self-made CA:
a Sentinel trio through a ``SENTINEL FAILOVER`` and a kill -9 of its master, and a 3+3 Redis
Cluster with a master killed. Durable acknowledgement (``replicas=N``: enqueue and completion ``WAIT`` for N
replicas) is what makes "nothing acknowledged is lost" hold through a failover; the runs
without it record what the failover window costs (``make faults``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from tests.harness import start_server
from tests.servers import RedisCluster, TlsFiles
from tests.topology_servers import SentinelGroup

from . import figures
from .conftest import FULL, fresh_namespace, size
from .through import run_through


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Both deployments run with TLS from a self-made CA, as in production."""
    return TlsFiles.make(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def sentinel_group(tls: TlsFiles) -> Iterator[SentinelGroup]:
    group = start_server(lambda: SentinelGroup(tls=tls))
    yield group
    group.stop()


@pytest.mark.parametrize("replicas", [2, *([0] if FULL else [])], ids=lambda n: f"replicas={n}")
def test_sentinel_failover_then_kill_9_of_the_master(sentinel_group: SentinelGroup, replicas: int) -> None:
    # The app and its worker keep running through both faults: each time they find the new
    # master through the Sentinels (READONLY or a refused connection makes them ask again)
    # and load their scripts there (NOSCRIPT) on the connection that runs them.
    # replicas=2, every replica: after a SENTINEL FAILOVER the old master keeps taking writes
    # for a moment, and the replica not yet moved to the new master may confirm them; only
    # the promoted one's confirmation is proof. (A kill -9 alone needs replicas=1.)
    url = sentinel_group.url + "&replicas_timeout=0.5"  # rediss+sentinel://…?ssl_ca_certs=<the CA>
    app = Conveyor(url, namespace=fresh_namespace(), lease=2.0, replicas=replicas or None)
    masters = [sentinel_group.master_port()]

    def faults() -> None:
        masters.append(sentinel_group.failover().port)
        time.sleep(1.0)  # jobs flow again through the new master
        masters.append(sentinel_group.kill_master().port)

    try:
        seen = run_through(app, faults, size(300, 6000), settle=60.0)
        # Admin calls, on redis-py's own pool, find the new master too.
        assert app.stats().total("pending") == 0
    finally:
        app.close()
    figures.record(
        "redis",
        f"sentinel: SENTINEL FAILOVER + kill -9 of the master (replicas={replicas})",
        **seen.figures(kills=2),
    )
    assert len(set(masters)) >= 2, masters
    assert len(seen.acknowledged) > size(300, 6000) // 2, seen.errors
    if replicas:
        assert seen.lost == [], f"{len(seen.lost)} acknowledged jobs lost: {seen.lost[:10]}"


@pytest.mark.parametrize("replicas", [1, *([0] if FULL else [])], ids=lambda n: f"replicas={n}")
def test_cluster_master_killed(replicas: int, tls: TlsFiles) -> None:
    cluster = start_server(lambda: RedisCluster(masters=3, replicas=1, node_timeout_ms=1000, tls=tls))
    try:
        # rediss+cluster://every-node?ssl_ca_certs=<the CA>
        app = Conveyor(cluster.url, namespace=fresh_namespace(), lease=2.0, replicas=replicas or None)
        # The default queue's slot: kill the master that holds it, the worst case.
        victim_slot_key = "{" + app.namespace + ":default}"

        def kill() -> None:
            from redis.crc import key_slot

            slot = key_slot(victim_slot_key.encode())
            masters = cluster.masters_now()
            victim = next(
                (
                    m
                    for m in masters
                    if isinstance(n := m.command("CLUSTER", "COUNTKEYSINSLOT", slot), int) and n > 0
                ),
                masters[0],
            )
            victim.halt(hard=True)
            cluster.wait_promoted(len(masters))  # its replica took over
            cluster.wait_ok()
            # Started again, as its supervisor would: it rejoins as the new master's replica
            # (until then a durable write to that shard cannot be confirmed, and is refused).
            victim.start()
            cluster.wait_ok()

        try:
            seen = run_through(app, kill, size(600, 6000), settle=60.0)
        finally:
            app.close()
        # The older spelling of a TLS cluster URL honours the CA as well.
        nodes = ",".join(f"{h}:{p}" for h, p in cluster.nodes)
        plain = Conveyor(f"redis+cluster://{nodes}?ssl=true&ssl_ca_certs={tls.ca}", namespace=app.namespace)
        assert plain.stats().total("pending") == 0
        plain.close()
    finally:
        cluster.stop()
    figures.record("redis", f"cluster 3+3: a master killed (replicas={replicas})", **seen.figures())
    assert len(seen.acknowledged) > size(600, 6000) // 2, seen.errors
    if replicas:
        assert seen.lost == [], f"{len(seen.lost)} acknowledged jobs lost: {seen.lost[:10]}"
