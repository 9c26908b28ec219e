import assert from "node:assert/strict";
import { readTarArchive } from "../learning/data/tar_archive.ts";
import { makeTar } from "./_fixtures.ts";

const text = (data: Uint8Array) => new TextDecoder().decode(data);

Deno.test("tar reader returns files and directories", async () => {
  const archive = await makeTar([
    { name: "top/", type: "directory" },
    { name: "./top/a.txt", data: "alpha" },
    { name: "top/sub//b.bin", data: new Uint8Array([0, 1, 255]) },
  ]);
  const members = await readTarArchive(archive);
  assert.deepEqual(members.map((m) => [m.path, m.type]), [
    ["top", "directory"],
    ["top/a.txt", "file"],
    ["top/sub/b.bin", "file"],
  ]);
  assert.equal(text(members[1].data), "alpha");
  assert.deepEqual([...members[2].data], [0, 1, 255]);
});

Deno.test("tar reader accepts uncompressed tar and a path", async () => {
  const tar = await makeTar([{ name: "x.txt", data: "plain" }], false);
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/plain.tar`;
    await Deno.writeFile(path, tar);
    const members = await readTarArchive(path);
    assert.equal(members.length, 1);
    assert.equal(text(members[0].data), "plain");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar reader include skips contents", async () => {
  const archive = await makeTar([{ name: "keep.txt", data: "k" }, { name: "skip.txt", data: "s" }]);
  const members = await readTarArchive(archive, { include: (path) => path.startsWith("keep") });
  assert.deepEqual(members.map((m) => m.path), ["keep.txt"]);
});

const unsafeCases: { title: string; entries: Parameters<typeof makeTar>[0]; pattern: RegExp }[] = [
  {
    title: "parent segment",
    entries: [{ name: "../evil.txt", data: "x" }],
    pattern: /"\.\.\/evil\.txt" with a "\.\." segment/,
  },
  {
    title: "inner parent segment",
    entries: [{ name: "a/../../evil.txt", data: "x" }],
    pattern: /"a\/\.\.\/\.\.\/evil\.txt"/,
  },
  { title: "absolute path", entries: [{ name: "/etc/evil", data: "x" }], pattern: /absolute path "\/etc\/evil"/ },
  {
    title: "symlink",
    entries: [{ name: "link", type: "symlink", linkname: "/etc/passwd" }],
    pattern: /symlink "link" -> "\/etc\/passwd"/,
  },
  {
    title: "hardlink",
    entries: [{ name: "a.txt", data: "a" }, { name: "hard", type: "link", linkname: "a.txt" }],
    pattern: /hardlink "hard"/,
  },
  { title: "fifo", entries: [{ name: "pipe", type: "fifo" }], pattern: /"pipe" of type fifo/ },
];
for (const { title, entries, pattern } of unsafeCases) {
  Deno.test(`tar reader rejects ${title}`, async () => {
    const archive = await makeTar(entries);
    await assert.rejects(readTarArchive(archive), pattern);
  });
}

Deno.test("tar reader accepts dots inside names", async () => {
  const archive = await makeTar([{ name: "a..b/c..jpg", data: "x" }]);
  const members = await readTarArchive(archive);
  assert.equal(members[0].path, "a..b/c..jpg");
});

Deno.test("tar reader enforces maxMembers", async () => {
  const archive = await makeTar([{ name: "d/", type: "directory" }, { name: "d/1", data: "1" }, {
    name: "d/2",
    data: "2",
  }]);
  assert.equal((await readTarArchive(archive, { maxMembers: 3 })).length, 3);
  await assert.rejects(
    readTarArchive(archive, { maxMembers: 2 }),
    /more than 2 members \(the maxMembers cap\).*raise the maxMembers option/,
  );
});

Deno.test("tar reader enforces maxTotalBytes", async () => {
  const archive = await makeTar([{ name: "a", data: new Uint8Array(600) }, { name: "b", data: new Uint8Array(500) }]);
  assert.equal((await readTarArchive(archive, { maxTotalBytes: 1100 })).length, 2);
  await assert.rejects(
    readTarArchive(archive, { maxTotalBytes: 1099 }),
    /more than 1099 bytes \(the maxTotalBytes cap\), reached at member "b".*raise the maxTotalBytes option/,
  );
  // Skipped members count too, because they are still decompressed.
  await assert.rejects(readTarArchive(archive, { maxTotalBytes: 1099, include: () => false }), /maxTotalBytes/);
});

Deno.test("tar reader rejects truncated archive", async () => {
  const tar = await makeTar([{ name: "big.bin", data: new Uint8Array(4096).fill(7) }], false);
  await assert.rejects(
    readTarArchive(tar.subarray(0, 2048)),
    /Failed to read archive <in-memory archive>: .*truncated/,
  );
  const gz = await makeTar([{ name: "big.bin", data: new Uint8Array(4096).map((_, i) => i * 31) }]);
  await assert.rejects(readTarArchive(gz.subarray(0, gz.length - 20)), /Failed to read archive <in-memory archive>/);
});

Deno.test("tar reader names a missing file", async () => {
  await assert.rejects(
    readTarArchive("/nonexistent/archive.tar.gz"),
    /Cannot open archive \/nonexistent\/archive\.tar\.gz/,
  );
});
