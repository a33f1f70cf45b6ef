#!/usr/bin/env node
// Check Prisma schema files with Prisma's own validator (npm @prisma/prisma-schema-wasm, offline).
//
//   node tools/prisma-validate.mjs [--check-format] [--strict] FILE...
//   node tools/prisma-validate.mjs --format FILE        (prints the schema as `prisma format` would)
//
// Checks: `validate` (the same errors as `prisma validate`); `lint` warnings are printed, and fail the
// check with --strict; --check-format fails when `format` would change the file.
// Exit status: 0 valid, 1 invalid (the reason on stderr), 2 usage error or validator not installed.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename } from "node:path";

const PACKAGE = "@prisma/prisma-schema-wasm";
const require = createRequire(import.meta.url);

// The wasm module reports Rust panics through this global; without it a panic hides its message.
globalThis.PRISMA_WASM_PANIC_REGISTRY = {
  message: "",
  set_message(message) {
    this.message = message;
  },
};

function loadWasm() {
  try {
    return require(PACKAGE);
  } catch (error) {
    if (error && error.code === "MODULE_NOT_FOUND") {
      console.error(
        `${PACKAGE} is not installed: run \`npm ci\` at the project root (\`make test\` does it).`,
      );
      process.exit(2);
    }
    throw error;
  }
}

function call(name, fn) {
  try {
    return fn();
  } catch (error) {
    const panic = globalThis.PRISMA_WASM_PANIC_REGISTRY.message;
    if (panic) {
      throw new Error(`${PACKAGE} ${name} panicked: ${panic}`);
    }
    throw error;
  }
}

function errorMessage(error) {
  const text = error instanceof Error ? error.message : String(error);
  try {
    const parsed = JSON.parse(text);
    return parsed.message ?? text;
  } catch {
    return text;
  }
}

const FORMAT_PARAMS = JSON.stringify({
  textDocument: { uri: "file:/schema.prisma" },
  options: { tabSize: 2, insertSpaces: true },
});

function format(wasm, name, text) {
  const result = call("format", () => wasm.format(JSON.stringify([[name, text]]), FORMAT_PARAMS));
  const [[, formatted]] = JSON.parse(result);
  return formatted;
}

function firstDifference(a, b) {
  const left = a.split("\n");
  const right = b.split("\n");
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    if (left[i] !== right[i]) {
      return `line ${i + 1}:\n  file:   ${JSON.stringify(left[i] ?? "<end of file>")}\n  format: ${JSON.stringify(right[i] ?? "<end of file>")}`;
    }
  }
  return "";
}

function main(argv) {
  const options = new Set(argv.filter((a) => a.startsWith("--")));
  const files = argv.filter((a) => !a.startsWith("--"));
  const known = new Set(["--check-format", "--strict", "--format"]);
  const unknown = [...options].filter((o) => !known.has(o));
  if (unknown.length || files.length === 0 || (options.has("--format") && files.length !== 1)) {
    console.error(
      "usage: prisma-validate.mjs [--check-format] [--strict] FILE...  |  prisma-validate.mjs --format FILE",
    );
    return 2;
  }
  const wasm = loadWasm();

  if (options.has("--format")) {
    process.stdout.write(format(wasm, basename(files[0]), readFileSync(files[0], "utf8")));
    return 0;
  }

  let failed = false;
  for (const file of files) {
    const name = basename(file);
    const text = readFileSync(file, "utf8");
    const schema = [[name, text]];
    try {
      call("validate", () => wasm.validate(JSON.stringify({ prismaSchema: schema, noColor: true })));
    } catch (error) {
      console.error(`${file}: invalid Prisma schema\n${errorMessage(error)}`);
      failed = true;
      continue;
    }
    const diagnostics = JSON.parse(call("lint", () => wasm.lint(JSON.stringify(schema))));
    for (const d of diagnostics) {
      const line = text.slice(0, d.start).split("\n").length;
      const kind = d.is_warning ? "warning" : "error";
      console.error(`${file}:${line}: ${kind}: ${d.text}`);
      if (!d.is_warning || options.has("--strict")) {
        failed = true;
      }
    }
    if (options.has("--check-format")) {
      const formatted = format(wasm, name, text);
      if (formatted !== text) {
        console.error(`${file}: not formatted as \`prisma format\` would; first difference at ${firstDifference(text, formatted)}`);
        failed = true;
      }
    }
    if (!failed) {
      console.log(`${file}: valid (${PACKAGE})`);
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
