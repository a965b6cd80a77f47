import { z } from "zod";
import { parseUser } from "./userRules";
import { allowFromProblem, bindProblem } from "./bindRules";

/**
 * The `modelshare:services` section: one entry per service (ComfyUI, Fooocus, Forge, Ollama),
 * each with every key, its default and its description. The rules that need the rest of the
 * site (nodes, storage, NFS) are in checkServices (config.ts calls it).
 */

export const SERVICES = ["comfyui", "fooocus", "forge", "ollama"] as const;
export type ServiceName = (typeof SERVICES)[number];

/** What each service is called, where it writes, and the port its image listens on. */
export const SERVICE_INFO: Readonly<Record<ServiceName, { title: string; output?: string; port: number }>> = {
  comfyui: { title: "ComfyUI", output: "ComfyUI", port: 8188 },
  fooocus: { title: "Fooocus", output: "Fooocus", port: 7865 },
  forge: { title: "Forge", output: "Forge", port: 7860 },
  ollama: { title: "Ollama", port: 11434 },
};

/** The official Ollama image; the UIs publish none, so their `image` is required. */
export const OLLAMA_IMAGE = "ollama/ollama";

// A docker image reference: [registry[:port]/]path[:tag][@sha256:digest].
const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
const IMAGE = new RegExp(`^(?:[A-Za-z0-9.-]+(?::\\d+)?/)?${COMPONENT}(?:/${COMPONENT})*(?::\\w[\\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`);

/** Container paths a service may not use: the image's own system folders. */
const SYSTEM_DIRS = [
  "/",
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/lib",
  "/lib32",
  "/lib64",
  "/proc",
  "/run",
  "/sbin",
  "/sys",
  "/usr",
  "/var",
  "/var/run",
  "/var/lock",
  "/tmp",
];

export function containerPathProblem(p: string): string | undefined {
  if (!p.startsWith("/")) return "must be an absolute path inside the container (start with /)";
  if (/[\u0000-\u001f\u007f,]/.test(p)) return "must not contain a control character or a comma (docker's --mount syntax)";
  if (p === "/") return "is the container's root folder; use a folder of its own such as /models";
  if (p.endsWith("/")) return "must not end with /";
  if (p.split("/").some((s, i) => i > 0 && (s === "" || s === "." || s === ".."))) return "must be a clean path (no //, . or .. segments)";
  const system = SYSTEM_DIRS.find((d) => p === d || (d !== "/" && d !== "/var" && d !== "/tmp" && p.startsWith(`${d}/`)));
  if (system) return `is ${system === p ? "" : "inside "}the image's system folder ${system}; use a folder of its own such as /models`;
  return undefined;
}

