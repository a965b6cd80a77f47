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

/** What zod says by itself: a message that still holds it was never given a fix. */
export const RAW_WORDING = /Invalid input|Invalid option|Unrecognized key|Too (small|big)|expected \w+, received/;

/** One of `found` names `key` (the key itself or a key inside it) and says `says`. */
export function expectProblem(found: string[], key: string, says: RegExp): void {
  // The schema library's own words name no fix: none may reach a person (issue 21).
  for (const p of found) expect(p).not.toMatch(RAW_WORDING);
  const hit = found.find((p) => p.startsWith(`${key}: `) || p.startsWith(`${key}.`) || p.startsWith(`${key}[`));
  expect(hit, `problems were: ${JSON.stringify(found)}`).toBeDefined();
  expect(hit).toMatch(says);
}
