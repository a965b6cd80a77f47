import { planSite } from "../../components/plan";
import type { StackSite } from "../../components/stackConfig";
import { checkSite, formatText } from "../../ops/check";

/**
 * `npm run check` on a site the lab has just converged, reduced to what a lab test asserts:
 * every finding (a node that could not be checked, drift, a refusal), and per node the
 * components the check reported beside the programs the plan has there. A freshly converged
 * site has no findings, and every planned program was checked: one that was silently skipped
 * shows as a difference between `checked` and `planned`.
 */
export async function checkConverged(site: StackSite) {
  const nodes = await checkSite(site);
  const findings = nodes.flatMap((n) => [
    ...(n.error ? [`${n.node}: could not be checked: ${n.error}`] : []),
    ...n.components.flatMap((c) => [
      ...c.drift.map((d) => `${n.node} ${c.component}: ${d}`),
      ...(c.refusal ? [`${n.node} ${c.component}: converge would refuse: ${c.refusal}`] : []),
    ]),
  ]);
  const checked = Object.fromEntries(nodes.map((n) => [n.node, n.components.map((c) => componentOf(c.component)).sort()]));
  return { findings, checked, planned: plannedPrograms(site), text: formatText(nodes) };
}

/**
 * The programs the plan has for the site, by node (sorted), named as the check names the
 * component each belongs to. The one place in the lab suite that knows how the plan names its
 * programs: adapt it here when that changes.
 */
export function plannedPrograms(site: StackSite): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const p of planSite(site.config)) for (const { component } of p.programs) (out[p.node.name] ??= []).push(componentOf(component));
  for (const names of Object.values(out)) names.sort();
  return out;
}

/**
 * A program's name as the check reports its component: `<item>-converge` as `<item>`, the
 * others (`-passwords`, `-container`) as they are. Applied to both sides, so the comparison
 * holds whether or not the check keeps the suffix.
 */
const componentOf = (name: string) => name.replace(/-converge$/, "");
