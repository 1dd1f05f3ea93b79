// Live.tsx - the live kernel event stream (WebSocket /api/v1/stream): one line per event, newest
// on top, in the look of the product's landing page; filters (types, pid, process, service,
// node) are sent as a subscribe message, pause asks the server to stop sending (resume continues
// from live), and a rate indicator shows events per second as received here and as counted by
// the server, with any events the server had to drop for this client.
import { memo, useEffect, useMemo, useRef, useState } from 'react';
import { streamUrl } from '../lib/api';
import { parseJson } from '../lib/json';
import { type Filter, filterOf, matches } from '../lib/livefilter';
import { big, fmtDur, fmtTime } from '../lib/ns';
import { href, navigate } from '../lib/route';
import { TYPE_COLORS } from '../lib/evtypes';

const TYPES = Object.keys(TYPE_COLORS);
const KEEP = 250; // lines on screen
const FLUSH_MS = 200; // screen updates: 5 a second reads as live and costs little at 10k events/s

type Ev = Record<string, unknown> & { type?: string; ts?: bigint | number };

interface Status {
  state: 'connecting' | 'open' | 'closed';
  paused: boolean;
  rateHere: number;
  rateServer: number | null;
  sent: number;
  dropped: number;
  error: string | null;
  filter: string;
}

