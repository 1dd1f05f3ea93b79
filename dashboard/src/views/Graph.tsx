// Graph.tsx - the causal graph as a layered DAG: the symptom on top, each cause one row below
// what it explains, edges (cause -> effect) labelled with the latency they explain. Node fill
// shows latency impact (weight / the symptom's latency); the root cause and the root-cause chain
// are marked. Pan and zoom with d3-zoom; below 45% zoom the text is hidden (level of detail).
//
// Two renderers share the layout (lib/layout.ts), the colours and the controls:
//   - SVG (D3) up to SVG_MAX nodes: crisp text, every node an element (inspectable, testable);
//   - canvas above it: one redraw per animation frame with viewport culling and batched paths,
//     so 2,000+ nodes pan and zoom smoothly even without a GPU (an SVG of ~12,000 elements is
//     repainted whole on every transform and drops to about one frame a second there).
// Both report the time from data to the first painted frame (data-render-ms; the e2e test
// reads it).
import * as d3 from 'd3';
import { useEffect, useMemo, useRef, useState } from 'react';
import type { Graph, GraphNode } from '../lib/api';
import { DEFAULT_LAYOUT, type LayoutOut, autoWrap, layeredLayout } from '../lib/layout';
import { big, fmtDur, num } from '../lib/ns';
import { KIND_LABEL, edgeLabel, nodeTitle, nodeWho } from '../lib/nodes';

export interface GraphViewProps {
  graph: Graph;
  chainIds: Set<string>;
  rootCauseId: string | null;
  selected: string | null;
  onSelect: (n: GraphNode | null) => void;
  onRendered?: (ms: number) => void;
}

const W = DEFAULT_LAYOUT.nodeWidth;
const H = DEFAULT_LAYOUT.nodeHeight;
const LOD = 0.45; // below this zoom, no text
const SVG_MAX = 300;

const impactColor = d3.scaleLinear<string>().domain([0, 0.15, 0.5, 1]).range(['#1f2a3a', '#2f4a6b', '#a3661a', '#d93f3f']).clamp(true);
const KIND_COLOR: Record<string, string> = {
  span: '#4f8cff',
  request: '#58a6ff',
  syscall: '#d29922',
  offcpu: '#f85149',
  reclaim: '#ff7b00',
  faults: '#e3b341',
  tcp: '#a371f7',
  retransmit: '#f778ba',
  process: '#ff4d4f',
  symptom: '#f85149',
};

