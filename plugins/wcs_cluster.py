"""
Built-in module C{cluster}: this server as one node of many (docs/scaling.md).

Off unless C{cluster_redis_url} is set: the embedded default stays one process with nothing else
to run.  Like every drop-in this file stays tiny; the implementation is imported at start.
"""

from wcs_twisted.plugin_proxy import LazyModule
from wcs_twisted.toolkit.config import POSITIVE_INT, STRING, ModuleKey

cluster = LazyModule("cluster", "wcs_twisted.modules_builtin.cluster.ClusterModule", __name__, (
    ModuleKey("cluster_redis_url", STRING, "",
              "Cluster mode: the Redis holding the cluster's call and stream directory, "
              "redis://host:port/db; empty: this server is alone (no cluster)."),
    ModuleKey("cluster_node_url", STRING, "",
              "Cluster mode: the REST base other nodes relay requests to, e.g. "
              "http://10.0.0.5:8081/rest-api; empty: http://<ip or 127.0.0.1>:<http.port>/rest-api."),
    ModuleKey("cluster_heartbeat_ms", POSITIVE_INT, "1000",
              "Cluster mode: how often this node renews its directory entry."),
    ModuleKey("cluster_node_ttl_ms", POSITIVE_INT, "3000",
              "Cluster mode: a node that has not renewed its entry for this long is dead: "
              "the directory forgets it and its calls and streams."),
    ModuleKey("cluster_request_timeout_ms", POSITIVE_INT, "5000",
              "Cluster mode: the longest wait for Redis or for a node a REST request is relayed to."),
))
