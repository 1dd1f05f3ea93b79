// layout.ts - a layered ("Sugiyama-style") layout for causal DAGs, fast enough for thousands
// of nodes in the browser's main thread.
//
//   layer    = the node's hop distance from the root (the traversal's BFS depth), so the symptom
//              is on top and each cause sits one row below what it explains;
//   order    = input order (the server's BFS lists heavier causes first), then a few sweeps of
//              the barycenter heuristic (each node moves toward the mean position of its
//              neighbours in the adjacent layer) to cut edge crossings;
//   x        = slots in the layer, centred, then nudged toward the barycenter of the layer above
//              without overlapping (keeps chains straight);
//   wrap     = a layer wider than maxPerRow nodes continues on further rows of its band, so a
//              2,000-node graph stays a block you can take in, not a 100,000-pixel line;
//   edges    = cubic curves from the cause's top to the effect's bottom.
// O(sweeps * E log V). Cycles cannot break it: layers come from the depths, not from the edges.

export interface LayoutIn {
  id: string;
  depth: number;
}
export interface LayoutEdgeIn {
  src: string;
  dst: string;
}
export interface Placed {
  id: string;
  layer: number;
  order: number;
  x: number; // centre
  y: number; // centre
}
export interface LayoutOut {
  nodes: Map<string, Placed>;
  layers: string[][];
  width: number;
  height: number;
  minX: number;
  maxX: number;
  bandY: number[]; // top of each layer's band
}

export interface LayoutOpts {
  nodeWidth: number;
  nodeHeight: number;
  hGap: number;
  vGap: number;
  rowGap: number; // between the rows of a wrapped layer
  sweeps: number;
  maxPerRow: number; // 0 = never wrap; else wrap layers wider than this
}

export const DEFAULT_LAYOUT: LayoutOpts = { nodeWidth: 200, nodeHeight: 52, hGap: 28, vGap: 64, rowGap: 18, sweeps: 4, maxPerRow: 0 };

/** The wrap width that keeps a graph of n nodes roughly as wide as it is tall. */
export function autoWrap(n: number): number {
  return n <= 60 ? 0 : Math.max(24, Math.ceil(Math.sqrt(n) * 1.1));
}

