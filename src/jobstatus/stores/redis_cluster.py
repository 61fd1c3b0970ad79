"""``redis+cluster://host:port[,host:port]``: the Redis store on a Redis Cluster.

Same records, script and semantics as :mod:`.redis`. Keys carry a hash tag
so that a job's record and the indexes the write script updates share a slot:
ids are spread over 128 buckets (a CRC-32 of the id), and bucket ``N``'s keys
are tagged ``{bN}``::

    jobstatus:{b17}r:<id>       the record
    jobstatus:{b17}x:all        bucket 17's listing index (and x:exp, x:s:<status>)
    jobstatus:{b17}c:<id>       the job's pub/sub channel

The tag never depends on braces in the id, so any id is safe; the prefix may
not contain braces. Listing reads the head of the 128 bucket indexes in one
pipeline (one round trip per node) and merges them. Batch reads are pipelined
and grouped per node by redis-py. Watchers subscribe on the node that owns the
job's slot.

Groups: a script touches one slot, and a child and its group are usually on
different ones, so a child's write with a parent is two calls. The child's
write (its slot) numbers the move of its group and answers it; the move script
(the group's slot) keeps a ledger, ``jobstatus:{bG}l:<group>``, of each child's
last counted state and move number, drops a move numbered no higher (sent
again, or overtaken) and applies any other from the ledger's state, so counts
stay exact; a group that moved in turn answers its own move, one more call per
level. The child's record is atomic; its group converges within one more
write (a crash between the calls leaves it at most one move behind that child,
repaired by the child's next change of state, or by the writer re-sending the
write). Counting runs one script per bucket.
"""

from __future__ import annotations

import zlib
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from .._errors import ConfigurationError
from ._redis_common import KeyLayout
from ._url import redact
from .redis import RedisStore

BUCKETS = 128


class ClusterKeyLayout(KeyLayout):
    """Key names with a ``{bN}`` hash tag after the prefix."""

    defers = True

    def tag(self, job_id: str) -> str:
        """``{bN}``: the job's bucket, from a CRC-32 of its id (never from braces in it)."""
        return f"{{b{zlib.crc32(job_id.encode('utf-8')) % BUCKETS}}}"

    def all_tags(self) -> list[str]:
        """The tags of all buckets."""
        return [f"{{b{bucket}}}" for bucket in range(BUCKETS)]


def parse_cluster_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Startup nodes and connection options from ``redis+cluster://[user:pass@]h:p[,h:p]``."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    options: dict[str, Any] = {}
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, _, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if password:
            options["password"] = unquote(password)
    nodes = []
    for address in filter(None, hosts.split(",")):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(
                f"Redis Cluster URL {redact(url)!r}: {address!r} is not host:port; write "
                "redis+cluster://host:port[,host:port]"
            )
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ConfigurationError(f"Redis Cluster URL {redact(url)!r} names no node")
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"Redis Cluster URL {redact(url)!r} has a path; a cluster has only database 0"
        )
    return nodes, options