function esc(s: string) {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
function clip(s: string, n: number) {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

interface Prepared {
  nodes: GraphNode[];
  byId: Map<string, GraphNode>;
  edges: Graph['edges'];
  lay: LayoutOut;
  ref: number;
  layoutMs: number;
}

interface Opts {
  chainIds: Set<string>;
  rootCauseId: string | null;
  onSelect: (n: GraphNode | null) => void;
  onRendered: (ms: number) => void;
}

interface Controller {
  zoomBy(k: number): void;
  fit(): void;
  focus(id: string): void;
  select(id: string | null): void;
  destroy(): void;
}

export function GraphView({ graph, chainIds, rootCauseId, selected, onSelect, onRendered }: GraphViewProps) {
  const hostRef = useRef<HTMLDivElement>(null);
  const ctrl = useRef<Controller | null>(null);
  const [renderMs, setRenderMs] = useState<number | null>(null);
  const cb = useRef({ onSelect, onRendered });
  cb.current = { onSelect, onRendered };

  const prepared = useMemo<Prepared>(() => {
    const t0 = performance.now();
    const nodes = graph.nodes.filter((n) => !n.missing);
    const byId = new Map(nodes.map((n) => [String(n.id), n]));
    const edges = graph.edges.filter((e) => byId.has(String(e.src)) && byId.has(String(e.dst)));
    const lay = layeredLayout(
      nodes.map((n) => ({ id: String(n.id), depth: n.depth })),
      edges.map((e) => ({ src: String(e.src), dst: String(e.dst) })),
      { ...DEFAULT_LAYOUT, maxPerRow: autoWrap(nodes.length) },
    );
    const root = byId.get(String(graph.root)) ?? nodes[0];
    let ref = num(root?.weight_ns);
    if (!ref) for (const n of nodes) ref = Math.max(ref, num(n.weight_ns));
    return { nodes, byId, edges, lay, ref: Math.max(1, ref), layoutMs: performance.now() - t0 };
  }, [graph]);
  const mode = prepared.nodes.length > SVG_MAX ? 'canvas' : 'svg';

  useEffect(() => {
    const opts: Opts = {
      chainIds,
      rootCauseId,
      onSelect: (n) => cb.current.onSelect(n),
      onRendered: (ms) => {
        setRenderMs(ms);
        cb.current.onRendered?.(ms);
      },
    };
    const c = mode === 'svg' ? mountSvg(hostRef.current!, prepared, opts) : mountCanvas(hostRef.current!, prepared, opts);
    ctrl.current = c;
    return () => {
      c.destroy();
      ctrl.current = null;
    };
    // the root-cause answer may arrive after the graph: marking it rebuilds the drawing
  }, [prepared, mode, chainIds, rootCauseId]);

  useEffect(() => ctrl.current?.select(selected), [selected, prepared]);

  return (
    <div className="graph-wrap">
      <div className="graph-tools">
        <button onClick={() => ctrl.current?.zoomBy(1.4)} title="zoom in">+</button>
        <button onClick={() => ctrl.current?.zoomBy(1 / 1.4)} title="zoom out">−</button>
        <button onClick={() => ctrl.current?.fit()} title="fit the graph">Fit</button>
        {rootCauseId && (
          <button onClick={() => ctrl.current?.focus(rootCauseId)} data-testid="focus-root-cause">
            Go to root cause
          </button>
        )}
        <span className="graph-stats">
          {prepared.nodes.length} nodes · {prepared.edges.length} edges{graph.truncated ? ' · truncated (raise max)' : ''}
          {renderMs !== null && <span className="muted"> · drawn in {renderMs.toFixed(0)} ms ({mode})</span>}
        </span>
        <span className="legend">
          impact <span className="swatch" style={{ background: impactColor(0.05) }} />
          <span className="swatch" style={{ background: impactColor(0.5) }} />
          <span className="swatch" style={{ background: impactColor(1) }} />
        </span>
      </div>
      <div ref={hostRef} className="graph-host" data-mode={mode} />
    </div>
  );
}

/* ------------------------------------------------------------------ shared geometry */

interface EdgeGeom {
  sx: number;
  sy: number;
  dx: number;
  dy: number;
  c1y: number;
  c2y: number;
  mx: number;
  my: number;
  hot: boolean;
  w: number; // stroke width
  label: string;
}

function edgeGeoms(P: Prepared, chainIds: Set<string>): EdgeGeom[] {
  return P.edges.map((e) => {
    const s = P.lay.nodes.get(String(e.src))!;
    const d = P.lay.nodes.get(String(e.dst))!;
    const hot = chainIds.has(String(e.src)) && chainIds.has(String(e.dst));
    const w = 1 + 3 * Math.min(1, num(e.weight_ns) / P.ref);
    const label = edgeLabel(e.kind, e.weight_ns);
    if (s.y === d.y) {
      // same row: an arc above it
      const y = s.y - H / 2;
      return { sx: s.x, sy: y, dx: d.x, dy: y, c1y: y - 40, c2y: y - 40, mx: (s.x + d.x) / 2, my: y - 30, hot, w, label };
    }
    // the cause is normally below its effect: leave the cause's top, enter the effect's bottom
    const down = s.y > d.y;
    const sy = down ? s.y - H / 2 : s.y + H / 2;
    const dy = down ? d.y + H / 2 : d.y - H / 2;
    const my = (sy + dy) / 2;
    return { sx: s.x, sy, dx: d.x, dy, c1y: my, c2y: my, mx: (s.x + d.x) / 2, my, hot, w, label };
  });
}

function fitTransform(lay: LayoutOut, w: number, h: number): d3.ZoomTransform {
  const pad = 40;
  const gw = lay.maxX - lay.minX + 2 * pad;
  const gh = lay.height + 2 * pad;
  const k = Math.max(0.02, Math.min(1.1, w / gw, h / gh));
  return d3.zoomIdentity.translate((w - (lay.maxX + lay.minX) * k) / 2, Math.max(pad * k, (h - lay.height * k) / 2)).scale(k);
}

function measure(t0: number, P: Prepared, el: Element, done: (ms: number) => void) {
  // to the frame after the first one with the graph: that one has been painted
  requestAnimationFrame(() =>
    requestAnimationFrame(() => {
      const ms = performance.now() - t0 + P.layoutMs;
      el.setAttribute('data-render-ms', ms.toFixed(1));
      done(ms);
    }),
  );
}

/* ------------------------------------------------------------------ SVG */

function mountSvg(host: HTMLElement, P: Prepared, o: Opts): Controller {
  const t0 = performance.now();
  const svg = d3.select(host).append('svg').attr('class', 'graph').attr('role', 'img').attr('aria-label', 'causal graph');
  const el = svg.node()!;
  // Size first, while the SVG is empty (reading it later would lay out every label).
  const size = { w: el.clientWidth || 800, h: el.clientHeight || 500 };
  svg.classed('lod-off', true);
  const defs = svg.append('defs');
  for (const [id, color] of [
    ['arrow', '#5b6b80'],
    ['arrow-hot', '#ff7a45'],
  ])
    defs
      .append('marker')
      .attr('id', id)
      .attr('viewBox', '0 0 10 10')
      .attr('refX', 9)
      .attr('refY', 5)
      .attr('markerWidth', 7)
      .attr('markerHeight', 7)
      .attr('orient', 'auto-start-reverse')
      .append('path')
      .attr('d', 'M0,0L10,5L0,10z')
      .attr('fill', color);
  const vp = svg.append('g').attr('class', 'viewport');
  // Markup as strings, parsed once: much faster than element-by-element creation.
  const eg = edgeGeoms(P, o.chainIds);
  vp.append('g')
    .attr('class', 'edges')
    .html(
      eg
        .map(
          (g) =>
            `<path class="edge${g.hot ? ' hot' : ''}" d="M${g.sx},${g.sy}C${g.sx},${g.c1y} ${g.dx},${g.c2y} ${g.dx},${g.dy}" stroke-width="${g.w.toFixed(1)}" marker-end="url(#${g.hot ? 'arrow-hot' : 'arrow'})"/>`,
        )
        .join(''),
    );
  vp.append('g')
    .attr('class', 'edge-labels')
    .html(eg.map((g) => `<text class="edge-label${g.hot ? ' hot' : ''}" x="${(g.mx + 6).toFixed(1)}" y="${(g.my + 4).toFixed(1)}">${esc(g.label)}</text>`).join(''));
  const gNodes = vp.append('g').attr('class', 'nodes');
  gNodes.html(
    P.nodes
      .map((n) => {
        const id = String(n.id);
        const p = P.lay.nodes.get(id)!;
        const cls = `node k-${n.kind}${o.chainIds.has(id) ? ' chain' : ''}${id === o.rootCauseId ? ' root-cause' : ''}${n.flags & 1 ? ' error' : ''}`;
        return (
          `<g class="${cls}" data-id="${id}" data-kind="${esc(n.kind)}" transform="translate(${(p.x - W / 2).toFixed(1)},${(p.y - H / 2).toFixed(1)})">` +
          `<rect class="node-box" width="${W}" height="${H}" rx="6" fill="${impactColor(num(n.weight_ns) / P.ref)}"/>` +
          `<rect class="node-kind-bar" width="5" height="${H}" rx="2"/>` +
          `<text class="node-title" x="12" y="20">${esc(clip(nodeTitle(n), 30))}</text>` +
          `<text class="node-sub" x="12" y="38">${esc(clip(`${KIND_LABEL[n.kind] ?? n.kind} · ${fmtDur(big(n.weight_ns))} · ${nodeWho(n)}`, 38))}</text>` +
          (id === o.rootCauseId ? `<text class="rc-tag" x="${W - 8}" y="-6" text-anchor="end">ROOT CAUSE</text>` : '') +
          `<title>${esc(`${nodeTitle(n)}\n${nodeWho(n)}\n${KIND_LABEL[n.kind] ?? n.kind}, ${fmtDur(big(n.weight_ns))}`)}</title>` +
          '</g>'
        );
      })
      .join(''),
  );
  gNodes.on('click', (ev: MouseEvent) => {
    const g = (ev.target as Element).closest('g.node');
    const n = g ? P.byId.get(g.getAttribute('data-id') ?? '') : undefined;
    if (!n) return;
    ev.stopPropagation();
    o.onSelect(n);
  });

  let lodOff = true;
  let userMoved = false; // until the user pans or zooms, a resize (a panel opening) refits
  const zoom = d3
    .zoom<SVGSVGElement, unknown>()
    .scaleExtent([0.01, 4])
    .on('zoom', (ev: d3.D3ZoomEvent<SVGSVGElement, unknown>) => {
      if (ev.sourceEvent) userMoved = true;
      vp.attr('transform', ev.transform.toString());
      const off = ev.transform.k < LOD;
      if (off !== lodOff) {
        lodOff = off;
        svg.classed('lod-off', off);
      }
    });
  svg.call(zoom).on('dblclick.zoom', null);
  svg.on('click', () => o.onSelect(null));
  svg.call(zoom.transform, fitTransform(P.lay, size.w, size.h));
  measure(t0, P, el, o.onRendered);
  let lastW = size.w;
  const ro = new ResizeObserver(() => {
    if (userMoved || Math.abs(el.clientWidth - lastW) < 2) return;
    lastW = el.clientWidth;
    svg.call(zoom.transform, fitTransform(P.lay, el.clientWidth, el.clientHeight));
  });
  ro.observe(el);

  return {
    zoomBy: (k) => svg.transition().duration(200).call(zoom.scaleBy, k),
    fit: () => svg.transition().duration(250).call(zoom.transform, fitTransform(P.lay, el.clientWidth, el.clientHeight)),
    focus: (id) => {
      const p = P.lay.nodes.get(id);
      if (p) svg.transition().duration(300).call(zoom.transform, d3.zoomIdentity.translate(el.clientWidth / 2 - p.x, el.clientHeight / 2 - p.y));
    },
    select: (id) => {
      el.querySelectorAll('g.node.selected').forEach((g) => g.classList.remove('selected'));
      if (id) el.querySelector(`g.node[data-id="${CSS.escape(id)}"]`)?.classList.add('selected');
    },
    destroy: () => {
      ro.disconnect();
      svg.on('.zoom', null);
      svg.remove();
    },
  };
}

/* ------------------------------------------------------------------ canvas */

function mountCanvas(host: HTMLElement, P: Prepared, o: Opts): Controller {
  const t0 = performance.now();
  const canvas = document.createElement('canvas');
  canvas.className = 'graph graph-canvas';
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', `causal graph, ${P.nodes.length} nodes`);
  canvas.setAttribute('data-nodes', String(P.nodes.length));
  host.appendChild(canvas);
  const ctx = canvas.getContext('2d', { alpha: false })!;
  let cw = canvas.clientWidth || 800;
  let ch = canvas.clientHeight || 500;
  let dpr = window.devicePixelRatio || 1;
  const resize = () => {
    cw = canvas.clientWidth || 800;
    ch = canvas.clientHeight || 500;
    dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(cw * dpr);
    canvas.height = Math.round(ch * dpr);
  };
  resize();

  // Precomputed per node: position, colour bucket, kind colour, marks, texts.
  const BUCKETS = 24;
  const bucketColor = Array.from({ length: BUCKETS }, (_, i) => impactColor(i / (BUCKETS - 1)));
  const N = P.nodes.length;
  const nx = new Float64Array(N);
  const ny = new Float64Array(N);
  const nb = new Uint8Array(N);
  const ids: string[] = [];
  const titles: string[] = [];
  const subs: string[] = [];
  const kinds: string[] = [];
  P.nodes.forEach((n, i) => {
    const id = String(n.id);
    const p = P.lay.nodes.get(id)!;
    ids.push(id);
    nx[i] = p.x - W / 2;
    ny[i] = p.y - H / 2;
    nb[i] = Math.round(Math.min(1, num(n.weight_ns) / P.ref) * (BUCKETS - 1));
    titles.push(clip(nodeTitle(n), 30));
    subs.push(clip(`${KIND_LABEL[n.kind] ?? n.kind} · ${fmtDur(big(n.weight_ns))} · ${nodeWho(n)}`, 38));
    kinds.push(n.kind);
  });
  const index = new Map(ids.map((id, i) => [id, i]));
  const chainIdx = ids.map((id, i) => (o.chainIds.has(id) ? i : -1)).filter((i) => i >= 0);
  const rootIdx = o.rootCauseId !== null ? index.get(o.rootCauseId) ?? -1 : -1;
  let selIdx = -1;
  const eg = edgeGeoms(P, o.chainIds);
  const widthBucket = (w: number) => (w < 1.8 ? 0 : w < 3 ? 1 : 2);
  const WIDTHS = [1, 2.2, 3.6];

  let t = d3.zoomIdentity;
  let queued = false;
  const schedule = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      draw();
    });
  };

  let drawMax = 0;
  function draw() {
    const d0 = performance.now();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = '#11161d';
    ctx.fillRect(0, 0, cw, ch);
    ctx.setTransform(dpr * t.k, 0, 0, dpr * t.k, dpr * t.x, dpr * t.y);
    const x0 = -t.x / t.k - W;
    const y0 = -t.y / t.k - H;
    const x1 = (cw - t.x) / t.k + W;
    const y1 = (ch - t.y) / t.k + H;
    const px = 1 / t.k; // one screen pixel in world units
    const vis = (ax: number, ay: number, bx: number, by: number) =>
      Math.max(ax, bx) >= x0 && Math.min(ax, bx) <= x1 && Math.max(ay, by) >= y0 && Math.min(ay, by) <= y1;

    // edges, batched by width; the chain on top
    for (let b = 0; b < 3; b++) {
      ctx.beginPath();
      for (const g of eg) {
        if (g.hot || widthBucket(g.w) !== b || !vis(g.sx, g.sy, g.dx, g.dy)) continue;
        ctx.moveTo(g.sx, g.sy);
        ctx.bezierCurveTo(g.sx, g.c1y, g.dx, g.c2y, g.dx, g.dy);
      }
      ctx.strokeStyle = '#44546a';
      ctx.lineWidth = Math.max(WIDTHS[b], 0.6 * px);
      ctx.stroke();
    }
    ctx.beginPath();
    for (const g of eg) {
      if (!g.hot || !vis(g.sx, g.sy, g.dx, g.dy)) continue;
      ctx.moveTo(g.sx, g.sy);
      ctx.bezierCurveTo(g.sx, g.c1y, g.dx, g.c2y, g.dx, g.dy);
    }
    ctx.strokeStyle = '#ff7a45';
    ctx.lineWidth = Math.max(3, 2 * px);
    ctx.stroke();
    if (t.k > 0.25) {
      // arrowheads at the effect
      ctx.beginPath();
      for (const g of eg) {
        if (!vis(g.dx, g.dy, g.dx, g.dy)) continue;
        const dir = g.dy > g.c2y ? 1 : -1; // pointing into the effect
        ctx.moveTo(g.dx, g.dy);
        ctx.lineTo(g.dx - 5, g.dy - 9 * dir);
        ctx.lineTo(g.dx + 5, g.dy - 9 * dir);
        ctx.closePath();
      }
      ctx.fillStyle = '#5b6b80';
      ctx.fill();
    }

    // edge labels under the nodes: the chain's when readable, all of them when zoomed in far
    if (t.k >= 0.6) {
      ctx.font = '11px ui-monospace, monospace';
      for (const g of eg) {
        if ((!g.hot && t.k < 1.3) || !vis(g.mx, g.my, g.mx, g.my)) continue;
        ctx.fillStyle = g.hot ? '#ffb38f' : '#8b949e';
        ctx.fillText(g.label, g.mx + 6, g.my + 4);
      }
    }

    // nodes, batched by fill colour, then the kind bars
    const visible: number[] = [];
    for (let i = 0; i < N; i++) if (nx[i] + W >= x0 && nx[i] <= x1 && ny[i] + H >= y0 && ny[i] <= y1) visible.push(i);
    for (let b = 0; b < BUCKETS; b++) {
      ctx.beginPath();
      let any = false;
      for (const i of visible)
        if (nb[i] === b) {
          ctx.rect(nx[i], ny[i], W, H);
          any = true;
        }
      if (any) {
        ctx.fillStyle = bucketColor[b];
        ctx.fill();
      }
    }
    const byKind = new Map<string, number[]>();
    for (const i of visible) (byKind.get(kinds[i]) ?? byKind.set(kinds[i], []).get(kinds[i])!).push(i);
    for (const [k, is] of byKind) {
      ctx.beginPath();
      for (const i of is) ctx.rect(nx[i], ny[i], 5, H);
      ctx.fillStyle = KIND_COLOR[k] ?? '#8b949e';
      ctx.fill();
    }
    if (t.k > 0.15) {
      ctx.beginPath();
      for (const i of visible) ctx.rect(nx[i], ny[i], W, H);
      ctx.strokeStyle = '#3d4a5c';
      ctx.lineWidth = px;
      ctx.stroke();
    }
    ctx.beginPath();
    for (const i of chainIdx) ctx.rect(nx[i], ny[i], W, H);
    ctx.strokeStyle = '#ff9f70';
    ctx.lineWidth = Math.max(1.5, 1.5 * px);
    ctx.stroke();
    for (const [i, color] of [
      [rootIdx, '#ff7a45'],
      [selIdx, '#58a6ff'],
    ] as [number, string][]) {
      if (i < 0) continue;
      ctx.strokeStyle = color;
      ctx.lineWidth = Math.max(3, 3 * px);
      ctx.strokeRect(nx[i], ny[i], W, H);
    }

    // text only when it can be read
    if (t.k >= LOD) {
      ctx.textBaseline = 'alphabetic';
      ctx.font = '600 12px system-ui, sans-serif';
      ctx.fillStyle = '#e6edf3';
      for (const i of visible) ctx.fillText(titles[i], nx[i] + 12, ny[i] + 20);
      ctx.font = '11px system-ui, sans-serif';
      ctx.fillStyle = '#aab4c0';
      for (const i of visible) ctx.fillText(subs[i], nx[i] + 12, ny[i] + 38);
    }
    // the root cause's tag in screen space: readable at any zoom
    if (rootIdx >= 0) {
      const sx = t.applyX(nx[rootIdx] + W);
      const sy = t.applyY(ny[rootIdx]);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.font = '700 11px system-ui, sans-serif';
      ctx.textAlign = 'right';
      ctx.fillStyle = '#ff7a45';
      ctx.fillText('ROOT CAUSE', sx, sy - 5);
      ctx.textAlign = 'left';
    }
    const dms = performance.now() - d0;
    drawMax = Math.max(drawMax, dms);
    canvas.setAttribute('data-draw-ms', dms.toFixed(1));
    canvas.setAttribute('data-draw-max-ms', drawMax.toFixed(1));
    canvas.setAttribute('data-k', t.k.toFixed(4));
    canvas.setAttribute('data-lod', t.k >= LOD ? 'on' : 'off');
  }

  const hit = (ev: MouseEvent): number => {
    const r = canvas.getBoundingClientRect();
    const [wx, wy] = t.invert([ev.clientX - r.left, ev.clientY - r.top]);
    for (let i = 0; i < N; i++) if (wx >= nx[i] && wx <= nx[i] + W && wy >= ny[i] && wy <= ny[i] + H) return i;
    return -1;
  };
  const sel = d3.select(canvas);
  let userMoved = false; // until the user pans or zooms, a resize (a panel opening) refits
  const zoom = d3
    .zoom<HTMLCanvasElement, unknown>()
    .scaleExtent([0.01, 4])
    .on('zoom', (ev: d3.D3ZoomEvent<HTMLCanvasElement, unknown>) => {
      if (ev.sourceEvent) userMoved = true;
      t = ev.transform;
      schedule();
    });
  sel.call(zoom).on('dblclick.zoom', null);
  const onClick = (ev: MouseEvent) => {
    const i = hit(ev);
    o.onSelect(i >= 0 ? P.byId.get(ids[i]) ?? null : null);
  };
  let lastHover = -2;
  const onMove = (ev: MouseEvent) => {
    if (ev.buttons) return;
    const i = hit(ev);
    if (i === lastHover) return;
    lastHover = i;
    canvas.style.cursor = i >= 0 ? 'pointer' : '';
    const n = i >= 0 ? P.byId.get(ids[i]) : undefined;
    canvas.title = n ? `${nodeTitle(n)}\n${nodeWho(n)}\n${KIND_LABEL[n.kind] ?? n.kind}, ${fmtDur(big(n.weight_ns))}` : '';
  };
  canvas.addEventListener('click', onClick);
  canvas.addEventListener('mousemove', onMove);
  const ro = new ResizeObserver(() => {
    const w0 = cw;
    resize();
    if (!userMoved && Math.abs(cw - w0) >= 2) {
      t = fitTransform(P.lay, cw, ch);
      sel.call(zoom.transform, t);
    }
    draw();
  });
  ro.observe(canvas);

  t = fitTransform(P.lay, cw, ch);
  sel.call(zoom.transform, t);
  draw();
  measure(t0, P, canvas, o.onRendered);

  return {
    zoomBy: (k) => sel.transition().duration(200).call(zoom.scaleBy, k),
    fit: () => sel.transition().duration(250).call(zoom.transform, fitTransform(P.lay, cw, ch)),
    focus: (id) => {
      const i = index.get(id);
      if (i !== undefined) sel.transition().duration(300).call(zoom.transform, d3.zoomIdentity.translate(cw / 2 - nx[i] - W / 2, ch / 2 - ny[i] - H / 2));
    },
    select: (id) => {
      selIdx = id !== null ? index.get(id) ?? -1 : -1;
      schedule();
    },
    destroy: () => {
      ro.disconnect();
      sel.on('.zoom', null);
      canvas.removeEventListener('click', onClick);
      canvas.removeEventListener('mousemove', onMove);
      canvas.remove();
    },
  };
}
