import { afterAll } from "vitest";
import { closeNodeConnections } from "../harness/lab";

// Every lab file: the SSH connections its onNode calls kept open are closed when it ends.
afterAll(() => closeNodeConnections());
