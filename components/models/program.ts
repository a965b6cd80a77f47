import { readFileSync } from "node:fs";
import { join } from "node:path";
import { call } from "../shell/quote";
import { renderProgram, shellLib, SYSTEM } from "../shell/script";
import { modelStoreDir } from "../storage/paths";
import type { Storage } from "../storage/schema";
import type { Model } from "./schema";

const MODELS = shellLib(__dirname, "models");
/** The fetcher the storage owner runs (stdlib Python): it downloads, verifies and names models. */
export const MODELS_TOOL = readFileSync(join(__dirname, "fetch.py"), "utf8").trimEnd();

/**
 * On the storage node: converge puts the fetcher in place (root's, outside the tree) and its
 * state folder (the owner's, outside the tree), then runs it as the storage owner: every
 * declared model that is missing is downloaded, verified and named; one already there is never
 * replaced. Check runs it without the network: one `report: declared …` row per model. Remove
 * takes the fetcher; the models stay.
 */
export function renderModels(models: readonly Model[], s: Storage): string {
  // Only what the fetcher needs: each model's place, source and hash.
  const list = JSON.stringify(models.map(({ category, file, url, sha256 }) => ({ category, file, url, sha256 })));
  const store = modelStoreDir(s);
  // With intake: staging only modelshare-intake writes the store.
  const intake = s.intake === "staging" ? ["models_use_intake"] : [];
  return renderProgram({
    title: `the declared models of the model store ${store}`,
    libs: [SYSTEM, MODELS],
    storage: s,
    converge: { privileged: [...intake, call("models_tool", MODELS_TOOL), call("models_state_dir"), call("models_fetch", store, list)] },
    report: { privileged: [...intake, call("models_report", store, list)] },
    remove: { privileged: [call("models_remove")] },
  });
}
