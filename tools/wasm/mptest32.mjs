// Run the firmware tests (tools/mptest.py) under a 32-bit MicroPython: the WebAssembly
// port from npm, in Node. sys.maxsize is 2**31 - 1 there, so an int that leaves the
// 31-bit small ints of a board allocates here too, and heap_lock catches it.
//
//   node tools/wasm/mptest32.mjs [MODULE[.FUNCTION]]
//
// The port has no native or viper emitter: firmware files are copied into its in-memory
// filesystem with the "@micropython.native" line removed (a speed hint; bytecode has the
// same semantics), and the viper modules fail to import, so their plain twins run (the
// firmware picks them itself, as on any port without viper).
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const DEST = "/repo";

function copyTree(mp, rel, keep, edit) {
  const src = path.join(ROOT, rel);
  mkdirs(mp, path.posix.join(DEST, rel));
  for (const name of fs.readdirSync(src).sort()) {
    const full = path.join(src, name);
    const stat = fs.statSync(full);
    if (stat.isDirectory()) {
      if (name !== "__pycache__") copyTree(mp, path.join(rel, name), keep, edit);
    } else if (keep(name)) {
      let data = fs.readFileSync(full, "utf8");
      if (edit) data = edit(data);
      mp.FS.writeFile(path.posix.join(DEST, rel, name), data);
    }
  }
}

function mkdirs(mp, dir) {
  let cur = "";
  for (const part of dir.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

const stripNative = (text) => text.split("\n").map((line) =>
  /^@micropython\.native\s*(#.*)?$/.test(line.trim()) ? "" : line).join("\n");

let out = "";
const mp = await loadMicroPython({
  heapsize: 64 * 1024 * 1024,
  pystack: 16384,
  stdout: (t) => { process.stdout.write(t + "\n"); out += t + "\n"; },
  stderr: (t) => process.stderr.write(t + "\n"),
});
copyTree(mp, "firmware", (n) => n.endsWith(".py"), stripNative);
copyTree(mp, "tests/firmware", (n) => n.endsWith(".py"), stripNative);
copyTree(mp, "tests/vectors", (n) => n.endsWith(".json"));
copyTree(mp, "boards", (n) => n.endsWith(".json"));
copyTree(mp, "tools", (n) => n === "mptest.py");
copyTree(mp, "docs", (n) => n === "wire.md");
const pattern = process.argv[2] || "";
let code = 0;
try {
  mp.runPython(`
import os, sys
os.chdir(${JSON.stringify(DEST)})
print("32-bit MicroPython: sys.maxsize = %d, %s" % (sys.maxsize, sys.implementation._machine))
exec(open("tools/mptest.py").read(), {"__file__": "tools/mptest.py", "__name__": "__main__",
                                       "MPTEST_PATTERN": ${JSON.stringify(pattern)}})
`);
} catch (e) {
  const m = /SystemExit: (\d+)/.exec(String(e));
  code = m ? Number(m[1]) : 1;
  if (!m) console.error(String(e));
}
process.exit(code);
