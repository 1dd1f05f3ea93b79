// json.ts - JSON parsing that keeps integers above 2^53 exact.
//
// kprobed writes epoch-nanosecond timestamps (~1.8e18) and 64-bit node ids as plain JSON numbers.
// JSON.parse would round them to the nearest double (a 256 ns step at today's epoch), so every
// integer literal that is not a safe integer becomes a BigInt. Chromium and current Firefox give
// revivers the literal's source text (the "JSON.parse source text access" proposal); elsewhere a
// small parser does the same. Safe integers and floats stay numbers.

export type JsonValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

const INT_RE = /^-?\d+$/;

type Context = { source?: string };

function hasSourceAccess(): boolean {
  try {
    let seen = '';
    (JSON.parse as (t: string, r: (k: string, v: unknown, c?: Context) => unknown) => unknown)(
      '12345678901234567890',
      (_k, v, c) => {
        seen = c?.source ?? '';
        return v;
      },
    );
    return seen === '12345678901234567890';
  } catch {
    return false;
  }
}

const NATIVE = hasSourceAccess();

function reviver(this: unknown, _key: string, value: unknown, ctx?: Context): unknown {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && ctx?.source && INT_RE.test(ctx.source))
    return BigInt(ctx.source);
  return value;
}

/** Parses JSON text; integers outside +-(2^53-1) come back as BigInt. Throws SyntaxError. */
export function parseJson(text: string): JsonValue {
  if (NATIVE) return (JSON.parse as (t: string, r: typeof reviver) => JsonValue)(text, reviver);
  return parseJsonPortable(text);
}

/** The portable parser (exported for tests): same results as parseJson. */
export function parseJsonPortable(text: string): JsonValue {
  let i = 0;
  const n = text.length;
  const fail = (what: string): never => {
    throw new SyntaxError(`JSON: ${what} at position ${i}`);
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 9 || c === 10 || c === 13) i++;
      else break;
    }
  };
  const value = (depth: number): JsonValue => {
    if (depth > 512) fail('nesting too deep');
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const o: { [k: string]: JsonValue } = {};
      ws();
      if (text[i] === '}') {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a string key');
        const k = str();
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        o[k] = value(depth + 1);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return o;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const a: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return a;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    return num();
  };
  const str = (): string => {
    i++; // opening quote
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 34) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 32) fail('control character in string');
      if (c === 92) {
        out += text.slice(start, i);
        const e = text[i + 1];
        i += 2;
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            const h = text.slice(i, i + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('bad \\u escape');
            out += String.fromCharCode(parseInt(h, 16));
            i += 4;
            break;
          }
          default:
            i -= 1;
            fail('bad escape');
        }
        start = i;
        continue;
      }
      i++;
    }
  };
  const NUM_RE = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
  const num = (): number | bigint => {
    NUM_RE.lastIndex = i;
    const m = NUM_RE.exec(text);
    if (!m || m[0] === '' || m[0] === '-') fail('unexpected character');
    const s = m![0];
    i += s.length;
    const v = Number(s);
    if (!m![1] && !m![2] && !Number.isSafeInteger(v)) return BigInt(s);
    return v;
  };
  const v = value(0);
  ws();
  if (i !== n) fail('trailing characters');
  return v;
}

/** JSON.stringify that writes BigInt as a plain number literal (for copying values out). */
export function stringifyJson(v: unknown, indent?: number): string {
  const marks: string[] = [];
  const s = JSON.stringify(
    v,
    (_k, x) => {
      if (typeof x === 'bigint') {
        marks.push(x.toString());
        return `\u0000big${marks.length - 1}\u0000`;
      }
      return x;
    },
    indent,
  );
  return s.replace(/"\\u0000big(\d+)\\u0000"/g, (_m, k) => marks[Number(k)]);
}
