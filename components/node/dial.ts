/**
 * How a node is dialled, by `pulumi up` (the command provider's connection) and by `npm run
 * check` alike: a failed dial is retried a few times, then the run fails naming the node. Apart
 * from node/command.ts so that the check tool reads it without loading Pulumi.
 */
export const DIAL = { perDialTimeout: 10, dialErrorLimit: 3 } as const;