export function Live({ params }: { params: URLSearchParams }) {
  const [types, setTypes] = useState<string[]>(() => (params.get('type') ?? '').split(',').filter(Boolean));
  const [f, setF] = useState(() => ({ pid: params.get('pid') ?? '', comm: params.get('comm') ?? '', service: params.get('service') ?? '', node: params.get('node') ?? '' }));
  const [draft, setDraft] = useState(f);
  const [lines, setLines] = useState<{ id: number; ev: Ev }[]>([]);
  const [st, setSt] = useState<Status>({ state: 'connecting', paused: false, rateHere: 0, rateServer: null, sent: 0, dropped: 0, error: null, filter: '' });
  const ws = useRef<WebSocket | null>(null);
  const pending = useRef<Ev[]>([]);
  const counter = useRef({ n: 0, id: 0, total: 0 });
  const [reconnect, setReconnect] = useState(0);
  const pausedRef = useRef(false);
  // The filter also applies here: after a change, events the server sent under the old one
  // are still in flight (and under a flood its answer to the new subscribe can lag).
  const filterRef = useRef<Filter>({ types: new Set(), pid: [], comm: [], service: [], node: [] });

  const subscribeMsg = useMemo(() => {
    const m: Record<string, unknown> = { op: 'subscribe' };
    if (types.length) m.type = types;
    const list = (s: string) => s.split(',').map((x) => x.trim()).filter(Boolean);
    if (f.pid) m.pid = list(f.pid).map(Number).filter((x) => Number.isInteger(x) && x >= 0);
    if (f.comm) m.comm = list(f.comm);
    if (f.service) m.service = list(f.service);
    if (f.node) m.node = list(f.node);
    return JSON.stringify(m);
  }, [types, f]);
  const subParamsRef = useRef<Record<string, string>>({});
  subParamsRef.current = { type: types.join(','), pid: f.pid, comm: f.comm, service: f.service, node: f.node };

  // Connection (reconnects with backoff when the server goes away).
  useEffect(() => {
    let closed = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let backoff = 500;
    const open = () => {
      setSt((s) => ({ ...s, state: 'connecting', error: null }));
      // the filter in the URL applies from the first event (no flood before a subscribe)
      const sock = new WebSocket(streamUrl(subParamsRef.current));
      ws.current = sock;
      sock.onopen = () => {
        backoff = 500;
        setSt((s) => ({ ...s, state: 'open' }));
        if (pausedRef.current) sock.send('{"op":"pause"}');
      };
      sock.onmessage = (m) => {
        let ev: Ev;
        try {
          ev = parseJson(String(m.data)) as Ev;
        } catch {
          return;
        }
        if (typeof ev.msg === 'string') {
          control(ev);
          return;
        }
        if (!matches(ev, filterRef.current)) return;
        counter.current.n++;
        counter.current.total++;
        if (!pausedRef.current) {
          pending.current.push(ev);
          if (pending.current.length > 4 * KEEP) pending.current.splice(0, pending.current.length - KEEP);
        }
      };
      sock.onclose = (e) => {
        if (ws.current === sock) ws.current = null;
        if (closed) return;
        setSt((s) => ({ ...s, state: 'closed', error: e.reason || (e.code === 1006 ? 'connection lost' : `closed (${e.code})`) }));
        retry = setTimeout(open, backoff);
        backoff = Math.min(10000, backoff * 2);
      };
    };
    const control = (m: Ev) => {
      switch (m.msg) {
        case 'subscribed':
          setSt((s) => ({ ...s, filter: JSON.stringify(m.filter ?? {}) }));
          break;
        case 'paused':
          setSt((s) => ({ ...s, paused: true }));
          break;
        case 'resumed':
          setSt((s) => ({ ...s, paused: false }));
          break;
        case 'rate':
          setSt((s) => ({ ...s, rateServer: Number(m.events_per_sec ?? 0), sent: Number(m.sent ?? 0), dropped: Number(m.dropped ?? 0) }));
          break;
        case 'dropped':
          setSt((s) => ({ ...s, dropped: Number(m.total ?? s.dropped) }));
          break;
        case 'error':
          setSt((s) => ({ ...s, error: String(m.error ?? 'error') }));
          break;
      }
    };
    open();
    return () => {
      closed = true;
      clearTimeout(retry);
      ws.current?.close();
      ws.current = null;
    };
  }, [reconnect]);

  // Re-subscribe when filters change.
  useEffect(() => {
    filterRef.current = filterOf(types, f);
    pending.current = pending.current.filter((ev) => matches(ev, filterRef.current));
    if (ws.current?.readyState === WebSocket.OPEN) ws.current.send(subscribeMsg);
    navigate(href('/live', { type: types.join(','), ...f }), { silent: true });
  }, [subscribeMsg, types, f]);

  // Flush a few times a second (in an animation frame, so a hidden tab does no work); rate once
  // a second.
  useEffect(() => {
    let raf = 0;
    const flush = () => {
      raf = requestAnimationFrame(() => {
        if (pending.current.length) {
          const batch = pending.current.splice(0);
          setLines((old) => {
            const add = batch.slice(-KEEP).reverse().map((ev) => ({ id: ++counter.current.id, ev }));
            return [...add, ...old].slice(0, KEEP);
          });
        }
      });
    };
    const flusher = setInterval(flush, FLUSH_MS);
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      const r = (counter.current.n * 1000) / (now - last);
      counter.current.n = 0;
      last = now;
      setSt((s) => ({ ...s, rateHere: r }));
      if (ws.current?.readyState === WebSocket.OPEN) ws.current.send('{"op":"rate"}');
    }, 1000);
    return () => {
      cancelAnimationFrame(raf);
      clearInterval(flusher);
      clearInterval(tick);
    };
  }, []);

  const togglePause = () => {
    const p = !pausedRef.current;
    pausedRef.current = p;
    setSt((s) => ({ ...s, paused: p }));
    ws.current?.send(p ? '{"op":"pause"}' : '{"op":"resume"}');
  };
  const toggleType = (t: string) => setTypes((ts) => (ts.includes(t) ? ts.filter((x) => x !== t) : [...ts, t]));

  return (
    <div className="page live">
      <div className="page-head">
        <h1>Live</h1>
        <span className="sub">kernel events as the agents ship them</span>
        <span className="spacer" />
        <span className={`conn-dot ${st.state}`} title={st.state} />
        <span className="rate" data-testid="live-rate">
          <strong>{Math.round(st.rateHere)}</strong> ev/s
          {st.rateServer !== null && <span className="muted"> · server {st.rateServer.toFixed(0)}/s</span>}
          {st.dropped > 0 && <span className="warn-text"> · {st.dropped} dropped</span>}
        </span>
        <button className={st.paused ? 'primary' : ''} onClick={togglePause} data-testid="live-pause">
          {st.paused ? '▶ Resume' : '❚❚ Pause'}
        </button>
        <button onClick={() => setLines([])}>Clear</button>
      </div>
      <div className="filters">
        <div className="chips" role="group" aria-label="event types">
          {TYPES.map((t) => (
            <button key={t} className={`chip ${types.includes(t) ? 'on' : ''}`} onClick={() => toggleType(t)} style={{ ['--c' as string]: TYPE_COLORS[t] }}>
              {t}
            </button>
          ))}
        </div>
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            setF(draft);
          }}
        >
          <input className="short" value={draft.pid} onChange={(e) => setDraft({ ...draft, pid: e.target.value })} placeholder="pid" aria-label="pid" />
          <input value={draft.comm} onChange={(e) => setDraft({ ...draft, comm: e.target.value })} placeholder="process name" aria-label="process name" />
          <input value={draft.service} onChange={(e) => setDraft({ ...draft, service: e.target.value })} placeholder="service" aria-label="service" />
          <input value={draft.node} onChange={(e) => setDraft({ ...draft, node: e.target.value })} placeholder="node" aria-label="node" />
          <button type="submit">Filter</button>
        </form>
      </div>
      {st.error && st.state !== 'open' && (
        <div className="error-box">
          Stream: {st.error} — reconnecting… <button className="linklike" onClick={() => setReconnect((x) => x + 1)}>now</button>
        </div>
      )}
      {st.error && st.state === 'open' && <div className="error-box">Server: {st.error}</div>}
      <div className={`stream ${st.paused ? 'paused' : ''}`} data-testid="live-stream">
        <div className="stream-head">
          <span className="dot-live" /> live · kernel event stream {st.paused && <strong> · paused</strong>}
          <span className="spacer" />
          <span className="muted small">{counter.current.total} received</span>
        </div>
        {lines.length === 0 && <div className="stream-empty muted">Waiting for events{types.length ? ` of type ${types.join(', ')}` : ''}…</div>}
        {lines.map(({ id, ev }) => (
          <Line key={id} ev={ev} />
        ))}
      </div>
    </div>
  );
}

