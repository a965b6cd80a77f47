/**
 * The one quoting helper: every value interpolated into a rendered script goes through it.
 *
 * POSIX single quotes keep every byte literal except `'` itself, which is closed, escaped and
 * reopened. NUL cannot be carried by any shell word, so it is refused instead of truncated.
 */
export function quote(value: string | number): string {
  const text = String(value);
  if (text.includes("\0")) {
    throw new Error("modelshare: refusing to quote a value that contains a NUL byte");
  }
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A shell command line: the command word and its arguments, each quoted. */
export function call(fn: string, ...args: (string | number)[]): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(fn)) {
    throw new Error(`modelshare: not a shell function name: ${fn}`);
  }
  return [fn, ...args.map(quote)].join(" ");
}

/**
 * A call whose arguments come in rows (e.g. path and mode per folder): one row a line, joined
 * by backslash continuations, so a long step still reads as a list. `lead`: arguments before
 * the rows, on the first line.
 */
export function callRows(fn: string, rows: ReadonlyArray<ReadonlyArray<string | number>>, lead: ReadonlyArray<string | number> = []): string {
  return [call(fn, ...lead), ...rows.map((row) => `  ${row.map(quote).join(" ")}`)].join(" \\\n");
}
