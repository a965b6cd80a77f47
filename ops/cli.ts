import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";
import { SiteConfigError } from "../components/config";
import { siteFromConfig, TOKEN_KEY } from "../components/stackConfig";
import { checkSite, exitCode, formatJson, formatText } from "./check";
import { formatHtml } from "./html";
import { DEDUPE_USAGE, dedupeSite, formatDedupe } from "./dedupe";
import { stackMessage } from "./stackErrors";
import { printableLines, safeJson } from "./text";
import { warmMain } from "./warm";

/**
 * `npm run check -- <stack> [--json]`, `npm run repair -- <stack>`, `npm run dedupe -- <stack>` (ops/dedupe.ts) and `npm run warm` (ops/warm.ts). All read the stack's
 * config the way `pulumi up` does, secrets included, through Pulumi's Automation API (the
 * Pulumi CLI with your backend and PULUMI_CONFIG_PASSPHRASE, as for `pulumi up`).
 */
const ROOT = join(__dirname, "..");
const USAGE = [
  `usage: npm run check -- <stack> [--json] [--html FILE]   |   npm run repair -- <stack>   |   ${DEDUPE_USAGE.slice(7)}`,
  "exit status: 0 nothing drifted (check) or done; 1 drift, a finding, or a failed repair; 2 a node or the stack could not be reached, or a bad call",
].join("\n");

async function openStack(name: string): Promise<Stack> {
  // The dev stack lives in the file backend `npm run dev` uses, with an empty passphrase.
  if (name === "dev" && !process.env.PULUMI_BACKEND_URL) {
    process.env.PULUMI_BACKEND_URL = `file://${join(ROOT, ".pulumi-state")}`;
    process.env.PULUMI_CONFIG_PASSPHRASE ??= "";
  }
  try {
    return await LocalWorkspace.selectStack({ stackName: name, workDir: ROOT });
  } catch (e) {
    const said = String((e as Error).message)
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !/^(code|stdout|stderr|err\?):/.test(l));
    throw new Error(stackMessage(name, said.at(-1) ?? ""));
  }
}

async function readSite(stack: Stack) {
  let all: Awaited<ReturnType<Stack["getAllConfig"]>>;
  try {
    all = await stack.getAllConfig();
  } catch (e) {
    // Reading the config decrypts its secrets: a wrong or missing passphrase fails here.
    const said = String((e as Error).message)
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !/^(code|stdout|stderr|err\?):/.test(l));
    throw new Error(stackMessage(stack.name, said.at(-1) ?? ""));
  }
  const values = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.value]));
  return siteFromConfig(values, (k) => all[k]?.secret === true);
}

async function check(stackName: string, json: boolean, html?: string): Promise<number> {
  const site = await readSite(await openStack(stackName));
  const nodes = await checkSite(site);
  process.stdout.write(json ? formatJson(nodes) : formatText(nodes, stackName));
  if (html) writeFileSync(html, formatHtml(site.config, nodes, stackName));
  return exitCode(nodes);
}

/**
 * Repair = converge again, as an in-place update: a new convergeToken changes every program's
 * text (its stdin), so `pulumi up` updates each Command, which re-runs its create. Never a
 * replace: that would run the deletes first (links removed). The token stays in the stack
 * file as the record of the last repair, so a plain `pulumi up` afterwards changes nothing.
 */
async function repair(stackName: string): Promise<number> {
  const stack = await openStack(stackName);
  await readSite(stack); // refuse a bad config before anything runs
  const token = new Date().toISOString();
  await stack.setConfig(`modelshare:${TOKEN_KEY}`, { value: token });
  process.stdout.write(`modelshare: set modelshare:${TOKEN_KEY} to ${token}; converging every node (pulumi up --refresh)\n`);
  // With a refresh: a container stopped or removed by hand is then seen as such and made again
  // (the docker provider reads its state; a Command's refresh reads nothing).
  const result = await stack.up({ refresh: true, onOutput: (out) => process.stdout.write(out) });
  process.stdout.write(`modelshare: repair done (${result.summary.result})\n`);
  return result.summary.result === "succeeded" ? 0 : 1;
}

async function dedupe(stackName: string): Promise<number> {
  const result = await dedupeSite(await readSite(await openStack(stackName)));
  if (typeof result === "string") {
    process.stderr.write(`modelshare: ${result}\n`);
    return 2;
  }
  process.stdout.write(printableLines(formatDedupe(result)));
  return result.error ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const [verb, stackName, ...flags] = argv;
  if (verb === "warm") return warmMain(argv.slice(1), async (name) => readSite(await openStack(name)));
  // --html FILE: the page (ops/html.ts) besides the report.
  const at = flags.indexOf("--html");
  const html = at >= 0 ? flags[at + 1] : undefined;
  if (at >= 0) flags.splice(at, 2);
  const unknown = flags.filter((f) => f !== "--json");
  if (
    !stackName ||
    stackName.startsWith("-") ||
    unknown.length > 0 ||
    (verb !== "check" && flags.length > 0) ||
    (at >= 0 && (!html || html.startsWith("-") || verb !== "check"))
  ) {
    if (verb === "check" && argv.includes("--json")) process.stdout.write(`${safeJson({ exitCode: 2, error: USAGE })}\n`);
    else process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (verb === "check") return check(stackName, flags.includes("--json"), html);
  if (verb === "repair") return repair(stackName);
  if (verb === "dedupe") return dedupe(stackName);
  process.stderr.write(`${USAGE}\n`);
  return 2;
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => process.exit(code),
  (e: Error) => {
    // With --json, monitoring reads JSON on every path: the error too, with its exit code.
    if (argv[0] === "check" && argv.includes("--json")) {
      const problems = e instanceof SiteConfigError ? e.problems : undefined;
      process.stdout.write(
        `${safeJson({ exitCode: 2, error: e instanceof SiteConfigError ? "the site config is not valid" : e.message, ...(problems ? { problems } : {}) })}\n`,
      );
      process.exit(2);
    }
    // A message may quote what a node or the Pulumi CLI said: shown, never acted on by the terminal.
    process.stderr.write(printableLines(e instanceof SiteConfigError ? `${e.message}\n` : `modelshare: ${e.message}\n`));
    process.exit(2);
  },
);
