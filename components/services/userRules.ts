/**
 * A container's `user: "uid:gid"`, parsed to numbers: docker (and the kernel) read "00:1000"
 * and "000:000" as uid 0, so rules decide on the numbers, and the text docker gets is written
 * one way only (no leading zeros, no sign, no space), the way the rules read it.
 */

/** The largest id: 4294967295 is (uid_t)-1, "no id", to the kernel. */
export const MAX_ID = 4294967294;

export interface UserIds {
  uid: number;
  gid: number;
}

export function parseUser(text: string): UserIds | string {
  const m = /^(\d+):(\d+)$/.exec(text);
  if (!m) return 'must be uid:gid in numbers, e.g. "1000:1000"';
  const [uid, gid] = [m[1], m[2]];
  if (/^0\d/.test(uid) || /^0\d/.test(gid)) {
    return `writes a number with leading zeros, which docker reads as ${Number(uid)}:${Number(gid)}; write "${Number(uid)}:${Number(gid)}"`;
  }
  if (Number(uid) > MAX_ID || Number(gid) > MAX_ID) return `holds an id above ${MAX_ID}, the largest Linux allows`;
  return { uid: Number(uid), gid: Number(gid) };
}

/** uid or gid 0: root's (a root uid, or root's group, writes what root's would). */
export const isRootUser = (ids: UserIds): boolean => ids.uid === 0 || ids.gid === 0;
