import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { recordPlan, RECORDED_SITES, type RecordedResource } from "./helpers/recordPlan";

/**
 * An upgrade must update stacks in place: a replaced Command runs its delete (links removed,
 * mounts unmounted). So the resources a site declares keep their URNs, parents, options and
 * program texts across refactors: test/fixtures/plan-recorded.json was recorded before the plan
 * carried its programs (issue 18). Dependencies may only grow: each Command now also waits for
 * what its component waits for (the engine records it; an added dependency never replaces). A
 * deliberate change re-records it with `RECORD_PLAN=1 npx vitest run test/plan.recorded.test.ts`
 * and says why in its commit.
 */
const FILE = join(__dirname, "fixtures", "plan-recorded.json");

describe("the recorded plan", () => {
  const recorded = process.env.RECORD_PLAN ? {} : (JSON.parse(readFileSync(FILE, "utf8")) as Record<string, RecordedResource[]>);
  it.each(Object.keys(RECORDED_SITES))("the %s site declares the same resources, options and programs as recorded", async (site) => {
    const { config, secretKeys } = RECORDED_SITES[site];
    const fresh = await recordPlan(config, secretKeys);
    if (process.env.RECORD_PLAN) {
      writeFileSync(FILE, `${JSON.stringify({ ...JSON.parse(readFileSync(FILE, "utf8").trim() || "{}"), [site]: fresh }, null, 1)}\n`);
      return;
    }
    const before = recorded[site];
    // First the names (the clearest diff), then each resource's programs and options.
    expect(fresh.map((r) => r.urn)).toEqual(before.map((r) => r.urn));
    for (const [i, was] of before.entries()) {
      const { dependencies, ...now } = fresh[i];
      const { dependencies: wasDeps, ...wasRest } = was;
      expect(now, was.urn).toEqual(wasRest);
      expect(dependencies, `${was.urn}: a dependency was lost`).toEqual(expect.arrayContaining(wasDeps));
    }
  });
});
