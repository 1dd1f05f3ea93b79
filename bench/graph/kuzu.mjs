// kuzu.mjs - the Kuzu peer of bench/graph: loads the CSV graphbench wrote (the same generator),
// runs the same two queries as Cypher over the same symptoms, checks every answer against
// expected.txt (LMDB's answers), and prints "key value" lines like graphbench.
//
//   node kuzu.mjs DIR [SYMPTOMS [PASSES]]
//
// Root cause: one prepared Cypher query per step (the heaviest incoming edge, ties to the newest
// cause, LIMIT 9 so an unvisited cause is always among the rows), as an application would drive
// it; Cypher has no "greedy walk" of its own. Ancestors: one variable-length pattern, 1..6 hops,
// count(DISTINCT). Kuzu's COPY FROM is its bulk loader, not a transactional ingest, so its load
// time is shown but not compared.
import fs from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const kuzu = require("kuzu");

const dir = process.argv[2];
const limit = process.argv[3] ? Number(process.argv[3]) : Infinity;
const passes = process.argv[4] ? Number(process.argv[4]) : 3; // fastest of P passes per query, as graphbench
if (!dir || process.argv.includes("--help")) {
  console.log("usage: node kuzu.mjs DIR [SYMPTOMS [PASSES]]  (DIR: where graphbench --csv wrote its files)");
  process.exit(dir ? 0 : 2);
}

const err = (s) => process.stderr.write(s + "\n");
const out = (k, v) => console.log(`${k} ${v}`);
const now = () => Number(process.hrtime.bigint()) / 1e3; // us

const dbPath = `${dir}/kuzu`;
fs.rmSync(dbPath, { recursive: true, force: true });
fs.rmSync(`${dbPath}.wal`, { force: true });
const db = new kuzu.Database(dbPath, 4 * 1024 * 1024 * 1024);
const conn = new kuzu.Connection(db);
const q = (s) => conn.querySync(s);

q("CREATE NODE TABLE N(id INT64, kind INT8, pid INT32, comm STRING, weight INT64," +
  " start_ns INT64, end_ns INT64, PRIMARY KEY(id))");
q("CREATE REL TABLE E(FROM N TO N, kind INT8, weight INT64)");
err("kuzu: COPY FROM nodes.csv, edges.csv");
let t0 = now();
q(`COPY N FROM '${dir}/nodes.csv' (header=true)`);
q(`COPY E FROM '${dir}/edges.csv' (header=true)`);
const loadS = (now() - t0) / 1e6;
out("kuzu_load_s", loadS.toFixed(2));
err(`kuzu: loaded in ${loadS.toFixed(1)} s`);

const expected = fs
  .readFileSync(`${dir}/expected.txt`, "utf8")
  .trim()
  .split("\n")
  .slice(0, limit)
  .map((l) => {
    const f = l.split(" ").map(Number);
    return { sym: f[0], anc: f[1], pidSum: f[2], chain: f.slice(3) };
  });

const stepStmt = conn.prepareSync(
  "MATCH (a:N)-[e:E]->(b:N) WHERE b.id = $id" +
    " RETURN a.id AS id, e.kind AS kind, e.weight AS w, a.pid AS pid, a.comm AS comm" +
    " ORDER BY e.weight DESC, a.id DESC LIMIT 9",
);
const nodeStmt = conn.prepareSync("MATCH (n:N) WHERE n.id = $id RETURN n.pid AS pid, n.comm AS comm");
const ancStmt = conn.prepareSync(
  "MATCH (a:N)-[:E*1..6]->(b:N) WHERE b.id = $id RETURN count(DISTINCT a.id) AS n",
);

// Runs a prepared statement and returns its rows, closing the result (an unclosed result keeps
// its buffers pinned until the pool is full).
function rows(stmt, params) {
  const res = conn.executeSync(stmt, params);
  const all = res.getAllSync();
  res.close();
  return all;
}

function rootcause(sym) {
  const chain = [sym];
  const head = rows(nodeStmt, { id: sym })[0];
  let pidSum = Number(head.pid);
  for (let step = 0; step < 8; step++) {
    const causes = rows(stepStmt, { id: chain[chain.length - 1] });
    const next = causes.find((r) => !chain.includes(Number(r.id)));
    if (!next) break;
    chain.push(Number(next.id));
    pidSum += Number(next.pid);
  }
  return { chain, pidSum };
}

function ancestors(sym) {
  const r = rows(ancStmt, { id: sym })[0];
  return Number(r.n) + 1; // + the symptom itself, as LMDB and SQLite count
}

function pct(name, lat) {
  lat.sort((a, b) => a - b);
  const p50 = lat[Math.floor(lat.length / 2)], p99 = lat[Math.floor((lat.length * 99) / 100)];
  out(`${name}_p50_us`, p50.toFixed(1));
  out(`${name}_p99_us`, p99.toFixed(1));
  err(`  ${name.padEnd(28)} p50 ${p50.toFixed(1).padStart(9)} us   p99 ${p99.toFixed(1).padStart(9)} us`);
}

let mismatches = 0;
for (const [name, fn, check] of [
  ["kuzu_rootcause", rootcause, (e, a) => a.chain.join() === e.chain.join() && a.pidSum === e.pidSum],
  ["kuzu_ancestors", ancestors, (e, a) => a === e.anc],
]) {
  err(`kuzu: ${name} over ${expected.length} symptoms (warm-up pass first)`);
  for (const e of expected) fn(e.sym);
  const lat = expected.map(() => Infinity);
  for (let pass = 0; pass < passes; pass++) {
    expected.forEach((e, i) => {
      t0 = now();
      const a = fn(e.sym);
      lat[i] = Math.min(lat[i], now() - t0);
      if (!check(e, a)) {
        if (mismatches++ < 5) err(`kuzu: ${name} of ${e.sym} differs: ${JSON.stringify(a)} vs ${JSON.stringify(e)}`);
      }
    });
  }
  pct(name, lat);
}
out("kuzu_mismatches", mismatches);
out("kuzu_symptoms", expected.length);
process.exit(mismatches ? 1 : 0);
