// querytext.ts - helpers for the query editor: byte offsets (the server's error positions) to
// string indices, line/column, and a tokenizer for highlighting.

/** The string index of UTF-8 byte offset `byte` in text (clamped to the text). */
export function byteToIndex(text: string, byte: number): number {
  let b = 0;
  for (let i = 0; i < text.length; i++) {
    if (b >= byte) return i;
    const c = text.codePointAt(i)!;
    b += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (c >= 0x10000) i++; // surrogate pair
  }
  return text.length;
}

export function lineCol(text: string, index: number): { line: number; col: number } {
  let line = 1;
  let last = -1;
  for (let i = 0; i < index && i < text.length; i++)
    if (text[i] === '\n') {
      line++;
      last = i;
    }
  return { line, col: index - last };
}

export type TokKind = 'kw' | 'fn' | 'str' | 'num' | 'op' | 'id' | 'ws' | 'comment';
export interface Tok {
  kind: TokKind;
  text: string;
  start: number;
}

const KW = new Set(
  'select from where group by having order asc desc limit and or not in between like is null as of path to ancestors descendants depth rootcause true false distinct'.split(' '),
);
const FN = new Set('count sum min max avg quantile p50 p90 p95 p99 p999 bucket now abs'.split(' '));

export function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    const start = i;
    if (/\s/.test(c)) {
      while (i < s.length && /\s/.test(s[i])) i++;
      out.push({ kind: 'ws', text: s.slice(start, i), start });
    } else if (c === '-' && s[i + 1] === '-') {
      while (i < s.length && s[i] !== '\n') i++;
      out.push({ kind: 'comment', text: s.slice(start, i), start });
    } else if (c === "'") {
      i++;
      while (i < s.length) {
        if (s[i] === "'" && s[i + 1] === "'") i += 2;
        else if (s[i] === "'") {
          i++;
          break;
        } else i++;
      }
      out.push({ kind: 'str', text: s.slice(start, i), start });
    } else if (/[0-9]/.test(c)) {
      while (i < s.length && /[0-9a-zµ._]/i.test(s[i])) i++;
      out.push({ kind: 'num', text: s.slice(start, i), start });
    } else if (/[A-Za-z_]/.test(c)) {
      while (i < s.length && /[A-Za-z0-9_]/.test(s[i])) i++;
      const w = s.slice(start, i);
      const lw = w.toLowerCase();
      out.push({ kind: KW.has(lw) ? 'kw' : FN.has(lw) ? 'fn' : 'id', text: w, start });
    } else {
      i++;
      out.push({ kind: 'op', text: c, start });
    }
  }
  return out;
}

/** The end of the token that starts at or covers index (for underlining an error). */
export function tokenEnd(s: string, index: number): number {
  for (const t of tokenize(s)) if (t.kind !== 'ws' && t.start <= index && index < t.start + t.text.length) return t.start + t.text.length;
  return Math.min(s.length, index + 1);
}
