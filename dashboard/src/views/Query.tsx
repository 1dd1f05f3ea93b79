// Query.tsx - the query console: an editor for kprobe's query language with highlighting,
// Ctrl+Enter to run, errors underlined at the position the server reports, a history kept in
// this browser, and results as a table (or, for answers of another shape such as path queries,
// as a chain, node/edge tables, or JSON).
import { useEffect, useMemo, useRef, useState } from 'react';
import { ApiError, api, request, type QueryResult } from '../lib/api';
import { useStored } from '../lib/hooks';
import { stringifyJson } from '../lib/json';
import { big, fmtDateTime, fmtDur, fmtNsExact } from '../lib/ns';
import { byteToIndex, lineCol, tokenEnd, tokenize } from '../lib/querytext';
import { href, navigate, txnHref } from '../lib/route';
import { Empty } from '../lib/ui';

const EXAMPLES = [
  "SELECT type, count() AS n, p99(dur) AS p99 FROM events WHERE ts > now() - 15m GROUP BY type ORDER BY n DESC",
  "SELECT ts, dur, pid, tid, comm, fd, bytes FROM events WHERE type = 'fsync' AND dur > 10ms ORDER BY dur DESC LIMIT 50",
  "SELECT comm, sum(dur) AS offcpu FROM events WHERE type = 'offcpu' AND reason = 'preempted' GROUP BY comm ORDER BY offcpu DESC LIMIT 20",
];

interface HistItem {
  q: string;
  at: number;
  ok: boolean;
  rows?: number;
  ms?: number;
}

export function Query({ params }: { params: URLSearchParams }) {
  const initial = params.get('q') ?? '';
  const [text, setText] = useState(initial || EXAMPLES[0]);
  const [result, setResult] = useState<QueryResult | null>(null);
  const [error, setError] = useState<{ message: string; index: number | null } | null>(null);
  const [running, setRunning] = useState(false);
  const [elapsed, setElapsed] = useState<number | null>(null);
  const [history, setHistory] = useStored<HistItem[]>('kprobe.queryHistory', []);
  const taRef = useRef<HTMLTextAreaElement>(null);
  const preRef = useRef<HTMLPreElement>(null);
  const abortRef = useRef<AbortController | null>(null);

  useEffect(() => {
    if (initial) setText(initial);
  }, [initial]);

  const run = async (q = text) => {
    if (!q.trim()) return;
    abortRef.current?.abort();
    const ac = new AbortController();
    abortRef.current = ac;
    setRunning(true);
    setError(null);
    const t0 = performance.now();
    try {
      const r = await api.query(q, ac.signal);
      setResult(r);
      const ms = performance.now() - t0;
      setElapsed(ms);
      pushHistory({ q, at: Date.now(), ok: true, rows: r.rows?.length, ms });
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      const pos = e instanceof ApiError ? e.position : null;
      setError({ message: (e as Error).message, index: pos === null ? null : byteToIndex(q, pos) });
      setResult(null);
      pushHistory({ q, at: Date.now(), ok: false });
    } finally {
      if (abortRef.current === ac) setRunning(false);
    }
  };
  const pushHistory = (h: HistItem) => {
    const rest = history.filter((x) => x.q !== h.q);
    setHistory([h, ...rest].slice(0, 50));
  };

  const errIdx = error?.index ?? null;
  const highlighted = useMemo(() => highlight(text, errIdx), [text, errIdx]);
  const lc = errIdx !== null ? lineCol(text, errIdx) : null;

  return (
    <div className="page query">
      <div className="page-head">
        <h1>Query</h1>
        <span className="sub">
          SELECT … FROM events WHERE … GROUP BY … ORDER BY … LIMIT … — Ctrl+Enter runs it
        </span>
      </div>
      <div className="query-grid">
        <div className="query-main">
          <div className={`editor ${error ? 'has-error' : ''}`}>
            <pre ref={preRef} className="editor-hl" aria-hidden="true">
              {highlighted}
              {'\n'}
            </pre>
            <textarea
              ref={taRef}
              className="editor-ta"
              value={text}
              spellCheck={false}
              aria-label="query"
              onChange={(e) => {
                setText(e.target.value);
                if (error) setError(null);
              }}
              onScroll={(e) => {
                if (preRef.current) {
                  preRef.current.scrollTop = e.currentTarget.scrollTop;
                  preRef.current.scrollLeft = e.currentTarget.scrollLeft;
                }
              }}
              onKeyDown={(e) => {
                if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
                  e.preventDefault();
                  void run();
                } else if (e.key === 'Tab') {
                  e.preventDefault();
                  const ta = e.currentTarget;
                  const s = ta.selectionStart;
                  setText(text.slice(0, s) + '  ' + text.slice(ta.selectionEnd));
                  requestAnimationFrame(() => ta.setSelectionRange(s + 2, s + 2));
                }
              }}
            />
          </div>
          <div className="row">
            <button className="primary" onClick={() => void run()} disabled={running} data-testid="run-query">
              {running ? 'Running…' : 'Run'}
            </button>
            <button onClick={() => navigate(href('/query', { q: text }), { silent: true })} title="put the query in the address bar, to share it">
              Link
            </button>
            <a className="btn" href={csvHref(text)} onClick={(e) => { e.preventDefault(); void downloadCsv(text); }}>
              CSV
            </a>
            {elapsed !== null && result && (
              <span className="muted">
                {result.rows ? `${result.rows.length} rows` : 'done'} in {elapsed.toFixed(0)} ms
                {result.stats && typeof result.stats.rows_scanned !== 'undefined' && ` · ${String(result.stats.rows_scanned)} rows scanned`}
                {result.stats?.truncated === true && ' · truncated (add a LIMIT)'}
              </span>
            )}
          </div>
          {error && (
            <div className="error-box query-error" role="alert" data-testid="query-error">
              <div>
                <strong>{lc ? `Line ${lc.line}, column ${lc.col}: ` : ''}</strong>
                {error.message}
              </div>
              {errIdx !== null && <ErrorCaret text={text} index={errIdx} />}
            </div>
          )}
          {result && <ResultView result={result} />}
        </div>
        <aside className="query-side">
          <h3>History</h3>
          {history.length === 0 && <div className="muted small">Queries you run appear here.</div>}
          <ul className="history" data-testid="query-history">
            {history.map((h) => (
              <li key={h.at + h.q} className={h.ok ? '' : 'failed'}>
                <button className="linklike mono" title={h.q} onClick={() => { setText(h.q); setError(null); }}>
                  {h.q.length > 120 ? h.q.slice(0, 119) + '…' : h.q}
                </button>
                <span className="muted small">
                  {new Date(h.at).toLocaleTimeString()} {h.ok ? `· ${h.rows ?? '?'} rows` : '· error'}
                </span>
              </li>
            ))}
          </ul>
          {history.length > 0 && (
            <button className="linklike small" onClick={() => setHistory([])}>
              Clear history
            </button>
          )}
          <h3>Examples</h3>
          <ul className="history">
            {EXAMPLES.map((q) => (
              <li key={q}>
                <button className="linklike mono" onClick={() => setText(q)}>
                  {q}
                </button>
              </li>
            ))}
          </ul>
        </aside>
      </div>
    </div>
  );
}

