// Timeline.tsx - kernel events as bars in lanes (per thread, service or CPU) on an exact
// nanosecond axis, drawn with ECharts (custom series on canvas).
//
// The visible window is exact BigInt ns (lib/window.ts); the chart's x values are offsets from
// the window's start, so doubles never hold epoch ns. Wheel zooms around the pointer, drag pans;
// every change asks the server for at most N bars per lane for the new window
// (GET /api/v1/timeline, server-side level of detail): aggregated buckets when zoomed out,
// single events with exact ns times when the window holds few enough ("exact"). Lanes of nodes
// whose clocks are skewed are shifted by the server; the lane says by how much.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, sqlStr, type Bar, type Timeline } from '../lib/api';
import { echarts } from '../lib/echarts';
import { useMarkOnce } from '../lib/hooks';
import { big, digitsForStep, fmtDateTime, fmtDur, fmtNsExact, fmtTime, nowNs, parseTime } from '../lib/ns';
import { href, navigate } from '../lib/route';
import { Empty, ErrorBox } from '../lib/ui';
import { type Win, around, pan, recenter, span, zoomAt } from '../lib/window';

import { EVENT_TYPES as TYPES, TYPE_COLORS } from '../lib/evtypes';

const LANE_H = 22;
const GRID_LEFT = 260;

interface FlatBar {
  lane: number;
  start: bigint;
  end: bigint;
  bar: Bar;
}

