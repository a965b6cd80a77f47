/**
 * Text from a node is data, not something to hand a terminal as it is. The programs escape
 * every message (escape_line in components/shell/prelude.sh: `\\`, `\n`, `\t`, `\r`, `\xHH`);
 * these are the two ends of that on this side.
 */

// C0 and C1 controls, DEL, the line and paragraph separators and the bidi controls: what a
// terminal acts on or reorders instead of showing.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/gu;
const NAMED: Record<string, string> = { "\n": "\\n", "\t": "\\t", "\r": "\\r" };
const hex = (c: string) => {
  const n = c.codePointAt(0)!;
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u{${n.toString(16)}}`;
};

/**
 * One line with nothing a terminal acts on: every unsafe character as an escape. Backslashes
 * stay, so a text the program escaped already comes out as it was.
 */
export const printable = (text: string): string => text.replace(UNSAFE, (c) => NAMED[c] ?? hex(c));

/** As printable, but line breaks stay (a message of several lines). */
export const printableLines = (text: string): string => text.split("\n").map(printable).join("\n");

/**
 * The text escape_line escaped, back as it was: the bytes it stood for, read as UTF-8 (a byte
 * that is not UTF-8 becomes U+FFFD: the escaped form is the exact one).
 */
export const unescapeLine = (escaped: string): string => unescapeBytes(escaped).toString("utf8");

/** The bytes an escaped line stands for, exactly. */
export function unescapeBytes(escaped: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < escaped.length; i++) {
    const c = escaped[i];
    const next = escaped[i + 1];
    if (c === "\\" && next === "x" && /^[0-9a-f]{2}$/.test(escaped.slice(i + 2, i + 4))) {
      bytes.push(parseInt(escaped.slice(i + 2, i + 4), 16));
      i += 3;
    } else if (c === "\\" && next !== undefined && "\\ntr".includes(next)) {
      bytes.push({ "\\": 0x5c, n: 0x0a, t: 0x09, r: 0x0d }[next]!);
      i += 1;
    } else {
      const cp = escaped.codePointAt(i)!;
      if (cp > 0xffff) i += 1;
      bytes.push(...Buffer.from(String.fromCodePoint(cp), "utf8"));
    }
  }
  return Buffer.from(bytes);
}

// What JSON.stringify leaves raw inside strings although a terminal acts on it (it escapes C0).
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/gu;

/** JSON text that no terminal acts on: those characters as \uXXXX (they occur only in strings). */
export const safeJson = (value: unknown): string =>
  JSON.stringify(value, null, 2).replace(UNSAFE_IN_JSON, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, "0")}`);
