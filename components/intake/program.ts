import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Catalog } from "../catalog/schema";
import { call } from "../shell/quote";
import { ownerArgs, renderProgram, shellLib, SYSTEM } from "../shell/script";
import { categoryDir, rejectedDir, stagingDir } from "../storage/paths";
import type { Storage } from "../storage/schema";

const INTAKE = shellLib(__dirname, "intake");
/** The intake (stdlib Python): root runs it only to start its steps as the owner and as the intake. */
export const INTAKE_TOOL = readFileSync(join(__dirname, "intake.py"), "utf8").trimEnd();
const TOOL_PATH = "/usr/local/lib/modelshare/intake.py";
const CONFIG_PATH = "/etc/modelshare/intake.json";
/** An incomplete upload waits this long for the rest before it is rejected (an upload may pause). */
export const INTAKE_GRACE_SECONDS = 3600;

/**
 * What the intake service reads: who the owner and the intake are, how long a file must be left
 * alone before it counts as settled, and each category's three folders. The intake's ids are
 * filled in on the node (`@intake_uid@`), where the storage layout made its account.
 */
export function renderIntakeConfig(s: Storage, catalog: Catalog): string {
  const owner = ownerArgs(s);
  const categories = s.categories.map((c) => ({ name: c, staging: stagingDir(s, c), store: categoryDir(s, c), rejected: rejectedDir(s, c) }));
  const json = JSON.stringify(
    {
      owner: [Number(owner.uid), Number(owner.gid)],
      intake: ["@intake_uid@", "@intake_gid@"],
      stable_seconds: catalog.stableSeconds,
      grace_seconds: INTAKE_GRACE_SECONDS,
      categories,
    },
    null,
    2,
  );
  return json.replace('"@intake_uid@"', "@intake_uid@").replace('"@intake_gid@"', "@intake_gid@");
}

/** The intake's service (root, orchestrating only) and the timer that runs it every half minute. */
export function renderIntakeUnits(): { service: string; timer: string } {
  return {
    service: [
      "# Written by modelshare; removed on destroy.",
      "[Unit]",
      "Description=modelshare: move uploads that validate from staging into the model store",
      `ConditionPathExists=${CONFIG_PATH}`,
      "After=local-fs.target remote-fs.target",
      "",
      "[Service]",
      "Type=oneshot",
      `ExecStart=/usr/bin/python3 -I ${TOOL_PATH} run ${CONFIG_PATH}`,
      "NoNewPrivileges=yes",
      "PrivateTmp=yes",
      // Copying a model is bulk work: it must not slow the services reading the store.
      "Nice=10",
      "IOSchedulingClass=idle",
    ].join("\n"),
    timer: [
      "# Written by modelshare; removed on destroy.",
      "[Unit]",
      "Description=modelshare: look at the staging folders every half minute",
      "",
      "[Timer]",
      "OnActiveSec=10s",
      "OnUnitInactiveSec=30s",
      "AccuracySec=5s",
      "",
      "[Install]",
      "WantedBy=timers.target",
    ].join("\n"),
  };
}

/**
 * On the storage node, with `storage.intake: staging`: converge puts the tool beside the
 * catalog's, writes its config and starts its timer; check also lists what waits in staging
 * (`report: staging …`, as the owner). Remove takes the timer, service, config and tool; the
 * account, the folders and every file in them stay.
 */
export function renderIntake(s: Storage, catalog: Catalog): string {
  const units = renderIntakeUnits();
  return renderProgram({
    title: `the intake of uploads into the model store ${s.root}`,
    libs: [SYSTEM, INTAKE],
    storage: s,
    converge: {
      privileged: [call("intake_tool", INTAKE_TOOL), call("intake_config", renderIntakeConfig(s, catalog)), call("intake_units", units.service, units.timer)],
    },
    report: {
      owner: [call("intake_report", String(catalog.stableSeconds), ...s.categories.flatMap((c) => [c, stagingDir(s, c), categoryDir(s, c)]))],
    },
    remove: { privileged: ["intake_remove"] },
  });
}
