"""The server fixtures start real servers that answer, keep data across restarts and clean up."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from tests.servers import PostgresServer, RedisCluster, RedisServer, resp_command


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_redis_answers_raw_ping(redis_server: RedisServer) -> None:
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert resp_command(redis_server.port, "PING") == "PONG"
    assert redis_server.command("CONFIG", "GET", "appendfsync") == [b"appendfsync", b"always"]


def test_redis_py_set_get(redis_server: RedisServer) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_server.url)
    try:
        key = f"test-servers:{uuid.uuid4()}"
        client.set(key, "value")
        assert client.get(key) == b"value"
        client.delete(key)
    finally:
        client.close()


def test_redis_aof_survives_restart_and_crash(redis_server: RedisServer) -> None:
    redis = pytest.importorskip("redis")
    with RedisServer() as server:  # our own instance: restarting the shared one would hurt
        port = server.port
        client = redis.Redis.from_url(server.url)
        try:
            client.set("graceful", "1")
            server.restart()
            assert server.port == port
            assert client.get("graceful") == b"1"

            client.set("crash", "2")
            server.restart(hard=True)  # SIGKILL: only the fsynced AOF can bring this back
            assert client.get("crash") == b"2"
            assert client.get("graceful") == b"1"
        finally:
            client.close()
        data_dir = server.dir
    assert data_dir is not None and not data_dir.exists()
    assert not _accepts(port)


def test_redis_halt_then_start(redis_server: RedisServer) -> None:
    with RedisServer() as server:
        server.command("SET", "k", "v")
        server.halt()
        assert not server.running and not _accepts(server.port)
        server.start()
        assert server.command("GET", "k") == b"v"


def test_redis_cluster_is_ok(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.nodes) == 3
    assert redis_cluster.url == f"redis://127.0.0.1:{redis_cluster.nodes[0][1]}/0"
    for index in range(len(redis_cluster.nodes)):
        info = redis_cluster.cluster_info(index)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_ok"] == "16384"


def test_redis_cluster_client(redis_cluster: RedisCluster) -> None:
    redis = pytest.importorskip("redis")
    client = redis.RedisCluster.from_url(redis_cluster.url)
    try:
        keys = [f"test-servers:{i}" for i in range(20)]  # spread over the slots of every node
        for key in keys:
            client.set(key, key)
        assert [client.get(key) for key in keys] == [key.encode() for key in keys]
        client.delete(*keys)
    finally:
        client.close()


def test_postgres_select_one(postgres_server: PostgresServer) -> None:
    psycopg = pytest.importorskip("psycopg")
    assert postgres_server.url == f"postgresql://postgres@127.0.0.1:{postgres_server.port}/postgres"
    with psycopg.connect(postgres_server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)


def test_postgres_create_database(postgres_server: PostgresServer) -> None:
    psycopg = pytest.importorskip("psycopg")
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    assert url.endswith(f"/{name}")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
    postgres_server.drop_database(name)


def test_postgres_runs_as_non_root(postgres_server: PostgresServer) -> None:
    proc = postgres_server.proc
    assert proc is not None
    owner = os.stat(f"/proc/{proc.pid}").st_uid
    if os.geteuid() == 0:
        assert owner != 0
    else:
        assert owner == os.geteuid()


def test_postgres_survives_restart_and_crash(postgres_server: PostgresServer) -> None:
    psycopg = pytest.importorskip("psycopg")
    with PostgresServer() as server:  # our own instance: restarting the shared one would hurt
        port = server.port
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (v int)")
            conn.execute("INSERT INTO t VALUES (1)")
        server.restart()
        assert server.port == port
        with psycopg.connect(server.url, autocommit=True) as conn:
            assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
            conn.execute("INSERT INTO t VALUES (2)")
        server.restart(hard=True)  # SIGKILL to every postgres process, then crash recovery
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT v FROM t ORDER BY v").fetchall() == [(1,), (2,)]
        data_dir = server.dir
    assert data_dir is not None and not data_dir.exists()
    assert not _accepts(port)