function csvHref(q: string) {
  return `/api/v1/query?format=csv&q=${encodeURIComponent(q.slice(0, 100))}`;
}

async function downloadCsv(q: string) {
  try {
    const text = await request<string>('/api/v1/query?format=csv', { method: 'POST', body: q, raw: true });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    a.download = 'kprobe-query.csv';
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (e) {
    alert((e as Error).message);
  }
}

function highlight(text: string, errIdx: number | null) {
  const toks = tokenize(text);
  const errEnd = errIdx !== null ? tokenEnd(text, errIdx) : -1;
  const out: React.ReactNode[] = [];
  let k = 0;
  for (const t of toks) {
    const s = t.start;
    const e = s + t.text.length;
    if (errIdx !== null && errIdx < e && errEnd > s && t.kind !== 'ws') {
      // split around the error span
      const a = Math.max(s, errIdx);
      const b = Math.min(e, errEnd);
      if (a > s) out.push(<span key={k++} className={`t-${t.kind}`}>{text.slice(s, a)}</span>);
      out.push(
        <mark key={k++} className={`t-${t.kind} t-error`}>
          {text.slice(a, b)}
        </mark>,
      );
      if (b < e) out.push(<span key={k++} className={`t-${t.kind}`}>{text.slice(b, e)}</span>);
    } else {
      out.push(
        <span key={k++} className={`t-${t.kind}`}>
          {t.text}
        </span>,
      );
    }
  }
  if (errIdx !== null && errIdx >= text.length) out.push(<mark key={k++} className="t-error t-eof"> </mark>);
  return out;
}

function ErrorCaret({ text, index }: { text: string; index: number }) {
  const lineStart = text.lastIndexOf('\n', index - 1) + 1;
  let lineEnd = text.indexOf('\n', index);
  if (lineEnd < 0) lineEnd = text.length;
  const line = text.slice(lineStart, lineEnd);
  const col = index - lineStart;
  const width = Math.max(1, Math.min(tokenEnd(text, index), lineEnd) - index);
  return (
    <pre className="caret">
      {line}
      {'\n'}
      {' '.repeat(col)}
      {'^'.repeat(width)}
    </pre>
  );
}

/* ------------------------------------------------------------------ results */

const TIME_COL = /(^|[_(])(ts|t0|t1|time|start|end|start_ns|end_ns|time_ns)([_)]|$)/i;
const DUR_COL = /(^|[_(])(dur|busy|latency|latency_ns|weight_ns|duration_ns|runq|offcpu|p\d+)([_)]|$)/i;

function isEpochNs(v: unknown) {
  const b = typeof v === 'bigint' ? v : null;
  return b !== null && b > 100_000_000_000_000_000n && b < 10_000_000_000_000_000_000n;
}

function Cell({ col, v }: { col: string; v: unknown }) {
  if (v === null || v === undefined) return <span className="null">NULL</span>;
  if (TIME_COL.test(col) && isEpochNs(v)) {
    const b = big(v);
    return (
      <span className="mono" data-ns={b.toString()} title={`${b} ns since the epoch`}>
        {fmtDateTime(b)}
      </span>
    );
  }
  if (DUR_COL.test(col) && (typeof v === 'number' || typeof v === 'bigint')) {
    return (
      <span className="mono" title={fmtNsExact(v)}>
        {fmtDur(v)}
      </span>
    );
  }
  if (typeof v === 'object') return <span className="mono">{stringifyJson(v)}</span>;
  return <>{String(v)}</>;
}

export function ResultTable({ result, compact, onRowClick }: { result: QueryResult; compact?: boolean; onRowClick?: (row: unknown[]) => void }) {
  const cols = result.columns ?? [];
  const rows = result.rows ?? [];
  const [limit, setLimit] = useState(500);
  if (!cols.length) return <Empty>No columns.</Empty>;
  return (
    <div className={`result-wrap ${compact ? 'compact' : ''}`}>
      <table className="grid result" data-testid="result-table">
        <thead>
          <tr>
            {cols.map((c, i) => (
              <th key={i} title={c.type} className={c.type === 'int' || c.type === 'uint' || c.type === 'float' ? 'num' : ''}>
                {c.name}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.slice(0, limit).map((r, i) => (
            <tr key={i} className={onRowClick ? 'clickable' : ''} onClick={onRowClick ? () => onRowClick(r) : undefined}>
              {cols.map((c, j) => (
                <td key={j} className={typeof r[j] === 'number' || typeof r[j] === 'bigint' ? 'num' : ''}>
                  <Cell col={c.name} v={r[j]} />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > limit && (
        <button className="linklike" onClick={() => setLimit(limit + 1000)}>
          {rows.length - limit} more rows…
        </button>
      )}
    </div>
  );
}

/** Any answer of POST /api/v1/query: a table when it has columns, else the best fitting view. */
export function ResultView({ result }: { result: QueryResult }) {
  if (Array.isArray(result.columns) && Array.isArray(result.rows)) {
    if (result.rows.length === 0) return <Empty>The query matched no rows.</Empty>;
    return <ResultTable result={result} />;
  }
  const r = result as Record<string, unknown>;
  if (Array.isArray(r.chain) && r.symptom) {
    const steps = [r.symptom as Record<string, unknown>, ...(r.chain as Record<string, unknown>[])];
    return (
      <div className="result-other">
        {typeof r.key === 'string' && (
          <div className="row">
            <a className="btn" href={txnHref(r.key)}>
              Open {r.key} →
            </a>
          </div>
        )}
        <ObjectsTable items={steps} />
      </div>
    );
  }
  if (Array.isArray(r.nodes)) {
    return (
      <div className="result-other">
        <h3>Nodes</h3>
        <ObjectsTable items={r.nodes as Record<string, unknown>[]} />
        {Array.isArray(r.edges) && (
          <>
            <h3>Edges</h3>
            <ObjectsTable items={r.edges as Record<string, unknown>[]} />
          </>
        )}
      </div>
    );
  }
  return <pre className="json">{stringifyJson(result, 2)}</pre>;
}

function ObjectsTable({ items }: { items: Record<string, unknown>[] }) {
  const cols: string[] = [];
  for (const it of items) for (const k of Object.keys(it ?? {})) if (!cols.includes(k)) cols.push(k);
  return (
    <ResultTable
      result={{
        columns: cols.map((name) => ({ name, type: '' })),
        rows: items.map((it) => cols.map((c) => {
          const v = it?.[c];
          return v !== null && typeof v === 'object' ? stringifyJson(v) : v;
        })),
      }}
    />
  );
}
