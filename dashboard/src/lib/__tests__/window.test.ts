import { describe, expect, it } from 'vitest';
import { byteToIndex, lineCol, tokenEnd } from '../querytext';
import { MIN_SPAN, around, pan, span, zoomAt } from '../window';

describe('timeline window', () => {
  const w = { from: 1795342327000000000n, to: 1795342328000000000n }; // 1 s
  it('zooms around the pointer, exactly', () => {
    const z = zoomAt(w, 250_000_000, 0.5);
    expect(span(z)).toBe(500_000_000n);
    // the pointer's time stays where it was: 250 ms into the old window, 125 ms into the new
    expect(z.from + 125_000_000n).toBe(w.from + 250_000_000n);
  });
  it('never goes below the minimum span and reaches microseconds', () => {
    let z = w;
    for (let i = 0; i < 200; i++) z = zoomAt(z, Number(span(z)) / 2, 0.8);
    expect(span(z)).toBe(MIN_SPAN);
    expect(z.from).toBeGreaterThan(w.from);
  });
  it('pans and frames', () => {
    expect(pan(w, 1000).from).toBe(w.from + 1000n);
    const a = around(100n, 200n);
    expect(a.from).toBeLessThan(100n);
    expect(a.to).toBeGreaterThan(200n);
  });
});

describe('query text', () => {
  it('maps byte positions to indices across multi-byte characters', () => {
    const t = "SELECT 'µs' FROM x WHERE";
    // 'µ' is two bytes in UTF-8: byte 12 (the space after the literal) is index 11
    expect(byteToIndex(t, 12)).toBe(11);
    expect(byteToIndex(t, 0)).toBe(0);
    expect(byteToIndex(t, 999)).toBe(t.length);
  });
  it('line and column, token ends', () => {
    const t = 'SELECT a\nFROM evnts\nWHERE';
    expect(lineCol(t, t.indexOf('evnts'))).toEqual({ line: 2, col: 6 });
    expect(tokenEnd(t, t.indexOf('evnts'))).toBe(t.indexOf('evnts') + 5);
  });
});
