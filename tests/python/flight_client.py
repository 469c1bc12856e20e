"""A stock Arrow Flight SQL client (ADBC's driver, as applications use it) for the server
tests in tests/tests/integration/serve.rs.

Usage: python flight_client.py SPEC.json
SPEC: {"uri": "grpc://127.0.0.1:PORT", "api_key": KEY or null, "output": PATH.json,
       "queries": [{"sql": ..., "parameters": [..] or null, "file": PATH.arrow}]}
Writes to "output": {"objects": ["catalog.schema.table", ...], "table_types": [...],
"vendor_name": ..., "vendor_version": ..., "rows": [row count per query]} or
{"error": message} at the first failure.
"""

import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa


def run(spec):
    kwargs = {}
    if spec.get("api_key") is not None:
        kwargs["db_kwargs"] = {
            "adbc.flight.sql.authorization_header": "Bearer " + spec["api_key"]
        }
    result = {}
    with flight_sql.connect(spec["uri"], autocommit=True, **kwargs) as conn:
        # get_objects sends GetCatalogs, then GetDbSchemas/GetTables without a catalog filter.
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        result["objects"] = sorted(
            f"{c['catalog_name']}.{s['db_schema_name']}.{t['table_name']}"
            for c in objects
            for s in c["catalog_db_schemas"] or []
            for t in s["db_schema_tables"] or []
        )
        result["table_types"] = sorted(conn.adbc_get_table_types())
        info = conn.adbc_get_info()
        result["vendor_name"] = info.get("vendor_name")
        result["vendor_version"] = info.get("vendor_version")
        result["rows"] = []
        with conn.cursor() as cursor:
            for query in spec.get("queries", []):
                if query.get("parameters") is None:
                    cursor.execute(query["sql"])
                else:
                    # A prepared statement with its parameters bound.
                    cursor.execute(query["sql"], parameters=query["parameters"])
                table = cursor.fetch_arrow_table()
                with pa.OSFile(query["file"], "wb") as sink:
                    with pa.ipc.new_file(sink, table.schema) as writer:
                        writer.write_table(table)
                result["rows"].append(table.num_rows)
    return result


def main():
    spec = json.load(open(sys.argv[1]))
    try:
        result = run(spec)
    except Exception as error:  # the test reads the message
        result = {"error": f"{type(error).__name__}: {error}"}
    with open(spec["output"], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
