#!/usr/bin/env python3
"""Writes a state file in Sozu's format (JSON WorkerRequest records, each
followed by "\n\0") holding CLUSTERS clusters, each with an HTTP frontend on
127.0.0.1:PORT (a host of its own, TREE position) and two backends that
nothing listens on.

    bench/make-state.py CLUSTERS PORT PATH

Used by bench/state-load.sh and bench/memory.sh."""
import json, sys

clusters, port, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def address(ip, port):
    a, b, c, d = ip
    return {"ip": {"inner": {"V4": (a << 24) | (b << 16) | (c << 8) | d}}, "port": port}

listener = address((127, 0, 0, 1), port)
records = []
for index in range(clusters):
    cluster_id = f"cluster-{index}"
    records.append({"ADD_CLUSTER": {
        "cluster_id": cluster_id, "sticky_session": False, "https_redirect": False,
        "proxy_protocol": None, "load_balancing": 0, "answer_503": None, "load_metric": None,
        "http2": None, "answers": {}, "https_redirect_port": None, "authorized_hashes": [],
        "www_authenticate": None, "max_connections_per_ip": None, "retry_after": None,
        "health_check": None, "udp": None, "max_connections_per_subnet": None,
        "affinity_header": None, "affinity_cookie": None, "shard_percent": None,
        "shard_min_backends": None, "shard_mode": None, "max_connection_attempts": None}})
    records.append({"ADD_HTTP_FRONTEND": {
        "cluster_id": cluster_id, "address": listener, "hostname": f"app{index}.example.com",
        "path": {"kind": 0, "value": "/"}, "method": None, "position": 2, "tags": {},
        "redirect": None, "required_auth": None, "redirect_scheme": None,
        "redirect_template": None, "rewrite_host": None, "rewrite_path": None,
        "rewrite_port": None, "headers": [], "hsts": None, "header_predicates": []}})
    for backend in range(2):
        # Loopback addresses that nothing listens on: never connected to.
        backend_port = 10000 + (2 * index + backend) % 50000
        records.append({"ADD_BACKEND": {
            "cluster_id": cluster_id, "backend_id": f"{cluster_id}-{backend}",
            "address": address((127, 0, 0, 1), backend_port), "sticky_id": None,
            "load_balancing_parameters": {"weight": 100}, "backup": None, "unix_path": None}})
with open(path, "wb") as out:
    for number, request_type in enumerate(records):
        record = {"id": f"SAVE-{number}", "content": {"request_type": request_type}}
        out.write(json.dumps(record, separators=(",", ":")).encode() + b"\n\0")
