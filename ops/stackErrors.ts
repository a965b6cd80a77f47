/**
 * What went wrong when check, repair, warm or dedupe opened a stack through the Pulumi CLI, as
 * one sentence that says what to do. The CLI's own words are kept at the end (shown, never
 * acted on). Pure, so each case is tested with the words the CLI prints.
 */
export type StackProblem = "no-cli" | "no-stack" | "cannot-decrypt" | "other";

export function stackProblem(said: string): StackProblem {
  if (/ENOENT|fetch failed|command not found|could not find (the )?pulumi|no pulumi CLI|pulumi CLI .*not (found|installed)/i.test(said)) return "no-cli";
  if (/passphrase|decrypt|secrets provider/i.test(said)) return "cannot-decrypt";
  if (/no stack named|stack .* (not found|does not exist)|no such stack/i.test(said)) return "no-stack";
  return "other";
}

export function stackMessage(stack: string, said: string): string {
  const words = said.trim() || "no message";
  switch (stackProblem(said)) {
    case "no-cli":
      return `the Pulumi CLI could not be run (${words}). check, repair, warm and dedupe read the stack through it, as pulumi up does: install it (https://www.pulumi.com/docs/install/) or let npx pulumi fetch it once with internet access, then run this again. To check a stack file without it: npm run validate -- Pulumi.${stack}.yaml`;
    case "no-stack":
      return `there is no stack ${stack} in the current backend (${words}). npx pulumi stack ls lists the stacks there; npx pulumi login <backend> (or PULUMI_BACKEND_URL) selects the backend that holds it.`;
    case "cannot-decrypt":
      return `the secrets of stack ${stack} cannot be decrypted (${words}). Set PULUMI_CONFIG_PASSPHRASE, or PULUMI_CONFIG_PASSPHRASE_FILE, to the stack's passphrase (or log in to the backend that holds its key), then run this again.`;
    default:
      return `could not open the stack ${stack} through the Pulumi CLI (${words}). It needs a working pulumi command, the stack's backend (pulumi login, or PULUMI_BACKEND_URL) and, for a passphrase stack, PULUMI_CONFIG_PASSPHRASE.`;
  }
}
