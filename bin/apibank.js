#!/usr/bin/env node
// The `apibank` command. The server is TypeScript run by Node's type stripping, which needs Node 22.18+;
// the project brings Node 24 as a dependency (the `node` package), so a machine whose own Node is older
// still runs the CLI on 24. This launcher is plain JavaScript so that any Node can start it.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const [major, minor] = process.versions.node.split('.').map(Number);
const stripsTypes = major > 22 || (major === 22 && minor >= 18);
let node = process.execPath;
if (!stripsTypes) {
  try {
    node = createRequire(import.meta.url).resolve('node/bin/node');
  } catch {
    console.error('apibank needs Node 22.18 or newer; run `npm install` to bring Node 24 with the project.');
    process.exit(1);
  }
}
const child = spawn(node, [cli, ...process.argv.slice(2)], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => (signal ? process.kill(process.pid, signal) : process.exit(code ?? 1)));
