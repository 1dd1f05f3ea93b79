// Graph.tsx - the causal graph as a layered DAG drawn with D3 in SVG: the symptom on top, each
// cause one row below what it explains, edges (cause -> effect) labelled with the latency they
// explain. Node fill shows latency impact (weight / the symptom's latency); the root cause and
// the root-cause chain are marked. Pan and zoom with d3-zoom; below 45% zoom the text is hidden
// (level of detail), which keeps thousands of nodes smooth.
//
// Rendering is imperative (one d3 join per layer of elements, no React per node): the e2e test
// renders 2,000 nodes and reports the time from data to painted frame.
import * as d3 from 'd3';
import { useEffect, useMemo, useRef, useState } from 'react';
import type { Graph, GraphNode } from '../lib/api';
import { DEFAULT_LAYOUT, autoWrap, layeredLayout } from '../lib/layout';
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
const LOD = 0.45;

const impactColor = d3.scaleLinear<string>().domain([0, 0.15, 0.5, 1]).range(['#1f2a3a', '#2f4a6b', '#a3661a', '#d93f3f']).clamp(true);

function esc(s: string) {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

function clip(s: string, n: number) {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

export function GraphView({ graph, chainIds, rootCauseId, selected, onSelect, onRendered }: GraphViewProps) {
  const svgRef = useRef<SVGSVGElement>(null);
  const zoomRef = useRef<d3.ZoomBehavior<SVGSVGElement, unknown> | null>(null);
  const [renderMs, setRenderMs] = useState<number | null>(null);
  const onSelectRef = useRef(onSelect);
  onSelectRef.current = onSelect;

  const prepared = useMemo(() => {
    const t0 = performance.now();
    const ids = graph.nodes.map((n) => String(n.id));
    const nodes = graph.nodes.filter((n) => !n.missing);
    const byId = new Map(nodes.map((n) => [String(n.id), n]));
    const edges = graph.edges.filter((e) => byId.has(String(e.src)) && byId.has(String(e.dst)));
    const lay = layeredLayout(
      nodes.map((n) => ({ id: String(n.id), depth: n.depth })),
      edges.map((e) => ({ src: String(e.src), dst: String(e.dst) })),
      { ...DEFAULT_LAYOUT, maxPerRow: autoWrap(nodes.length) },
    );
    const root = byId.get(String(graph.root)) ?? nodes[0];
    const ref = Math.max(1, num(root?.weight_ns) || Math.max(1, ...nodes.map((n) => num(n.weight_ns))));
    return { ids, nodes, byId, edges, lay, ref, layoutMs: performance.now() - t0 };
  }, [graph]);

  // Build the SVG once per graph.
  useEffect(() => {
    const t0 = performance.now();
    const svg = d3.select(svgRef.current!);
    svg.selectAll('*').remove();
    // Size first, while the SVG is empty: reading it after the content is in would force a
    // style and layout pass over every label before the zoom level hides them.
    const size = { w: svgRef.current!.clientWidth || 800, h: svgRef.current!.clientHeight || 500 };
    svg.classed('lod-off', true);
    const { nodes, edges, lay, ref } = prepared;
    const defs = svg.append('defs');
    for (const [id, color] of [
      ['arrow', '#5b6b80'],
      ['arrow-hot', '#ff7a45'],
    ]) {
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
    }
    const vp = svg.append('g').attr('class', 'viewport');
    const gEdges = vp.append('g').attr('class', 'edges');
    const gLabels = vp.append('g').attr('class', 'edge-labels lod');
    const gNodes = vp.append('g').attr('class', 'nodes');

    // Markup built as strings and parsed once: several times faster than element-by-element
    // creation for thousands of nodes. Clicks are delegated (data-id).
    type E = (typeof edges)[number];
    const geom = (e: E) => {
      const s = lay.nodes.get(String(e.src))!;
      const d = lay.nodes.get(String(e.dst))!;
      // the cause is normally below its effect: leave the cause's top, enter the effect's bottom
      const down = s.y > d.y;
      const sy = down ? s.y - H / 2 : s.y + H / 2;
      const dy = down ? d.y + H / 2 : d.y - H / 2;
      if (s.y === d.y) {
        const y = s.y - H / 2;
        return { path: `M${s.x},${y}C${s.x},${y - 40} ${d.x},${y - 40} ${d.x},${y}`, mx: (s.x + d.x) / 2, my: y - 30 };
      }
      const my = (sy + dy) / 2;
      return { path: `M${s.x},${sy}C${s.x},${my} ${d.x},${my} ${d.x},${dy}`, mx: (s.x + d.x) / 2, my };
    };
    const edgeParts: string[] = [];
    const labelParts: string[] = [];
    for (const e of edges) {
      const g = geom(e);
      const hot = chainIds.has(String(e.src)) && chainIds.has(String(e.dst));
      const sw = (1 + 3 * Math.min(1, num(e.weight_ns) / ref)).toFixed(1);
      edgeParts.push(
        `<path class="edge${hot ? ' hot' : ''}" d="${g.path}" stroke-width="${sw}" marker-end="url(#${hot ? 'arrow-hot' : 'arrow'})"/>`,
      );
      labelParts.push(
        `<text class="edge-label${hot ? ' hot' : ''}" x="${(g.mx + 6).toFixed(1)}" y="${(g.my + 4).toFixed(1)}">${esc(edgeLabel(e.kind, e.weight_ns))}</text>`,
      );
    }
    gEdges.html(edgeParts.join(''));
    gLabels.html(labelParts.join(''));
    const nodeParts: string[] = [];
    for (const n of nodes) {
      const id = String(n.id);
      const p = lay.nodes.get(id)!;
      const cls = `node k-${n.kind}${chainIds.has(id) ? ' chain' : ''}${id === rootCauseId ? ' root-cause' : ''}${n.flags & 1 ? ' error' : ''}`;
      nodeParts.push(
        `<g class="${cls}" data-id="${id}" data-kind="${esc(n.kind)}" transform="translate(${(p.x - W / 2).toFixed(1)},${(p.y - H / 2).toFixed(1)})">` +
          `<rect class="node-box" width="${W}" height="${H}" rx="6" fill="${impactColor(num(n.weight_ns) / ref)}"/>` +
          `<rect class="node-kind-bar" width="5" height="${H}" rx="2"/>` +
          `<text class="node-title" x="12" y="20">${esc(clip(nodeTitle(n), 30))}</text>` +
          `<text class="node-sub" x="12" y="38">${esc(clip(`${KIND_LABEL[n.kind] ?? n.kind} · ${fmtDur(big(n.weight_ns))} · ${nodeWho(n)}`, 38))}</text>` +
          (id === rootCauseId ? `<text class="rc-tag" x="${W - 8}" y="-6" text-anchor="end">ROOT CAUSE</text>` : '') +
          '</g>',
      );
    }
    gNodes.html(nodeParts.join(''));
    gNodes.on('click', (ev: MouseEvent) => {
      const g = (ev.target as Element).closest('g.node');
      if (!g) return;
      ev.stopPropagation();
      const n = prepared.byId.get(g.getAttribute('data-id') ?? '');
      if (n) onSelectRef.current(n);
    });
    // A hover card instead of thousands of <title> elements.
    gNodes.on('mouseover', (ev: MouseEvent) => {
      const g = (ev.target as Element).closest('g.node');
      const n = g ? prepared.byId.get(g.getAttribute('data-id') ?? '') : undefined;
      if (n && g && !g.querySelector('title'))
        d3.select(g).append('title').text(`${nodeTitle(n)}\n${nodeWho(n)}\n${KIND_LABEL[n.kind] ?? n.kind}, ${fmtDur(big(n.weight_ns))}`);
    });

    // Zoom: transform one group; toggle the level-of-detail class only when crossing it.
    let lodOff = true;
    const zoom = d3
      .zoom<SVGSVGElement, unknown>()
      .scaleExtent([0.01, 4])
      .on('zoom', (ev: d3.D3ZoomEvent<SVGSVGElement, unknown>) => {
        vp.attr('transform', ev.transform.toString());
        const off = ev.transform.k < LOD;
        if (off !== lodOff) {
          lodOff = off;
          svg.classed('lod-off', off);
        }
      });
    zoomRef.current = zoom;
    svg.call(zoom).on('dblclick.zoom', null);
    svg.on('click', () => onSelectRef.current(null));
    fit(svg, zoom, lay, false, size);

    // Measured to the frame after the first one with the graph (that frame has been painted).
    const built = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => {
      const ms = performance.now() - t0 + prepared.layoutMs;
      (window as unknown as { __kpGraphParts?: unknown }).__kpGraphParts = { layout: prepared.layoutMs, build: built - t0, paint: performance.now() - built };
      setRenderMs(ms);
      onRendered?.(ms);
      svgRef.current?.setAttribute('data-render-ms', ms.toFixed(1));
    }));
    return () => {
      svg.on('.zoom', null);
    };
    // chainIds / rootCauseId are derived from the same key as graph
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [prepared]);

  // Selection highlight without rebuilding.
  useEffect(() => {
    const el = svgRef.current!;
    el.querySelectorAll('g.node.selected').forEach((g) => g.classList.remove('selected'));
    if (selected) el.querySelector(`g.node[data-id="${CSS.escape(selected)}"]`)?.classList.add('selected');
  }, [selected, prepared]);

  const zoomBy = (k: number) => {
    const svg = d3.select(svgRef.current!);
    if (zoomRef.current) svg.transition().duration(200).call(zoomRef.current.scaleBy, k);
  };
  const focusRoot = () => {
    const svg = d3.select(svgRef.current!);
    const p = rootCauseId ? prepared.lay.nodes.get(rootCauseId) : null;
    if (!p || !zoomRef.current) return;
    const el = svgRef.current!;
    const t = d3.zoomIdentity.translate(el.clientWidth / 2 - p.x, el.clientHeight / 2 - p.y);
    svg.transition().duration(300).call(zoomRef.current.transform, t);
  };

  return (
    <div className="graph-wrap">
      <div className="graph-tools">
        <button onClick={() => zoomBy(1.4)} title="zoom in">+</button>
        <button onClick={() => zoomBy(1 / 1.4)} title="zoom out">−</button>
        <button onClick={() => fit(d3.select(svgRef.current!), zoomRef.current!, prepared.lay, true)} title="fit the graph">Fit</button>
        {rootCauseId && <button onClick={focusRoot}>Root cause</button>}
        <span className="graph-stats">
          {prepared.nodes.length} nodes · {prepared.edges.length} edges{graph.truncated ? ' · truncated' : ''}
          {renderMs !== null && <span className="muted"> · drawn in {renderMs.toFixed(0)} ms</span>}
        </span>
        <span className="legend">
          impact <span className="swatch" style={{ background: impactColor(0.05) }} />
          <span className="swatch" style={{ background: impactColor(0.5) }} />
          <span className="swatch" style={{ background: impactColor(1) }} />
        </span>
      </div>
      <svg ref={svgRef} className="graph" role="img" aria-label="causal graph" />
    </div>
  );
}

function fit(
  svg: d3.Selection<SVGSVGElement, unknown, null, undefined>,
  zoom: d3.ZoomBehavior<SVGSVGElement, unknown>,
  lay: ReturnType<typeof layeredLayout>,
  animate: boolean,
  size?: { w: number; h: number },
) {
  const el = svg.node()!;
  const w = size?.w ?? (el.clientWidth || 800);
  const h = size?.h ?? (el.clientHeight || 500);
  const pad = 40;
  const gw = lay.maxX - lay.minX + 2 * pad;
  const gh = lay.height + 2 * pad;
  // Readable first: do not shrink a small graph, and for a huge one show the top rows legibly
  // enough to see the shape (the user zooms out for the rest).
  let k = Math.min(1.1, w / gw, h / gh);
  k = Math.max(k, 0.02);
  const tt = d3.zoomIdentity.translate((w - (lay.maxX + lay.minX) * k) / 2, Math.max(pad, (h - lay.height * k) / 2)).scale(k);
  if (animate) svg.transition().duration(250).call(zoom.transform, tt);
  else svg.call(zoom.transform, tt);
}