const Line = memo(function Line({ ev }: { ev: Ev }) {
  const t = String(ev.type ?? '?');
  const ts = big(ev.ts);
  const dur = Number(ev.dur ?? 0);
  return (
    <div className="ev-line" data-type={t}>
      <span className="ev-ts" data-ns={ts.toString()}>
        {fmtTime(ts, { digits: 6 })}
      </span>
      <span className="ev-type" style={{ color: TYPE_COLORS[t] ?? '#8b949e' }}>
        {t}
      </span>
      <span className="ev-pid">PID {String(ev.pid ?? '?')}</span>
      <span className="ev-who">{String(ev.service || ev.comm || '')}</span>
      <span className="ev-what">{describe(ev)}</span>
      {dur > 0 && <span className="ev-dur">{fmtDur(dur)}</span>}
      {typeof ev.ret === 'number' && ev.ret < 0 && <span className="ev-err">ERR {ev.ret}</span>}
    </div>
  );
});

function kb(n: unknown) {
  const v = Number(n ?? 0);
  return v >= 1024 ? `${(v / 1024).toFixed(1)}kb` : `${v}b`;
}

function describe(ev: Ev): string {
  switch (ev.type) {
    case 'read':
    case 'write':
      return `${ev.syscall ?? ''} fd=${ev.fd} · ${kb(ev.bytes)}`;
    case 'fsync':
      return `${ev.syscall ?? ''} fd=${ev.fd}`;
    case 'tcp_send':
      return `→ :${ev.dport} · ${kb(ev.bytes)}`;
    case 'tcp_recv':
      return `← :${ev.dport} · ${kb(ev.bytes)}`;
    case 'conn':
      return `:${ev.sport} → :${ev.dport} ${ev.old_state} → ${ev.new_state}`;
    case 'retransmit':
      return `:${ev.sport} → :${ev.dport} seq ${ev.seq} ${ev.tcp_state ?? ''}`;
    case 'offcpu':
      return `${ev.reason}${ev.holder_tid ? ` · CPU held by TID ${ev.holder_tid}` : ''}${ev.runq ? ` · runq ${fmtDur(Number(ev.runq))}` : ''}`;
    case 'reclaim':
      return `${ev.kind} reclaim · ${ev.pages} pages`;
    case 'faults':
      return `${ev.count} faults · addr=0x${BigInt(String(ev.addr ?? 0)).toString(16)}`;
    case 'proc':
      return `${ev.proc_event}${ev.child ? ` child ${ev.child}` : ''}${ev.exit_code !== undefined ? ` code ${ev.exit_code}` : ''}`;
    default:
      return '';
  }
}
