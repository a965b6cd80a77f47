import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { recordPlan, RECORDED_SITES } from "./helpers/recordPlan";

/**
 * An upgrade must update stacks in place: a replaced Command runs its delete (links removed,
 * mounts unmounted). So the resources a site declares keep their URNs, parents, options and
 * program texts across refactors: test/fixtures/plan-recorded.json was recorded before the plan
 * carried its programs (issue 18). A deliberate change re-records it with
 * `RECORD_PLAN=1 npx vitest run test/plan.recorded.test.ts` and says why in its commit.
 */
const FILE = join(__dirname, "fixtures", "plan-recorded.json");

describe("the recorded plan", () => {
  const recorded = process.env.RECORD_PLAN ? {} : (JSON.parse(readFileSync(FILE, "utf8")) as Record<string, unknown>);
  const fresh: Record<string, unknown> = {};
  it.each(Object.keys(RECORDED_SITES))("the %s site declares the same resources, options and programs as recorded", async (site) => {
    const { config, secretKeys } = RECORDED_SITES[site];
    fresh[site] = await recordPlan(config, secretKeys);
    if (process.env.RECORD_PLAN) {
      writeFileSync(FILE, `${JSON.stringify({ ...JSON.parse(readFileSync(FILE, "utf8").trim() || "{}"), [site]: fresh[site] }, null, 1)}\n`);
      return;
    }
    const urns = (xs: unknown) => (xs as Array<{ urn: string }>).map((r) => r.urn);
    expect(urns(fresh[site])).toEqual(urns(recorded[site])); // first the names: the clearest diff
    expect(fresh[site]).toEqual(recorded[site]);
  });
});