export function layeredLayout(nodes: LayoutIn[], edges: LayoutEdgeIn[], o: LayoutOpts = DEFAULT_LAYOUT): LayoutOut {
  const layerOf = new Map<string, number>();
  let maxLayer = 0;
  for (const n of nodes) {
    const l = Math.max(0, n.depth | 0);
    layerOf.set(n.id, l);
    if (l > maxLayer) maxLayer = l;
  }
  const layers: string[][] = Array.from({ length: maxLayer + 1 }, () => []);
  for (const n of nodes) layers[layerOf.get(n.id)!].push(n.id);

  // Neighbours in the layer above (up) and below (down); same-layer edges do not pull.
  const up = new Map<string, string[]>();
  const down = new Map<string, string[]>();
  for (const e of edges) {
    const ls = layerOf.get(e.src);
    const ld = layerOf.get(e.dst);
    if (ls === undefined || ld === undefined || ls === ld) continue;
    const [hi, lo] = ls < ld ? [e.src, e.dst] : [e.dst, e.src];
    (down.get(hi) ?? down.set(hi, []).get(hi)!).push(lo);
    (up.get(lo) ?? up.set(lo, []).get(lo)!).push(hi);
  }

  const pos = new Map<string, number>();
  const setPos = (layer: string[]) => layer.forEach((id, i) => pos.set(id, i));
  layers.forEach(setPos);

  const sortBy = (layer: string[], nb: Map<string, string[]>) => {
    const key = new Map<string, number>();
    for (const id of layer) {
      const ns = nb.get(id);
      if (ns && ns.length) {
        let s = 0;
        for (const x of ns) s += pos.get(x)!;
        key.set(id, s / ns.length);
      } else {
        key.set(id, pos.get(id)!); // keep its place
      }
    }
    // stable: ties keep the current order
    layer.sort((a, b) => key.get(a)! - key.get(b)! || pos.get(a)! - pos.get(b)!);
    setPos(layer);
  };
  for (let s = 0; s < o.sweeps; s++) {
    for (let l = 1; l <= maxLayer; l++) sortBy(layers[l], up);
    for (let l = maxLayer - 1; l >= 0; l--) sortBy(layers[l], down);
  }

  // x: centred slots, then (for unwrapped layers) pulled toward parents' mean x where room allows.
  const slot = o.nodeWidth + o.hGap;
  const per = o.maxPerRow > 0 ? o.maxPerRow : Number.MAX_SAFE_INTEGER;
  const xs = new Map<string, number>();
  const rowOf = new Map<string, number>();
  for (const layer of layers) {
    const rows = Math.max(1, Math.ceil(layer.length / per));
    for (let r = 0; r < rows; r++) {
      const lo = r * per;
      const hi = Math.min(layer.length, lo + per);
      const w = (hi - lo) * slot;
      for (let i = lo; i < hi; i++) {
        xs.set(layer[i], -w / 2 + (i - lo) * slot + slot / 2);
        rowOf.set(layer[i], r);
      }
    }
  }
  for (let l = 1; l <= maxLayer; l++) {
    const layer = layers[l];
    if (layer.length > per) continue;
    const want = layer.map((id) => {
      const ps = up.get(id);
      if (!ps || !ps.length) return xs.get(id)!;
      let s = 0;
      for (const p of ps) s += xs.get(p)!;
      return s / ps.length;
    });
    // Place left to right at the wanted x, never closer than one slot; then shift the layer
    // so its mean displacement is zero (a cheap, stable compromise).
    const placed: number[] = [];
    for (let i = 0; i < layer.length; i++) {
      const min = i ? placed[i - 1] + slot : -Infinity;
      placed.push(Math.max(want[i], min));
    }
    let shift = 0;
    for (let i = 0; i < layer.length; i++) shift += want[i] - placed[i];
    shift /= layer.length || 1;
    for (let i = 0; i < layer.length; i++) xs.set(layer[i], placed[i] + shift);
  }

  const out = new Map<string, Placed>();
  const bandY: number[] = [];
  let y = 0;
  let minX = Infinity;
  let maxX = -Infinity;
  layers.forEach((layer, l) => {
    bandY.push(y);
    const rows = Math.max(1, Math.ceil(layer.length / per));
    layer.forEach((id, i) => {
      const x = xs.get(id)!;
      if (x < minX) minX = x;
      if (x > maxX) maxX = x;
      const r = rowOf.get(id)!;
      out.set(id, { id, layer: l, order: i, x, y: y + r * (o.nodeHeight + o.rowGap) + o.nodeHeight / 2 });
    });
    y += rows * o.nodeHeight + (rows - 1) * o.rowGap + o.vGap;
  });
  if (!out.size) minX = maxX = 0;
  return {
    nodes: out,
    layers,
    minX: minX - o.nodeWidth / 2,
    maxX: maxX + o.nodeWidth / 2,
    width: maxX - minX + o.nodeWidth,
    height: Math.max(0, y - o.vGap),
    bandY,
  };
}

/** Number of crossings between consecutive layers (for tests and for judging sweeps). */
export function countCrossings(lay: LayoutOut, edges: LayoutEdgeIn[]): number {
  const byPair = new Map<number, [number, number][]>();
  for (const e of edges) {
    const a = lay.nodes.get(e.src);
    const b = lay.nodes.get(e.dst);
    if (!a || !b || Math.abs(a.layer - b.layer) !== 1) continue;
    const [hi, lo] = a.layer < b.layer ? [a, b] : [b, a];
    (byPair.get(hi.layer) ?? byPair.set(hi.layer, []).get(hi.layer)!).push([hi.x, lo.x]);
  }
  let c = 0;
  for (const segs of byPair.values())
    for (let i = 0; i < segs.length; i++)
      for (let j = i + 1; j < segs.length; j++)
        if ((segs[i][0] - segs[j][0]) * (segs[i][1] - segs[j][1]) < 0) c++;
  return c;
}
