import { posix } from "node:path";
import type { Storage } from "./schema";
import { call, callRows } from "../shell/quote";
import { chmodMode, DIRS, ownerArgs, renderProgram, shellLib } from "../shell/script";
import { categoryDir, layoutDirs, projectDir, projectDirs, INTAKE_MODE, SKELETON_MODE, stagingDir } from "./paths";

const SPACE = shellLib(__dirname, "space");
const REPORT = shellLib(__dirname, "report");
const PROJECTS = shellLib(__dirname, "projects");
const INTAKE = shellLib(__dirname, "intake");

/**
 * Root checks the free space and that nothing above the root is the owner's, then makes the
 * skeleton (the root and every folder above the leaves: root's, 0755) and the leaves (the
 * owner's), parents first, each from inside; the owner makes what a project holds. Checking, it
 * also reports what each category, output folder and project holds.
 */
export function renderStorageLayout(s: Storage, projects: readonly string[] = []): string {
  const owner = ownerArgs(s);
  // The skeleton is root's wherever the owner is managed; unmanaged, it stays the runner's.
  const held = owner.uid ? { uid: "0", gid: "0" } : owner;
  // The store's folders are the intake account's with staging: ensure_intake_dirs, below.
  const tree = [
    ...layoutDirs(s).filter((d) => d.path !== s.root && d.holder !== "intake"),
    ...projects.map((id) => ({ path: projectDir(s, id), mode: s.modes.user, holder: "owner" as const })),
  ];
  const inProjects = projectDirs(s, projects).filter((d) => !projects.some((id) => d.path === projectDir(s, id)));
  return renderProgram({
    title: `storage layout under ${s.root}`,
    libs: [SPACE, DIRS, PROJECTS, REPORT, ...(s.intake === "staging" ? [INTAKE] : [])],
    storage: s,
    converge: {
      privileged: [
        call("check_free_space", s.root, Math.round(s.minFreeGB * 1e9), "storage.minFreeGB"),
        call("require_safe_ancestors", s.root, owner.uid, owner.gid),
        call("ensure_root", s.root, held.uid, held.gid, chmodMode(SKELETON_MODE), "storage.root"),
        ...(s.intake === "staging" ? ["ensure_intake_account"] : []),
        callRows(
          "ensure_tree",
          tree.map((d) => [d.path, d.holder, chmodMode(d.mode)]),
          [owner.uid, owner.gid],
        ),
        // The store's folders last: the staging folders their refusal points to exist by then.
        ...(s.intake === "staging"
          ? [
              callRows(
                "ensure_intake_dirs",
                s.categories.map((c) => [categoryDir(s, c), chmodMode(INTAKE_MODE), stagingDir(s, c)]),
              ),
            ]
          : []),
      ],
      owner: [
        ...(inProjects.length
          ? [
              callRows(
                "ensure_dirs",
                inProjects.map((d) => [d.path, chmodMode(d.mode)]),
              ),
            ]
          : []),
        ...projects.map((id) => call("project_metadata", projectDir(s, id), JSON.stringify(id))),
        call("projects_unlisted", posix.join(s.root, s.projects), ...projects),
      ],
    },
    // The storage report: size and files per model category, output folder and project.
    report: {
      owner: [
        call("report_usage", "category", ...s.categories.map((c) => categoryDir(s, c))),
        call("report_usage", "output", ...s.outputs.map((o) => posix.join(s.root, s.user, "output", o))),
        call("report_children", "project", posix.join(s.root, s.projects)),
      ],
    },
  });
}
