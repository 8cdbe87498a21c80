"""Times SQL statements in DuckDB over pinhouse's Parquet files, for `pinhouse-bench query`.

Usage: duckdb_sql.py PARQUET_GLOB RUNS STATEMENTS_JSON
The statements name the table `telemetry`; it is a view over the Parquet files (the same
columns pinhouse's SQL sees). Prints a JSON list: the median seconds of each statement.
"""
import json
import statistics
import sys
import time

import duckdb

glob, runs, statements = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
con = duckdb.connect()
con.execute(f"CREATE VIEW telemetry AS SELECT * FROM read_parquet('{glob}')")
medians = []
for sql in statements:
    times = []
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    medians.append(statistics.median(times))
print(json.dumps(medians))
