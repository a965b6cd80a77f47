import { expect } from "vitest";
import { parseSite, SiteConfigError } from "../../components/config";

/** A config case that must be refused: what, how to break a valid site, the key, the message. */
export type Rejected = [what: string, mutate: (site: any) => void, key: string, says: RegExp];

/** The problems parseSite reports for `site()` broken by `mutate` ([] if it is accepted). */
export function problemsOf(site: () => any, mutate: (site: any) => void, homedir = "/home/ada"): string[] {
  const raw = site();
  mutate(raw);
  try {
    parseSite(raw, { homedir });
  } catch (e) {
    if (e instanceof SiteConfigError) return e.problems;
    throw e;
  }
  return [];
}

/** One of `found` names `key` (the key itself or a key inside it) and says `says`. */
export function expectProblem(found: string[], key: string, says: RegExp): void {
  const hit = found.find((p) => p.startsWith(`${key}: `) || p.startsWith(`${key}.`) || p.startsWith(`${key}[`));
  expect(hit, `problems were: ${JSON.stringify(found)}`).toBeDefined();
  expect(hit).toMatch(says);
}
