/**
 * Tampered artifacts: `verify` names them and exits 1, and a rerun logs the
 * file with its expected and found SHA-256, moves the artifact aside and
 * rebuilds it.
 */
import assert from "node:assert/strict";
import { sha256File } from "../pipeline/hash.ts";
import { artifactKeys, cli, escapeRegExp, listNames, TINY, verifyStore } from "./_hardening.ts";

function trainArgs(root: string): string[] {
  return ["train", ...TINY, "--artifacts", root, "--algorithms", "fixmatch", "--labels", "10", "--iterations", "2"];
}

Deno.test("tampered model.bin is named and rebuilt", async () => {
  const root = await Deno.makeTempDir({ prefix: "semisup-corrupt-model-" });
  const first = await cli(trainArgs(root));
  assert.equal(first.code, 0, first.output);
  const [key] = artifactKeys(root, "train");
  const dir = `${root}/train/${key}`;
  const original = await Deno.readFile(`${dir}/model.bin`);
  const manifest = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
  const expected: string = manifest.files["model.bin"];

  // Flip one bit of one weight, as a bad disk sector or a stray write would.
  const tampered = original.slice();
  tampered[tampered.length >> 1] ^= 0x01;
  await Deno.writeFile(`${dir}/model.bin`, tampered);
  const found = await sha256File(`${dir}/model.bin`);
  assert.notEqual(found, expected);
  const detail = `file model.bin has sha256 ${found}, expected ${expected}`;

  const verify = await verifyStore(root);
  assert.equal(verify.code, 1, verify.output);
  assert.match(verify.output, new RegExp(`corrupt: ${escapeRegExp(dir)}: ${detail}`));
  assert.match(verify.output, /: 1 problem\(s\)/);

  const rerun = await cli(trainArgs(root));
  assert.equal(rerun.code, 0, rerun.output);
  assert.match(rerun.output, /\[download [0-9a-f]+\] cache hit/);
  assert.match(rerun.output, /\[split [0-9a-f]+\] cache hit/);
  assert.match(
    rerun.output,
    new RegExp(`warning: corrupt artifact ${escapeRegExp(dir)}: ${detail}; moving it to \\S+ and rebuilding`),
  );
  assert.match(rerun.output, /\[train [0-9a-f]+\] building/);

  // Training is deterministic, so the rebuilt weights equal the original ones.
  assert.deepEqual(await Deno.readFile(`${dir}/model.bin`), original);
  const aside = listNames(`${root}/train`).filter((name) => name.startsWith(`.corrupt-${key}-`));
  assert.equal(aside.length, 1);
  assert.deepEqual(await Deno.readFile(`${root}/train/${aside[0]}/model.bin`), tampered);
  const clean = await verifyStore(root);
  assert.equal(clean.code, 0, clean.output);
  await Deno.remove(root, { recursive: true });
});

Deno.test("missing file or broken manifest is rebuilt", async () => {
  const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
    [
      "deleted file",
      (dir) => Deno.remove(`${dir}/train_labels.bin`),
      /file train_labels\.bin is missing \(expected sha256 [0-9a-f]{64}\)/,
    ],
    [
      "truncated manifest",
      async (dir) => {
        const text = await Deno.readTextFile(`${dir}/manifest.json`);
        await Deno.writeTextFile(`${dir}/manifest.json`, text.slice(0, text.length >> 1));
      },
      /manifest\.json is not valid JSON/,
    ],
  ];
  for (const [name, tamper, message] of cases) {
    const root = await Deno.makeTempDir({ prefix: "semisup-corrupt-download-" });
    const args = ["download", ...TINY, "--artifacts", root];
    const first = await cli(args);
    assert.equal(first.code, 0, first.output);
    const [key] = artifactKeys(root, "download");
    const dir = `${root}/download/${key}`;
    const labels = await Deno.readFile(`${dir}/train_labels.bin`);
    await tamper(dir);

    const verify = await verifyStore(root);
    assert.equal(verify.code, 1, `${name}: ${verify.output}`);
    assert.match(verify.output, new RegExp(`corrupt: ${escapeRegExp(dir)}: ${message.source}`), name);

    const rerun = await cli(args);
    assert.equal(rerun.code, 0, `${name}: ${rerun.output}`);
    assert.match(rerun.output, new RegExp(`corrupt artifact ${escapeRegExp(dir)}: ${message.source}`), name);
    assert.match(rerun.output, /\[download [0-9a-f]+\] building/, name);
    assert.deepEqual(await Deno.readFile(`${dir}/train_labels.bin`), labels, name);
    assert.equal((await verifyStore(root)).code, 0, name);
    await Deno.remove(root, { recursive: true });
  }
});
