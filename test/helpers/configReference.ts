import type { z } from "zod";
import { siteSchema } from "../../components/config";

/**
 * The README's config reference, derived from the zod schema (keys, defaults, descriptions),
 * so the two cannot drift apart: test/readme.test.ts checks the README holds exactly this.
 */
type Any = z.ZodType & { _zod: { def: Record<string, any> }; description?: string };

function unwrap(s: Any): { inner: Any; defaultValue?: unknown; description?: string } {
  let description = s.description;
  let defaultValue: unknown;
  let inner = s;
  for (;;) {
    const def = inner._zod.def;
    if (def.type === "default") { defaultValue = def.defaultValue; inner = def.innerType; }
    else if (def.type === "optional") inner = def.innerType;
    else if (def.type === "pipe") inner = def.in;
    else break;
    description ??= inner.description;
  }
  return { inner, defaultValue, description };
}

const show = (v: unknown) => (v === undefined ? "required" : `\`${JSON.stringify(v)}\``);

function rows(prefix: string, shape: Record<string, Any>, out: string[]): void {
  for (const [key, field] of Object.entries(shape)) {
    const { inner, defaultValue, description } = unwrap(field);
    const path = `${prefix}.${key}`;
    const def = inner._zod.def;
    if (def.type === "object" && key !== "owner") {
      rows(path, def.shape, out);
      continue;
    }
    const shown = field._zod.def.type === "optional" ? "unset" : show(defaultValue);
    out.push(`| \`${path}\` | ${shown} | ${(description ?? "").replace(/\|/g, "\\|")} |`);
  }
}

export function configReference(): string {
  const out = ["| key | default | what it means |", "| --- | --- | --- |"];
  const sections = (siteSchema as unknown as Any)._zod.def.shape as Record<string, Any>;
  for (const [section, schema] of Object.entries(sections)) {
    const { inner, defaultValue, description } = unwrap(schema);
    const def = inner._zod.def;
    const element = def.type === "array" ? unwrap(def.element).inner._zod.def : undefined;
    if (element && element.type !== "object") out.push(`| \`${section}\` | ${show(defaultValue)} | ${(description ?? "").replace(/\|/g, "\\|")} |`);
    else if (element) rows(`${section}[]`, element.shape, out);
    else rows(section, def.shape, out);
  }
  return out.join("\n");
}