class RedisClusterStore(RedisStore):
    """Records in a Redis Cluster; the Redis store's semantics, slot-safe keys.

    Args:
        url: ``redis+cluster://[user:password@]host:port[,host:port]``, with query
            options ``prefix`` and ``timeout``.
        client: a ready ``redis.cluster.RedisCluster`` or
            ``redis.asyncio.cluster.RedisCluster`` instead of a URL.
        prefix: put before every key; no ``{`` or ``}`` (default ``jobstatus:``).
        timeout: seconds every call to a node may take (default 5).
        client_options: passed to ``RedisCluster``.

    Example::

        store = RedisClusterStore.from_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
    """

    _prefix_forbids: ClassVar[str] = "{}"

    def __init__(self, url: str | None = None, **options: Any) -> None:
        self._nodes: list[tuple[str, int]] = []
        self._url_options: dict[str, Any] = {}
        if isinstance(url, str):
            self._nodes, self._url_options = parse_cluster_url(url)
        super().__init__(url, **options)

    def _make_layout(self, prefix: str) -> KeyLayout:
        return ClusterKeyLayout(prefix)

    def _cluster_options(self, module: Any) -> dict[str, Any]:
        return {**self._url_options, **self._options(module)}

    def _retry_options(self, module: Any) -> dict[str, Any]:
        # The cluster client retries a dropped connection itself, once per
        # attempt of its Retry (redis-py 6+) or cluster_error_retry_attempts (5),
        # after refreshing its map of the nodes.
        return {"retry": self._retry(module)}

    def _build_sync(self) -> Any:
        cluster = self._redis.cluster
        if self._given is not None:
            return self._twin_cluster(self._redis, self._given)
        nodes = [cluster.ClusterNode(host, port) for host, port in self._nodes]
        return cluster.RedisCluster(startup_nodes=nodes, **self._cluster_options(self._redis))

    def _build_async(self) -> Any:
        cluster = self._redis.asyncio.cluster
        if self._given is not None:
            return self._twin_cluster(self._redis.asyncio, self._given)
        nodes = [cluster.ClusterNode(host, port) for host, port in self._nodes]
        return cluster.RedisCluster(
            startup_nodes=nodes, **self._cluster_options(self._redis.asyncio)
        )

    def _twin_cluster(self, module: Any, given: Any) -> Any:
        """A client of the other kind (sync/async) for the cluster a given client reaches."""
        # An asyncio cluster client learns its nodes on first use; until then
        # only its startup nodes are known.
        known = given.get_nodes() or list(given.nodes_manager.startup_nodes.values())
        nodes = [module.cluster.ClusterNode(node.host, node.port) for node in known]
        return module.cluster.RedisCluster(
            startup_nodes=nodes, retry=self._retry(module), **self._node_options()
        )

    def _is_async_client(self, client: Any) -> bool:
        return type(client).__module__.startswith("redis.asyncio")

    def describe(self) -> str:
        if self._url is not None:
            return redact(self._url)
        nodes = ",".join(f"{node.host}:{node.port}" for node in self._given.get_nodes())
        return f"redis+cluster://{nodes}"

    def _node_options(self) -> dict[str, Any]:
        options = {k: v for k, v in self._url_options.items() if k in ("username", "password")}
        if self._given is not None:
            kwargs = self._given_connection_kwargs()
            options = {k: kwargs[k] for k in ("username", "password") if kwargs.get(k)}
        return {**options, "socket_timeout": self.timeout, "socket_connect_timeout": self.timeout}

    def _given_connection_kwargs(self) -> dict[str, Any]:
        manager = getattr(self._given, "nodes_manager", None)  # sync clients keep them there
        kwargs: dict[str, Any] = getattr(manager, "connection_kwargs", None) or getattr(
            self._given, "connection_kwargs", {}
        )
        return kwargs

    def _pubsub_client(self, job_id: str) -> tuple[Any, bool]:
        # A PUBLISH reaches every node of a cluster; subscribing on the node
        # that owns the job's slot keeps the script's subscriber check local.
        node = self._scripts().client.get_node_from_key(self._layout.record(job_id))
        return self._redis.Redis(host=node.host, port=node.port, **self._node_options()), True

    def _listener_client(self) -> tuple[Any, bool]:
        # A PUBLISH reaches every node: any node serves the cancel channel.
        host, port = self._nodes[0] if self._nodes else self._given_node()
        return self._redis.Redis(host=host, port=port, **self._node_options()), True

    def _given_node(self) -> tuple[str, int]:
        given = self._given
        known = given.get_nodes() or list(given.nodes_manager.startup_nodes.values())
        return known[0].host, int(known[0].port)

    async def _apubsub_client(self, job_id: str) -> tuple[Any, bool]:
        client = (await self._ascripts()).client
        await client.initialize()  # the async client learns the slot map lazily
        node = client.get_node_from_key(self._layout.record(job_id))
        options = self._node_options()
        return self._redis.asyncio.Redis(host=node.host, port=node.port, **options), True
