"""Reads every Parquet file of a directory with pyarrow, duckdb and chdb (ClickHouse
engine) and prints one JSON object with, per reader: rows, distinct event ids, sum of
screen_width, rows per site. Fails loudly (exit 2) when a module is missing."""
import glob, json, os, sys

d = sys.argv[1]
files = sorted(glob.glob(os.path.join(d, "*.parquet")))
missing = []
for m in ("pyarrow", "duckdb", "chdb"):
    try:
        __import__(m)
    except ImportError as e:
        missing.append(f"{m} ({e})")
if missing:
    print("MISSING python modules: " + ", ".join(missing) + " (pip install pyarrow duckdb chdb-core)", file=sys.stderr)
    sys.exit(2)
out = {"files": len(files)}

import pyarrow.parquet as pq
import pyarrow.compute as pc
import pyarrow as pa
t = pa.concat_tables([pq.read_table(f) for f in files]) if files else None
if t is not None:
    sites = {}
    for s in t.column("site_id").to_pylist():
        sites[s] = sites.get(s, 0) + 1
    out["pyarrow"] = {
        "rows": t.num_rows,
        "distinct_ids": len(set(t.column("event_id").to_pylist())),
        "sum_screen_width": int(pc.sum(t.column("screen_width").cast(pa.uint64())).as_py() or 0),
        "per_site": sites,
        "columns": t.column_names,
    }

import duckdb
glob_expr = os.path.join(d, "*.parquet").replace("'", "''")
con = duckdb.connect()
r = con.execute(f"SELECT count(*), count(DISTINCT event_id), sum(screen_width) FROM read_parquet('{glob_expr}')").fetchone()
ps = dict(con.execute(f"SELECT site_id, count(*) FROM read_parquet('{glob_expr}') GROUP BY site_id").fetchall())
out["duckdb"] = {"rows": r[0], "distinct_ids": r[1], "sum_screen_width": int(r[2] or 0), "per_site": ps}

import chdb
q = lambda sql: chdb.query(sql, "JSONCompact")
res = json.loads(str(q(f"SELECT count(), uniqExact(event_id), sum(screen_width) FROM file('{glob_expr}', Parquet)")))["data"][0]
ps = json.loads(str(q(f"SELECT site_id, count() FROM file('{glob_expr}', Parquet) GROUP BY site_id")))["data"]
out["chdb"] = {"rows": int(res[0]), "distinct_ids": int(res[1]), "sum_screen_width": int(res[2]), "per_site": {k: int(v) for k, v in ps}}
print(json.dumps(out))
