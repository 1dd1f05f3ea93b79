import { describe, expect, it } from 'vitest';
import { DEFAULT_LAYOUT, autoWrap, countCrossings, layeredLayout } from '../layout';

function rng(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
}

function synth(n: number, seed = 1) {
  const r = rng(seed);
  const nodes = [{ id: '0', depth: 0 }];
  const edges: { src: string; dst: string }[] = [];
  const byLayer: string[][] = [['0']];
  for (let i = 1; i < n; i++) {
    const d = 1 + Math.floor(r() * 6);
    while (byLayer.length <= d) byLayer.push([]);
    const id = String(i);
    nodes.push({ id, depth: d });
    byLayer[d].push(id);
  }
  for (let d = 1; d < byLayer.length; d++) {
    const above = byLayer[d - 1].length ? byLayer[d - 1] : ['0'];
    for (const id of byLayer[d]) for (let k = 0; k < 1 + Math.floor(r() * 2); k++) edges.push({ src: id, dst: above[Math.floor(r() * above.length)] });
  }
  return { nodes, edges };
}

describe('layered layout', () => {
  it('puts each node on its depth and never overlaps nodes', () => {
    const { nodes, edges } = synth(600);
    const lay = layeredLayout(nodes, edges, { ...DEFAULT_LAYOUT, maxPerRow: autoWrap(nodes.length) });
    expect(lay.nodes.size).toBe(600);
    for (const n of nodes) expect(lay.nodes.get(n.id)!.layer).toBe(n.depth);
    const seen = new Set<string>();
    for (const p of lay.nodes.values()) {
      const k = `${Math.round(p.x)}:${Math.round(p.y)}`;
      expect(seen.has(k)).toBe(false);
      seen.add(k);
    }
    // layers go downward: a deeper layer's rows are all below the shallower one's
    for (const p of lay.nodes.values()) for (const q of lay.nodes.values()) if (p.layer < q.layer) expect(p.y).toBeLessThan(q.y);
  });
  it('barycenter sweeps reduce crossings', () => {
    const { nodes, edges } = synth(300, 7);
    const none = layeredLayout(nodes, edges, { ...DEFAULT_LAYOUT, sweeps: 0 });
    const some = layeredLayout(nodes, edges, { ...DEFAULT_LAYOUT, sweeps: 4 });
    expect(countCrossings(some, edges)).toBeLessThan(countCrossings(none, edges));
  });
  it('a chain stays straight', () => {
    const nodes = [0, 1, 2, 3].map((i) => ({ id: String(i), depth: i }));
    const edges = [1, 2, 3].map((i) => ({ src: String(i), dst: String(i - 1) }));
    const lay = layeredLayout(nodes, edges);
    const xs = [...lay.nodes.values()].map((p) => p.x);
    expect(new Set(xs).size).toBe(1);
  });
  it('2,000 nodes lay out quickly', () => {
    const { nodes, edges } = synth(2000, 3);
    const t0 = performance.now();
    layeredLayout(nodes, edges, { ...DEFAULT_LAYOUT, maxPerRow: autoWrap(2000) });
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});
