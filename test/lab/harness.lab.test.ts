import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { run } from "../harness/converge";
import { declare } from "../harness/declare";
import { labNodes, onNode } from "../harness/lab";

/**
 * The harness itself against a real sshd with Debian's default config: environment goes as
 * SSH env requests (only LANG and LC_* pass AcceptEnv), stdin is stdin, CopyToRemote copies,
 * and a wrong host key is refused.
 */
const node1 = () => {
  const n = labNodes()[0];
  return { host: n.address, port: n.port, user: n.user, privateKey: pulumi.secret(readFileSync(n.privateKeyPath, "utf8")), hostKey: n.hostKey };
};

describe("the converge harness on a real node", () => {
  it("passes environment through sshd's AcceptEnv like the provider, and stdin as stdin", async () => {
    const resources = await declare({ stack: "harness", config: {} }, () => {
      new command.remote.Command("env", {
        connection: node1(),
        environment: { LC_MODELSHARE: "passes", MODELSHARE_TOKEN: "dropped" },
        stdin: "from stdin",
        create: `printf '%s|%s|' "\${LC_MODELSHARE-unset}" "\${MODELSHARE_TOKEN-unset}"; cat`,
      });
    });
    const [step] = await run(resources);
    expect(step.stdout).toBe("passes|unset|from stdin");
  });

  it("copies a CopyToRemote source to its remote path", async () => {
    const resources = await declare({ stack: "harness", config: {} }, () => {
      new command.remote.CopyToRemote("copy", {
        connection: node1(),
        source: new pulumi.asset.StringAsset("copied by the harness\n"),
        remotePath: "/tmp/harness-copy.txt",
      });
    });
    await run(resources);
    expect(await onNode("node1", "cat /tmp/harness-copy.txt")).toBe("copied by the harness\n");
  });

  it("refuses a host whose key is not the pinned one, without retrying", async () => {
    const other = labNodes()[1].hostKey;
    const resources = await declare({ stack: "harness", config: {} }, () => {
      new command.remote.Command("pinned", { connection: { ...node1(), hostKey: other, dialErrorLimit: 3 }, create: "true" });
    });
    await expect(run(resources)).rejects.toThrow(/pinned \(on 10\.77\.0\.11\): could not connect .*not the pinned hostKey/);
  });
});
