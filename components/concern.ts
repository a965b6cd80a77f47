import type { z } from "zod";
// Types only: config.ts composes the concerns, which in turn are written against the whole site.
import type { Site, SiteNode } from "./config";
import type { ContainerSpec } from "./services/spec";

/**
 * What a concern (storage, smb, nfs, services, installers) is to the rest of the program: its
 * config sections, its rules across sections, and what it plans on which node. config.ts builds
 * the schema and the rules from the list in concerns.ts; plan.ts the plan. Pure: no Pulumi.
 */
export interface Concern<S extends z.ZodRawShape = z.ZodRawShape> {
  name: string;
  /** Its `modelshare:<key>` sections, each with its defaults and descriptions. */
  sections: S;
  /** Rules that need more than its own sections (or more than one value of them). */
  check(site: Site, add: Add, ctx: RuleContext): void;
  /** Its plan items; `ctx.ready` names the items planned before it that a node's storage needs. */
  plan(site: Site, ctx: PlanContext): PlanItem[];
}

/** Every rule reports this way: the key path as written in the stack file, and what to do. */
export type Add = (key: string, message: string) => void;

export interface RuleContext {
  /** The storage root as the storage node sees it (a `~/` root expanded). */
  root: string;
  /** Every `modelshare:` section name (a password or SSH key may not take one). */
  sections: readonly string[];
}

export interface PlanContext {
  storageNode: SiteNode;
  /** The storage root as a node sees it: the root on the storage node, the NFS mount on a worker. */
  base(node: SiteNode): string;
  /**
   * The items after which a node's storage folders exist: on the storage node the layout (and,
   * with `links`, the link sets), on a worker its NFS mount.
   */
  ready(node: SiteNode, links?: boolean): string[];
}

/** One program of a plan item: its Command on `pulumi up`, `bash -s check` in `npm run check`. */
export interface PlannedProgram {
  /** Its Command's name (part of its URN): `<item>-converge`, `<item>-passwords`… */
  name: string;
  /** How check names it: the item for its converge program, else the program's name. */
  component: string;
  /** The rendered program (renderProgram). */
  text: string;
  /** Whether its `remove` verb undoes anything (configuration, never user data). */
  removes: boolean;
  /** Secret lines that follow it on stdin: these SMB users' passwords, one line each, in order. */
  smbPasswords?: readonly string[];
  /** False for a check-only program (a container: the docker provider makes it). */
  converges: boolean;
}

/**
 * A component on one node: its programs (run in order, each after the one before) and `after`,
 * the names of the items it waits for, which come earlier in the plan.
 */
export interface PlanItem {
  /** What it is: layout, links, smb, nfs-server, nfs-mount, docker, service, env, ollama, comfyui. */
  kind: string;
  /** Its component's type token: with `name`, its URN; never changed (a new URN replaces). */
  type: string;
  name: string;
  node: SiteNode;
  programs: PlannedProgram[];
  after: string[];
  /** Plain values its component shows as outputs. */
  outputs: Record<string, unknown>;
  /** A service's container (kind "service" only). */
  spec?: ContainerSpec;
}

/** A program as a concern gives it: `suffix` names it after its item (default `converge`). */
export interface ProgramSpec {
  suffix?: string;
  text: string;
  removes: boolean;
  smbPasswords?: readonly string[];
  converges?: boolean;
}

/** One place for the naming rule: `<item>-<suffix>`, checked as `<item>` when it converges it. */
export function planItem(item: Omit<PlanItem, "programs" | "outputs"> & { programs: ProgramSpec[]; outputs?: Record<string, unknown> }): PlanItem {
  return {
    ...item,
    outputs: item.outputs ?? {},
    programs: item.programs.map(({ suffix = "converge", converges = true, ...p }) => ({
      ...p,
      name: `${item.name}-${suffix}`,
      component: suffix === "converge" ? item.name : `${item.name}-${suffix}`,
      converges,
    })),
  };
}
