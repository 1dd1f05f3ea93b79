// window.ts - the timeline's visible range as exact BigInt nanoseconds: zoom around a point,
// pan, clamp. Kept apart from the view so it can be unit-tested.

export interface Win {
  from: bigint;
  to: bigint;
}

export const MIN_SPAN = 100n; // ns: below this nothing more can be told apart
export const MAX_SPAN = 31n * 86_400_000_000_000n; // a month

export function span(w: Win): bigint {
  return w.to - w.from;
}

/** Zooms by factor (<1 in, >1 out) keeping the point at `at` (ns offset from w.from) in place. */
export function zoomAt(w: Win, at: number, factor: number): Win {
  const s = Number(span(w));
  let ns = Math.round(s * factor);
  if (ns < Number(MIN_SPAN)) ns = Number(MIN_SPAN);
  if (ns > Number(MAX_SPAN)) ns = Number(MAX_SPAN);
  const frac = s > 0 ? Math.min(1, Math.max(0, at / s)) : 0.5;
  const pivot = w.from + BigInt(Math.round(at));
  const from = pivot - BigInt(Math.round(ns * frac));
  return { from, to: from + BigInt(ns) };
}

export function pan(w: Win, deltaNs: number): Win {
  const d = BigInt(Math.round(deltaNs));
  return { from: w.from + d, to: w.to + d };
}

/** A window around [a, b] with margin on each side (at least minPad ns), at least MIN_SPAN wide. */
export function around(a: bigint, b: bigint, margin = 0.25, minPad = 500n): Win {
  if (b < a) [a, b] = [b, a];
  let p = BigInt(Math.round(Number(b - a) * margin));
  if (p < minPad) p = minPad;
  let from = a - p;
  let to = b + p;
  if (to - from < MIN_SPAN) {
    const c = (from + to) / 2n;
    from = c - MIN_SPAN / 2n;
    to = c + MIN_SPAN / 2n;
  }
  return { from, to };
}

/** A window of width `width` centred on the middle of w. */
export function recenter(w: Win, width: bigint): Win {
  const c = (w.from + w.to) / 2n;
  return { from: c - width / 2n, to: c - width / 2n + width };
}