export function TimelineView({ params }: { params: URLSearchParams }) {
  const initialWin = (): Win => {
    const f = params.get('from');
    const t = params.get('to');
    const now = nowNs();
    const to = (t && parseTime(t)) || now;
    const from = (f && parseTime(f)) || to - 15n * 60n * 1_000_000_000n;
    return from < to ? { from, to } : { from: to - 1_000_000_000n, to };
  };
  const [win, setWin] = useState<Win>(initialWin);
  const [lane, setLane] = useState(params.get('lane') ?? 'thread');
  const [filters, setFilters] = useState(() => ({
    pid: params.get('pid') ?? '',
    tid: params.get('tid') ?? '',
    service: params.get('service') ?? '',
    comm: params.get('comm') ?? '',
    type: params.get('type') ?? '',
  }));
  const [draft, setDraft] = useState(filters);
  // From a transaction: its time range to mark, and the pids whose lanes go first.
  const mark = useMemo(() => {
    const m = /^(\d+)-(\d+)$/.exec(params.get('mark') ?? '');
    return m ? { from: BigInt(m[1]), to: BigInt(m[2]) } : null;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  const pinned = useMemo(
    // pid -> rank (the transaction's own process first)
    () => new Map((params.get('pin') ?? '').split(',').map(Number).filter((x) => Number.isInteger(x) && x > 0).map((pid, i) => [pid, i])),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [],
  );
  const [data, setData] = useState<Timeline | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(false);
  const [selected, setSelected] = useState<FlatBar | null>(null);
  const [fetchMs, setFetchMs] = useState<number | null>(null);
  const chartEl = useRef<HTMLDivElement>(null);
  const chart = useRef<echarts.ECharts | null>(null);
  const winRef = useRef(win);
  winRef.current = win;
  useMarkOnce('kp-timeline-view', !!data);

  // Keep the address bar a link to what is shown.
  useEffect(() => {
    navigate(
      href('/timeline', {
        from: win.from.toString(),
        to: win.to.toString(),
        lane,
        ...filters,
        mark: mark ? `${mark.from}-${mark.to}` : undefined,
        pin: pinned.size ? [...pinned.keys()].join(',') : undefined,
      }),
      { silent: true },
    );
  }, [win, lane, filters, mark, pinned]);

  // Fetch (debounced) for the window.
  useEffect(() => {
    const ac = new AbortController();
    const width = chartEl.current?.clientWidth ?? 1200;
    const max = Math.max(100, Math.min(2000, Math.round((width - GRID_LEFT) / 2)));
    const h = setTimeout(async () => {
      setLoading(true);
      const t0 = performance.now();
      try {
        const r = await api.timeline(
          { from: win.from, to: win.to, lane, max, pid: filters.pid, tid: filters.tid, service: filters.service, comm: filters.comm, type: filters.type },
          ac.signal,
        );
        if (pinned.size && r.lane === 'thread') {
          const pin = (l: Timeline['lanes'][number]) => {
            const b = l.bars.find((x) => x.pid !== undefined && pinned.has(x.pid));
            return b ? pinned.get(b.pid!)! : pinned.size;
          };
          r.lanes = r.lanes.map((l, i) => ({ l, i })).sort((a, b) => pin(a.l) - pin(b.l) || a.i - b.i).map((x) => x.l);
        }
        setData(r);
        setError(null);
        setFetchMs(performance.now() - t0);
      } catch (e) {
        if ((e as Error).name !== 'AbortError') setError(e as Error);
      } finally {
        if (!ac.signal.aborted) setLoading(false);
      }
    }, 120);
    return () => {
      clearTimeout(h);
      ac.abort();
    };
  }, [win, lane, filters]);

  const flat = useMemo(() => {
    const out: FlatBar[] = [];
    data?.lanes.forEach((l, i) =>
      l.bars.forEach((b) => {
        const s = big(b.start);
        let e = big(b.end);
        if (e < s) e = s;
        out.push({ lane: i, start: s, end: e, bar: b });
      }),
    );
    return out;
  }, [data]);
  const flatRef = useRef(flat);
  flatRef.current = flat;

  const laneLabels = useMemo(
    () =>
      (data?.lanes ?? []).map((l) => {
        const sk = big(l.skew_ns);
        // "node · node · tid 7": the service is unknown, say the process name once
        let label = l.label.replace(/^([^·]+) · \1 · /, '$1 · ');
        if (pinned.size && l.bars.some((b) => b.pid !== undefined && pinned.has(b.pid))) label = `▸ ${label}`;
        return sk !== 0n ? `${label}  [clock ${sk > 0n ? '−' : '+'}${fmtDur(sk > 0n ? sk : -sk)}]` : label;
      }),
    [data, pinned],
  );

  // Create the chart once; wire wheel zoom and drag pan.
  useEffect(() => {
    const el = chartEl.current!;
    const c = echarts.init(el, null, { renderer: 'canvas' });
    chart.current = c;
    const zr = c.getZr();
    const inGrid = (x: number, y: number) => c.containPixel({ gridIndex: 0 }, [x, y]);
    const nsPerPx = () => {
      const a = c.convertFromPixel({ gridIndex: 0 }, [GRID_LEFT, 0]) as number[];
      const b = c.convertFromPixel({ gridIndex: 0 }, [GRID_LEFT + 100, 0]) as number[];
      return (b[0] - a[0]) / 100;
    };
    zr.on('mousewheel', (e) => {
      if (!inGrid(e.offsetX, e.offsetY)) return;
      (e.event as unknown as WheelEvent).preventDefault?.();
      const v = (c.convertFromPixel({ gridIndex: 0 }, [e.offsetX, e.offsetY]) as number[])[0];
      const factor = (e.wheelDelta as number) > 0 ? 0.8 : 1.25;
      setWin((w) => zoomAt(w, v, factor));
    });
    let drag: { x: number; w: Win; k: number; moved: boolean } | null = null;
    zr.on('mousedown', (e) => {
      if (!inGrid(e.offsetX, e.offsetY)) return;
      drag = { x: e.offsetX, w: winRef.current, k: nsPerPx(), moved: false };
    });
    zr.on('mousemove', (e) => {
      if (!drag) return;
      const dx = e.offsetX - drag.x;
      if (Math.abs(dx) > 3) drag.moved = true;
      if (drag.moved) setWin(pan(drag.w, -dx * drag.k));
    });
    const end = () => {
      drag = null;
    };
    zr.on('mouseup', end);
    zr.on('globalout', end);
    c.on('click', (p) => {
      const idx = (p.data as number[] | undefined)?.[4];
      if (typeof idx === 'number') setSelected(flatRef.current[idx] ?? null);
    });
    c.on('dblclick', (p) => {
      const idx = (p.data as number[] | undefined)?.[4];
      const fb = typeof idx === 'number' ? flatRef.current[idx] : undefined;
      if (fb) setWin(around(fb.start, fb.end));
    });
    const ro = new ResizeObserver(() => c.resize());
    ro.observe(el);
    return () => {
      ro.disconnect();
      c.dispose();
      chart.current = null;
    };
  }, []);

  // Draw: bars relative to the current window (instant feedback while the next answer loads).
  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const base = win.from;
    const sp = Number(span(win));
    const digits = digitsForStep(sp / 6);
    const items: number[][] = [];
    flat.forEach((f, i) => {
      const s = Number(f.start - base);
      const e = Number(f.end - base);
      if (e < 0 || s > sp) return;
      items.push([f.lane, s, e, TYPES.indexOf(f.bar.type), i]);
    });
    const height = Math.max(120, laneLabels.length * LANE_H + 50);
    chartEl.current!.style.height = `${height}px`;
    c.resize();
    c.setOption(
      {
        animation: false,
        backgroundColor: 'transparent',
        grid: { left: GRID_LEFT, right: 24, top: 34, bottom: 12 },
        tooltip: {
          trigger: 'item',
          confine: true,
          backgroundColor: '#161b22',
          borderColor: '#30363d',
          textStyle: { color: '#e6edf3', fontSize: 12 },
          formatter: (p: unknown) => {
            const idx = ((p as { data?: number[] }).data ?? [])[4];
            const f = typeof idx === 'number' ? flatRef.current[idx] : undefined;
            return f ? tooltipHtml(f, laneLabels[f.lane] ?? '') : '';
          },
        },
        xAxis: {
          type: 'value',
          position: 'top',
          min: 0,
          max: sp,
          splitNumber: 6,
          axisLine: { lineStyle: { color: '#30363d' } },
          splitLine: { lineStyle: { color: '#21262d' } },
          axisLabel: {
            color: '#8b949e',
            fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
            formatter: (v: number) => fmtTime(base + BigInt(Math.round(v)), { digits }),
            hideOverlap: true,
          },
        },
        yAxis: {
          type: 'category',
          inverse: true,
          data: laneLabels,
          axisTick: { show: false },
          axisLine: { lineStyle: { color: '#30363d' } },
          splitLine: { show: true, lineStyle: { color: '#1b2028' } },
          axisLabel: { color: '#c9d1d9', width: GRID_LEFT - 16, overflow: 'truncate', fontSize: 11 },
        },
        series: [
          {
            type: 'custom',
            encode: { x: [1, 2], y: 0 },
            renderItem: (params: { coordSys: { x: number; y: number; width: number; height: number } }, a: {
              value: (i: number) => number;
              coord: (v: number[]) => number[];
              size: (v: number[]) => number[];
            }) => {
              const laneIdx = a.value(0);
              const p0 = a.coord([a.value(1), laneIdx]);
              const p1 = a.coord([a.value(2), laneIdx]);
              const h = a.size([0, 1])[1] * 0.62;
              const cs = params.coordSys;
              let x0 = Math.max(p0[0], cs.x);
              const x1 = Math.min(p1[0], cs.x + cs.width);
              let w = x1 - x0;
              if (w < 2) {
                x0 = Math.min(x0, cs.x + cs.width - 2);
                w = 2;
              }
              const t = TYPES[a.value(3)] ?? 'conn';
              return {
                type: 'rect',
                shape: { x: x0, y: p0[1] - h / 2, width: w, height: h },
                style: { fill: TYPE_COLORS[t] ?? '#8b949e', opacity: 0.9 },
              };
            },
            data: items,
            progressive: 0,
            markArea:
              mark && mark.to >= win.from && mark.from <= win.to
              ? {
                  silent: true,
                  itemStyle: { color: 'rgba(255,122,69,0.08)', borderColor: 'rgba(255,122,69,0.5)', borderWidth: 1 },
                  label: { show: true, position: 'insideTopLeft', color: '#ff9f70', fontSize: 11, formatter: 'transaction' },
                  data: [[{ xAxis: Math.max(-1, Number(mark.from - base)) }, { xAxis: Math.min(sp + 1, Number(mark.to - base)) }]],
                }
              : undefined,
          },
        ],
      },
      { notMerge: true },
    );
  }, [flat, win, laneLabels, mark]);

  const setWinTo = useCallback((w: Win) => setWin(w), []);
  const fitData = async () => {
    const where = [`ts > now() - 30d`];
    if (filters.pid) where.push(`pid = ${Number(filters.pid)}`);
    if (filters.tid) where.push(`tid = ${Number(filters.tid)}`);
    if (filters.service) where.push(`service = ${sqlStr(filters.service)}`);
    if (filters.comm) where.push(`comm = ${sqlStr(filters.comm)}`);
    try {
      const r = await api.query(`SELECT min(ts) AS a, max(ts + dur) AS b FROM events WHERE ${where.join(' AND ')}`);
      const row = r.rows?.[0];
      if (row && row[0] !== null && row[1] !== null) setWin(around(big(row[0]), big(row[1]), 0.02, 1_000_000n));
    } catch (e) {
      setError(e as Error);
    }
  };

  // Bars in view, for reading exact values (and for keyboard and test access to single events).
  const inView = useMemo(() => {
    const out = flat.filter((f) => f.end >= win.from && f.start <= win.to);
    out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    return out;
  }, [flat, win]);

  const sp = span(win);
  return (
    <div className="page timeline">
      <div className="page-head">
        <h1>Timeline</h1>
        <span className="sub">wheel: zoom at the pointer · drag: pan · double-click a bar: zoom to it</span>
      </div>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault();
          setFilters(draft);
        }}
      >
        <label>
          lanes
          <select value={lane} onChange={(e) => setLane(e.target.value)} aria-label="lanes">
            <option value="thread">per thread</option>
            <option value="service">per service</option>
            <option value="cpu">per CPU</option>
          </select>
        </label>
        <input value={draft.service} onChange={(e) => setDraft({ ...draft, service: e.target.value })} placeholder="service" aria-label="service" />
        <input value={draft.comm} onChange={(e) => setDraft({ ...draft, comm: e.target.value })} placeholder="process name" aria-label="process name" />
        <input className="short" value={draft.pid} onChange={(e) => setDraft({ ...draft, pid: e.target.value })} placeholder="pid" aria-label="pid" />
        <input className="short" value={draft.tid} onChange={(e) => setDraft({ ...draft, tid: e.target.value })} placeholder="tid" aria-label="tid" />
        <input value={draft.type} onChange={(e) => setDraft({ ...draft, type: e.target.value })} placeholder="types: write,fsync" aria-label="event types" />
        <button type="submit">Apply</button>
      </form>
      <div className="tl-bar">
        <div className="seg">
          <button onClick={() => setWinTo(zoomAt(win, Number(sp) / 2, 1.5))} title="zoom out">−</button>
          <button onClick={() => setWinTo(zoomAt(win, Number(sp) / 2, 1 / 1.5))} title="zoom in" data-testid="tl-zoom-in">+</button>
        </div>
        <div className="seg">
          {(
            [
              ['1 h', 3_600_000_000_000n],
              ['1 min', 60_000_000_000n],
              ['1 s', 1_000_000_000n],
              ['10 ms', 10_000_000n],
              ['100 µs', 100_000n],
              ['1 µs', 1_000n],
            ] as [string, bigint][]
          ).map(([l, w]) => (
            <button key={l} onClick={() => setWinTo(recenter(win, w))}>
              {l}
            </button>
          ))}
        </div>
        <button onClick={fitData} title="fit the window to the recorded events">Fit to data</button>
        <span className="tl-range mono" data-testid="tl-range" data-span={sp.toString()}>
          {fmtDateTime(win.from)} → {fmtTime(win.to)} <span className="muted">({fmtDur(sp)})</span>
        </span>
        <span className="muted small" data-testid="tl-status">
          {loading ? 'loading… ' : ''}
          {data &&
            `${data.events} events · ${data.exact ? 'exact: one bar per event' : `buckets of ${fmtDur(big(data.resolution_ns))}`} · ≤${data.max_bars} bars/lane${data.truncated ? ' (some lanes full)' : ''}${fetchMs !== null ? ` · ${fetchMs.toFixed(0)} ms` : ''}`}
        </span>
      </div>
      <div className="legend-row">
        {TYPES.map((t) => (
          <span key={t} className="legend-item">
            <span className="swatch" style={{ background: TYPE_COLORS[t] }} />
            {t}
          </span>
        ))}
      </div>
      {error && <ErrorBox error={error} />}
      <div className="tl-chart-wrap">
        <div ref={chartEl} className="tl-chart" data-testid="tl-chart" />
        {data && data.lanes.length === 0 && (
          <div className="tl-empty">
            <Empty>
              No events in this window{Object.values(filters).some(Boolean) ? ' with these filters' : ''}. Zoom out, or <button className="linklike" onClick={fitData}>fit to the recorded data</button>.
            </Empty>
          </div>
        )}
      </div>
      <div className="tl-bottom">
        <div className="tl-list">
          <h3>
            {data?.exact ? 'Events' : 'Bars'} in view <span className="muted small">({inView.length}{inView.length > 300 ? ', first 300' : ''})</span>
          </h3>
          <table className="grid compact" data-testid="tl-bars">
            <thead>
              <tr>
                <th>start</th>
                <th>lane</th>
                <th>type</th>
                <th className="num">duration</th>
                <th className="num">events</th>
              </tr>
            </thead>
            <tbody>
              {inView.slice(0, 300).map((f) => (
                <tr
                  key={`${f.lane}:${f.start}:${f.bar.type}:${f.end}`}
                  className={`clickable ${selected === f ? 'selected' : ''}`}
                  data-dur={(f.end - f.start).toString()}
                  data-type={f.bar.type}
                  data-count={f.bar.count}
                  onClick={() => setSelected(f)}
                  onDoubleClick={() => setWin(around(f.start, f.end))}
                >
                  <td className="mono nowrap" data-ns={f.start.toString()}>
                    {fmtTime(f.start, { digits: 9 })}
                  </td>
                  <td className="ellipsis">{laneLabels[f.lane]}</td>
                  <td>
                    <span className="swatch" style={{ background: TYPE_COLORS[f.bar.type] ?? '#8b949e' }} /> {f.bar.type}
                  </td>
                  <td className="num">{fmtDur(f.end - f.start)}</td>
                  <td className="num">{f.bar.count}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <div className="tl-detail" data-testid="tl-detail">
          {selected ? (
            <BarDetail f={selected} label={laneLabels[selected.lane] ?? ''} exact={!!data?.exact && selected.bar.count === 1} onZoom={() => setWin(around(selected.start, selected.end))} />
          ) : (
            <div className="muted small">Click a bar (or a row) to read its exact times.</div>
          )}
        </div>
      </div>
    </div>
  );
}

function tooltipHtml(f: FlatBar, label: string): string {
  const b = f.bar;
  const esc = (s: string) => s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
  const rows = [
    `<b>${esc(b.type)}</b>${b.count > 1 ? ` × ${b.count}` : ''} · ${esc(fmtDur(f.end - f.start))}`,
    `<span style="font-family:monospace">${fmtTime(f.start)}</span>`,
    esc(label),
  ];
  if (b.count === 1 && b.ret !== undefined) rows.push(`ret ${b.ret} · cpu ${b.cpu}`);
  return rows.join('<br/>');
}

function BarDetail({ f, label, exact, onZoom }: { f: FlatBar; label: string; exact: boolean; onZoom: () => void }) {
  const b = f.bar;
  const q =
    b.pid !== undefined
      ? `SELECT * FROM events WHERE pid = ${b.pid}${b.tid ? ` AND tid = ${b.tid}` : ''} AND type = ${sqlStr(b.type)} AND ts BETWEEN ${f.start} AND ${f.end} ORDER BY ts LIMIT 200`
      : null;
  return (
    <div>
      <h3>
        <span className="swatch" style={{ background: TYPE_COLORS[b.type] ?? '#8b949e' }} /> {b.type}
        {b.count > 1 ? ` × ${b.count} (one bucket)` : ''}
      </h3>
      <table className="fields">
        <tbody>
          <tr>
            <th>lane</th>
            <td>{label}</td>
          </tr>
          <tr>
            <th>{exact ? 'start' : 'first start'}</th>
            <td className="mono" data-testid="bar-start" data-ns={f.start.toString()}>
              {fmtDateTime(f.start)}
            </td>
          </tr>
          <tr>
            <th>{exact ? 'end' : 'last end'}</th>
            <td className="mono" data-ns={f.end.toString()}>
              {fmtDateTime(f.end)}
            </td>
          </tr>
          <tr>
            <th>duration</th>
            <td>
              {fmtDur(f.end - f.start)} <span className="muted">({fmtNsExact(f.end - f.start)})</span>
            </td>
          </tr>
          {b.count > 1 && (
            <tr>
              <th>busy</th>
              <td>{fmtDur(big(b.busy_ns))}</td>
            </tr>
          )}
          {b.ret !== undefined && b.count === 1 && (
            <tr>
              <th>ret · cpu</th>
              <td>
                {b.ret} · {b.cpu}
              </td>
            </tr>
          )}
          {b.pid !== undefined && (
            <tr>
              <th>pid / tid</th>
              <td>
                {b.pid} / {b.tid}
              </td>
            </tr>
          )}
          <tr>
            <th>epoch ns</th>
            <td className="mono small">{f.start.toString()}</td>
          </tr>
        </tbody>
      </table>
      <div className="row">
        <button onClick={onZoom} data-testid="zoom-to-bar">
          Zoom to this
        </button>
        {q && (
          <a className="btn" href={href('/query', { q })}>
            Events as a table
          </a>
        )}
      </div>
    </div>
  );
}
