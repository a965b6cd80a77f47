import { z } from "zod";

/**
 * `modelshare:catalog`: what modelshare knows about the files in the model store. `npm run
 * check` judges every model (complete, well formed, free of code), hashes it and reports
 * findings, duplicates and content that changed under the same name; the index it keeps makes
 * a later check read only what is new.
 */
export const catalogSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe(
        "Judge and hash every file in the model store on `npm run check` (run as the storage owner; the first check on an existing store reads every model once, later checks only new or changed files).",
      ),
    stableSeconds: z
      .number()
      .int()
      .min(1)
      .max(86_400)
      .default(60)
      .describe("A file modified less than this many seconds ago is still being written: it is left alone (reported as unstable) until it settles."),
  })
  .default({ enabled: true, stableSeconds: 60 });

export type Catalog = z.output<typeof catalogSchema>;
