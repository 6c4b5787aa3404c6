// Opens a SOPS file with an age identity using sops-age, an independent JavaScript implementation
// of the SOPS format, and prints the plaintext document as JSON. Usage: node open-sops.mjs FILE KEYFILE
import { readFileSync } from "node:fs";
import { decryptSops } from "sops-age";

const [file, keyFile] = process.argv.slice(2);
const secretKey = readFileSync(keyFile, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"));
const plain = await decryptSops(readFileSync(file, "utf8"), { fileType: "yaml", secretKey });
process.stdout.write(JSON.stringify(plain));
