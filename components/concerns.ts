import { cache } from "./cache/index";
import { catalog } from "./catalog/index";
import { installers } from "./installers/index";
import { intake } from "./intake/index";
import { kubernetes } from "./kubernetes/index";
import { models } from "./models/index";
import { nfs } from "./nfs/index";
import { services } from "./services/index";
import { smb } from "./smb/index";
import { storage } from "./storage/index";

/**
 * Every concern, in plan order: a concern waits only for those before it. A new concern is a
 * folder with an index.ts exporting its Concern, plus one entry here.
 */
export const CONCERNS = [storage, catalog, intake, models, smb, cache, nfs, services, installers, kubernetes] as const;
