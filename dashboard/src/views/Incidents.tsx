// Incidents.tsx - failed and slow transactions, newest first: when, which service, how long,
// the transaction id and the one-line root cause. Filters (text, service, time range) live in
// the URL, so a filtered list is a link. Paging follows the server's "next" cursor.
import { useEffect, useMemo, useState } from 'react';
import { api, type Incident, type IncidentPage } from '../lib/api';
import { useAsync, useMarkOnce } from '../lib/hooks';
import { big, parseTime } from '../lib/ns';
import { href, navigate, txnHref } from '../lib/route';
import { Dur, Empty, ErrorBox, Loading, Time, symptomBadge } from '../lib/ui';

const RANGES: [string, string][] = [
  ['15m', 'last 15 min'],
  ['1h', 'last hour'],
  ['6h', 'last 6 hours'],
  ['24h', 'last 24 hours'],
  ['7d', 'last 7 days'],
  ['30d', 'last 30 days'],
  ['all', 'all time'],
  ['custom', 'custom…'],
];

const PAGE = 100;

export function Incidents({ params }: { params: URLSearchParams }) {
  const q = params.get('q') ?? '';
  const service = params.get('service') ?? '';
  const from = params.get('from') ?? '24h';
  const to = params.get('to') ?? '';
  const [qText, setQText] = useState(q);
  const [customFrom, setCustomFrom] = useState(RANGES.some(([k]) => k === from) ? '' : from);
  const [customTo, setCustomTo] = useState(to);
  const [more, setMore] = useState<Incident[]>([]);
  const [next, setNext] = useState<IncidentPage['next']>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const custom = !RANGES.some(([k]) => k === from) || from === 'custom';
  useEffect(() => setQText(q), [q]);

  const fromParam = (() => {
    if (from === 'all') return undefined;
    if (custom) {
      const t = parseTime(from);
      return t === null ? undefined : t.toString();
    }
    return from; // the server reads "15m" as 15 minutes ago
  })();
  const toParam = to ? (parseTime(to)?.toString() ?? undefined) : undefined;

  const res = useAsync(
    (signal) => api.incidents({ q, service, from: fromParam, to: toParam, limit: PAGE }, signal),
    [q, service, fromParam, toParam],
  );
  useEffect(() => {
    setMore([]);
    setNext(res.data?.next ?? null);
  }, [res.data]);
  useMarkOnce('kp-first-view', !!res.data || !!res.error);

  const rows = useMemo(() => [...(res.data?.incidents ?? []), ...more], [res.data, more]);
  const services = useMemo(() => {
    const s = new Set<string>();
    rows.forEach((r) => r.service && s.add(r.service));
    if (service) s.add(service);
    return [...s].sort();
  }, [rows, service]);

  const set = (patch: Record<string, string>) => {
    const p: Record<string, string> = { q, service, from, to, ...patch };
    if (p.from === '24h') delete p.from;
    navigate(href('/', p));
  };

  const loadMore = async () => {
    if (!next) return;
    setLoadingMore(true);
    try {
      const page = await api.incidents({
        q,
        service,
        from: fromParam,
        to: toParam,
        limit: PAGE,
        after_time: big(next.after_time),
        after_id: big(next.after_id),
      });
      setMore((m) => [...m, ...page.incidents]);
      setNext(page.next);
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <div className="page incidents">
      <div className="page-head">
        <h1>Incidents</h1>
        <span className="sub">failed and slow transactions, newest first, each with its root cause</span>
      </div>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          set({ q: qText.trim() });
        }}
      >
        <input
          className="grow"
          type="search"
          value={qText}
          onChange={(e) => setQText(e.target.value)}
          placeholder="filter: transaction id, trace id, text, service, process"
          aria-label="filter incidents"
        />
        <select value={service} onChange={(e) => set({ service: e.target.value })} aria-label="service">
          <option value="">all services</option>
          {services.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select
          value={custom ? 'custom' : from}
          onChange={(e) => (e.target.value === 'custom' ? set({ from: customFrom || '1h', to: '' }) : set({ from: e.target.value, to: '' }))}
          aria-label="time range"
        >
          {RANGES.map(([k, label]) => (
            <option key={k} value={k}>
              {label}
            </option>
          ))}
        </select>
        {custom && (
          <>
            <input value={customFrom} onChange={(e) => setCustomFrom(e.target.value)} placeholder="from: 2026-11-22 03:00" aria-label="from" />
            <input value={customTo} onChange={(e) => setCustomTo(e.target.value)} placeholder="to (empty: now)" aria-label="to" />
            <button type="button" onClick={() => set({ from: customFrom, to: customTo })}>
              Apply
            </button>
          </>
        )}
        <button type="submit">Search</button>
        <button type="button" onClick={res.reload} title="reload">
          ↻
        </button>
      </form>
      {res.error && <ErrorBox error={res.error} />}
      {!res.data && res.loading && <Loading what="incidents" />}
      {res.data && rows.length === 0 && (
        <Empty>
          No failed or slow transactions {q ? `matching “${q}” ` : ''}in this range. Widen the range, or check that agents are
          shipping (the <a href="#/live">live stream</a> shows their events).
        </Empty>
      )}
      {rows.length > 0 && (
        <table className="grid incident-table">
          <thead>
            <tr>
              <th>Time</th>
              <th>Status</th>
              <th>Service</th>
              <th className="num">Duration</th>
              <th>Transaction</th>
              <th>What happened</th>
              <th>Root cause</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const b = symptomBadge(r.text);
              return (
                <tr
                  key={String(r.id)}
                  className="clickable"
                  data-key={r.key}
                  onClick={(e) => {
                    if ((e.target as HTMLElement).closest('a')) return;
                    navigate(txnHref(r.key || `#${r.id}`, r.id));
                  }}
                >
                  <td className="nowrap">
                    <Time ns={r.time_ns} date />
                  </td>
                  <td>
                    <span className={`badge ${b.cls}`}>{b.label}</span>
                  </td>
                  <td className="nowrap">
                    <span className="svc">{r.service || r.comm || '—'}</span>
                    <span className="muted"> PID {r.pid}</span>
                  </td>
                  <td className="num nowrap">
                    <Dur ns={r.duration_ns} />
                  </td>
                  <td className="nowrap">
                    <a className="txn-link mono" href={txnHref(r.key || `#${r.id}`, r.id)}>
                      {r.key || `#${r.id}`}
                    </a>
                  </td>
                  <td className="text">{r.text}</td>
                  <td className="rc">
                    {r.mechanism && <span className={`mech m-${r.mechanism}`}>{r.mechanism}</span>}
                    {r.root_cause || <span className="muted">no kernel cause above the threshold</span>}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {next && (
        <div className="more">
          <button onClick={loadMore} disabled={loadingMore}>
            {loadingMore ? 'Loading…' : 'Older incidents'}
          </button>
        </div>
      )}
    </div>
  );
}