const containerPath = (fallback: string, what: string) =>
  z
    .string()
    .superRefine((v, ctx) => {
      const problem = containerPathProblem(v);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .default(fallback)
    .describe(what);

const gpusSchema = z.union(
  [
    z.literal("all"),
    z.literal("none"),
    z.number().int().min(1).max(64),
    z.array(z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be a GPU index or UUID, e.g. "0" or "GPU-3a23c669-…"')).min(1),
  ],
  { error: 'must be all, none, a number of GPUs, or a list of device ids such as ["0", "1"]' },
);

export type Gpus = z.output<typeof gpusSchema>;

const nodeEntry = z
  .union(
    [
      z.string(),
      z.strictObject({
        name: z.string().describe("The worker node's name."),
        gpus: gpusSchema.default("none").describe("GPUs the container gets on this node: all, a count, device ids, or none."),
      }),
    ],
    { error: "must be a node name, or {name, gpus}" },
  )
  .transform((n) => (typeof n === "string" ? { name: n, gpus: "none" as Gpus } : n));

const portSchema = z.strictObject({
  host: z.number().int().min(1).max(65535).describe("Port on the node."),
  container: z.number().int().min(1).max(65535).describe("Port inside the container."),
  protocol: z.enum(["tcp", "udp"]).default("tcp").describe("tcp or udp."),
});

// Where the ports listen and who may connect: values checked here, the rest in bindRules.ts.
const bindSchema = z
  .string()
  .superRefine((v, ctx) => {
    const problem = bindProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .default("127.0.0.1");
const allowFromSchema = z
  .array(
    z.string().superRefine((v, ctx) => {
      const problem = allowFromProblem(v);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  )
  .default([]);

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

function serviceSchema(name: ServiceName) {
  const info = SERVICE_INFO[name];
  const defaults = {
    enabled: false,
    target: "nodes" as const,
    nodes: [],
    pull: "missing" as const,
    ports: [{ host: info.port, container: info.port, protocol: "tcp" as const }],
    bind: "127.0.0.1",
    allowFrom: [] as string[],
    env: {},
    modelsWritable: false,
    allowRootUser: false,
    paths: { models: "/models", outputs: "/outputs", inputs: "/inputs", workflows: "/workflows" },
  };
  return z
    .strictObject({
      enabled: z.boolean().default(false).describe(`Run ${info.title}'s container on its nodes.`),
      target: z
        .enum(["nodes", "kubernetes"], { error: "must be nodes or kubernetes" })
        .default("nodes")
        .describe(
          "Where it runs: nodes (a container on each worker node listed in nodes) or kubernetes (a Deployment in the cluster of modelshare:kubernetes).",
        ),
      nodes: z
        .array(nodeEntry)
        .default([])
        .describe('Worker nodes that run it: names, or {name, gpus} (gpus: all, a count, device ids such as ["0"], or none, the default).'),
      image: z
        .string()
        .regex(IMAGE, "must be a docker image reference such as ghcr.io/owner/name:tag")
        .optional()
        .describe(
          name === "ollama"
            ? `Image (default ${OLLAMA_IMAGE}).`
            : `Image; required (modelshare names no default image for ${info.title}; the README lists widely used ones and the folders each expects).`,
        ),
      pull: z
        .enum(["missing", "never"], { error: "must be missing or never" })
        .default("missing")
        .describe(
          "missing: docker pulls the image when the node lacks it; never: the image must already be on the node (built or imported there), else the run stops.",
        ),
      ports: z.array(portSchema).default(defaults.ports).describe(`Published ports (default ${info.port} on ${info.port}).`),
      bind: bindSchema.describe(
        "The node address its ports are published on: 127.0.0.1 (the default: only the node itself), node (the node's own address, nodes[].host, which must then be an IPv4 address), or one IPv4 address of its one node. Any other than loopback needs allowFrom.",
      ),
      allowFrom: allowFromSchema.describe(
        "IPv4 addresses and networks that may connect when bind is not loopback (192.168.0.0/24, 192.168.0.20); the node drops new connections from every other address (an iptables chain in DOCKER-USER).",
      ),
      env: z
        .record(z.string(), z.string())
        .superRefine((env, ctx) => {
          for (const k of Object.keys(env)) {
            if (!envName.test(k))
              ctx.addIssue({ code: "custom", path: [k], message: "must be an environment variable name (letters, digits and _, not starting with a digit)" });
          }
        })
        .default({})
        .describe("Environment variables for the container (not secret: they are kept in the stack's state in plain text)."),
      modelsWritable: z
        .boolean()
        .default(false)
        .describe("Mount the models read-write (for a service that downloads models, e.g. ComfyUI Manager or ollama pull)."),
      user: z
        .string()
        .superRefine((v, ctx) => {
          const ids = parseUser(v);
          if (typeof ids === "string") ctx.addIssue({ code: "custom", message: ids });
        })
        .optional()
        .describe(
          "uid:gid the container runs as (default: the storage owner's, so writes work under NFS root_squash); decimal numbers without leading zeros, and uid or gid 0 needs allowRootUser.",
        ),
      allowRootUser: z
        .boolean()
        .default(false)
        .describe(
          "Allow user 0 (root in the container): a root container writes as root wherever its bind mounts lead, even through a link the storage owner planted between a check and the mount.",
        ),
      paths: z
        .strictObject({
          models: containerPath("/models", "Where the image looks for its models folder (each category is mounted under it by the mapping table)."),
          outputs: containerPath("/outputs", "Where the image writes its outputs."),
          inputs: containerPath("/inputs", "Where the image reads its inputs (mounted read-only)."),
          workflows: containerPath("/workflows", "Where the image keeps its workflows."),
        })
        .default(defaults.paths)
        .describe("Folders inside the container."),
    })
    .default(defaults);
}

export const servicesSchema = z
  .strictObject({
    comfyui: serviceSchema("comfyui"),
    fooocus: serviceSchema("fooocus"),
    forge: serviceSchema("forge"),
    ollama: serviceSchema("ollama"),
  })
  .default({
    comfyui: serviceSchema("comfyui").parse(undefined),
    fooocus: serviceSchema("fooocus").parse(undefined),
    forge: serviceSchema("forge").parse(undefined),
    ollama: serviceSchema("ollama").parse(undefined),
  });

export type Services = z.output<typeof servicesSchema>;
export type Service = Services[ServiceName];
