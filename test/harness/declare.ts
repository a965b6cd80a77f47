import * as pulumi from "@pulumi/pulumi";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import { deserializeProperties } from "@pulumi/pulumi/runtime/rpc";

// The runtime's state store is internal (no typings); setMocks sets these same flags on it.
const { getStore } = require("@pulumi/pulumi/runtime/state") as { getStore(): Record<string, unknown> };

/**
 * Declares a program's resources under Pulumi's mocks and records what the engine would be
 * told about each one: type, name, parent, dependencies, provider, options and inputs. This is
 * the first half of the lab's stand-in for the engine (see test/harness/README.md).
 */
export interface Declared {
  urn: string;
  type: string;
  name: string;
  parent: string;
  custom: boolean;
  provider: string;
  /** URNs this resource depends on (explicit dependsOn and inputs' resources). */
  dependencies: string[];
  deleteBeforeReplace: boolean;
  /** Inputs as the engine would store them; secrets still wrapped (see isSecretValue). */
  inputs: Record<string, unknown>;
}

const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

/** A secret as it reaches the engine: wrapped with Pulumi's secret signature. */
export function isSecretValue(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SIG_KEY] === SECRET_SIG;
}

/** The inputs with every secret unwrapped: what the provider itself would receive. */
export function reveal<T>(v: T): T {
  if (isSecretValue(v)) return reveal(v.value) as T;
  if (Array.isArray(v)) return v.map(reveal) as T;
  // Plain objects only: assets and other class instances stay as they are.
  if (typeof v === "object" && v !== null && [Object.prototype, null].includes(Object.getPrototypeOf(v))) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, reveal(x)])) as T;
  }
  return v;
}

class RecordingMonitor extends MockMonitor {
  readonly declared: Declared[] = [];
  async registerResource(req: any, callback: (err: any, res: any) => void): Promise<void> {
    const record = {
      type: req.getType() as string,
      name: req.getName() as string,
      parent: req.getParent() as string,
      custom: req.getCustom() as boolean,
      provider: req.getProvider() as string,
      dependencies: req.getDependenciesList() as string[],
      deleteBeforeReplace: req.getDeletebeforereplace() as boolean,
      inputs: deserializeProperties(req.getObject()),
    };
    return super.registerResource(req, (err: any, res: any) => {
      if (!err) this.declared.push({ urn: res.getUrn(), ...record });
      callback(err, res);
    });
  }
}

export interface DeclareOptions {
  stack: string;
  /** Stack config, `modelshare:key` -> string (objects as JSON). */
  config: Record<string, string>;
  /** Keys of `config` that are secrets. */
  secretKeys?: string[];
}

/** Runs `program` under mocks with the given config; returns every resource it declared. */
export async function declare(options: DeclareOptions, program: () => unknown): Promise<Declared[]> {
  const monitor = new RecordingMonitor({
    newResource: (args) => ({ id: `${args.name}-id`, state: { ...args.inputs, stdout: "", stderr: "" } }),
    call: (args) => {
      throw new Error(`modelshare declares no provider function calls, yet ${args.token} was called`);
    },
  });
  pulumi.runtime.setMockOptions(monitor, "modelshare", options.stack, false);
  // What setMocks does after setMockOptions: the engine supports secrets, so they reach it
  // wrapped (without this every secret would arrive as plain text).
  Object.assign(getStore(), { supportsSecrets: true, supportsResourceReferences: true, supportsOutputValues: false });
  pulumi.runtime.setAllConfig(options.config, options.secretKeys ?? []);
  await program();
  await pulumi.runtime.disconnect();
  return monitor.declared;
}
