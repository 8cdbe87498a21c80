"""Drives pinhouse's PostgreSQL listener with psycopg 3 (the extended query protocol):
parameters in text and binary format, results (numbers, times, text) in text and binary format, a prepared
statement reused, information_schema and a catalog table, an error's SQLSTATE.
Prints one JSON object for the Rust test to check.

Usage: pg_client.py HOST PORT USER PASSWORD DEVICE_ID
"""
import json
import sys

import psycopg

host, port, user, password, device_id = (
    sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]),
)
out = {}
with psycopg.connect(host=host, port=port, user=user, password=password,
                     dbname="pinhouse", sslmode="disable", connect_timeout=10,
                     autocommit=True) as conn:
    query = ("SELECT device_id, pin, value, ts FROM telemetry "
             "WHERE device_id = %s AND value > %s ORDER BY ts")
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            # Twice with prepare=True: the second run reuses the prepared statement.
            for _ in range(2):
                cur.execute(query, (device_id, 2.0), prepare=True)
                rows = cur.fetchall()
            out["binary" if binary else "text"] = [
                [r[0], r[1], r[2], r[3].isoformat()] for r in rows
            ]
    # Text states in text and binary format: (text result, binary result) per row.
    states = []
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            cur.execute("SELECT text FROM telemetry WHERE pin = %s ORDER BY text", (2,))
            states.append([r[0] for r in cur.fetchall()])
    out["states"] = [list(pair) for pair in zip(*states)]
    with conn.cursor() as cur:
        # %b sends the parameter in binary format.
        cur.execute("SELECT count(*) FROM telemetry WHERE device_id = %b", (device_id,))
        out["count"] = cur.fetchone()[0]
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = %s ORDER BY 1", ("public",))
        out["tables"] = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT name FROM devices WHERE device_id = %s", (device_id,))
        out["name"] = cur.fetchone()[0]
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM nope WHERE x = %s", (1,))
    except psycopg.Error as e:
        out["error"] = e.sqlstate
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE telemetry")
    except psycopg.Error as e:
        out["ddl"] = e.sqlstate
print(json.dumps(out))
