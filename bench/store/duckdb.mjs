// duckdb.mjs - the DuckDB peer of bench/store (run.sh): loads the generated CSV into a table with
// the original schema (seeds/004: metadata as MAP(VARCHAR, VARCHAR)), then times the five
// incident queries in-process. Prints one JSON object.
//
//   node duckdb.mjs DBFILE CSVFILE RUNS Q1 Q2 Q3 Q4 Q5
import { DuckDBInstance } from '@duckdb/node-api';
import { statSync, rmSync, existsSync } from 'node:fs';

const [dbfile, csv, runsArg, ...queries] = process.argv.slice(2);
const runs = Number(runsArg);
for (const f of [dbfile, dbfile + '.wal']) if (existsSync(f)) rmSync(f);
const inst = await DuckDBInstance.create(dbfile);
const conn = await inst.connect();
await conn.run(`CREATE TABLE kernel_events (
  timestamp_ns UBIGINT, pid UINTEGER, tid UINTEGER, cpu USMALLINT, event_type VARCHAR,
  duration_ns UBIGINT, service VARCHAR, transaction_id VARCHAR,
  metadata MAP(VARCHAR, VARCHAR))`);
let t0 = performance.now();
await conn.run(`INSERT INTO kernel_events SELECT timestamp_ns, pid, tid, cpu, event_type,
  duration_ns, service, transaction_id, CAST(metadata AS MAP(VARCHAR, VARCHAR))
  FROM read_csv('${csv}', header = false, quote = '"', escape = '"', columns = {
    'timestamp_ns': 'UBIGINT', 'pid': 'UINTEGER', 'tid': 'UINTEGER', 'cpu': 'USMALLINT',
    'event_type': 'VARCHAR', 'duration_ns': 'UBIGINT', 'service': 'VARCHAR',
    'transaction_id': 'VARCHAR', 'metadata': 'VARCHAR'})`);
await conn.run('CHECKPOINT');
const loadS = (performance.now() - t0) / 1000;
const rows = Number((await conn.runAndReadAll('SELECT count(*) FROM kernel_events')).getRows()[0][0]);
const bytes = statSync(dbfile).size;
const out = { rows, load_s: loadS, events_per_s: rows / loadS, bytes, bytes_per_event: bytes / rows, q: [] };
for (const sql of queries) {
  const ms = [];
  let n = 0;
  for (let i = 0; i <= runs; i++) {
    t0 = performance.now();
    const r = await conn.runAndReadAll(sql);
    n = r.getRows().length;
    if (i) ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  out.q.push({ ms: ms[Math.floor(ms.length / 2)], rows: n });
}
console.log(JSON.stringify(out));
