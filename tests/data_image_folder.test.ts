import assert from "node:assert/strict";
import { readImageFolder } from "../learning/data/image_folder.ts";
import { CIFAR10_CLASS_NAMES } from "../learning/data/cifar10.ts";
import type { Dataset } from "../learning/data/dataset.ts";
import {
  assertBytesEqual,
  encodeJpeg,
  encodePng,
  type FileTree,
  makeImageFolderTree,
  patternImage,
  solidImage,
  treeToTarGz,
  writeTree,
} from "./_fixtures.ts";

async function withTempDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Checks labels and colors of a dataset read from `makeImageFolderTree` with 2 train and 1 test image per class. */
function checkCifarTree(dataset: Dataset, colors: Map<string, [number, number, number]>, top: string): void {
  assert.deepEqual(dataset.classNames, [...CIFAR10_CLASS_NAMES]);
  assert.equal(dataset.train.count, 20);
  assert.equal(dataset.test.count, 10);
  for (const [split, perClass] of [["train", 2], ["test", 1]] as const) {
    const set = dataset[split];
    assert.deepEqual([set.height, set.width, set.channels], [32, 32, 3]);
    for (let n = 0; n < set.count; n++) {
      const classIndex = Math.floor(n / perClass);
      const fileIndex = n % perClass;
      assert.equal(set.labels[n], classIndex, `${split} label ${n}`);
      const path = `${top}${split}/${CIFAR10_CLASS_NAMES[classIndex]}/${String(fileIndex).padStart(4, "0")}.` +
        (fileIndex % 2 === 1 ? "png" : "jpg");
      const color = colors.get(path)!;
      const isPng = path.endsWith(".png");
      for (const pixel of [0, 500, 1023]) {
        for (let c = 0; c < 3; c++) {
          const value = set.images[n * 3072 + pixel * 3 + c];
          // JPEG at quality 100 of a solid color decodes within a few levels; PNG is exact.
          if (isPng) assert.equal(value, color[c], `${path} pixel ${pixel} channel ${c}`);
          else {assert.ok(
              Math.abs(value - color[c]) <= 3,
              `${path} pixel ${pixel} channel ${c}: ${value} vs ${color[c]}`,
            );}
        }
      }
    }
  }
}

const perClass = { train: 2, test: 1 };

Deno.test("image folder reads directory", async () => {
  const { tree, colors } = makeImageFolderTree({ classNames: [...CIFAR10_CLASS_NAMES].reverse(), perClass });
  await withTempDir(async (dir) => {
    await writeTree(dir, tree);
    const dataset = await readImageFolder(dir);
    checkCifarTree(dataset, colors, "");
    assert.equal(dataset.name, dir.split("/").pop());
  });
});

Deno.test("image folder reads tar.gz under top folder", async () => {
  const { tree, colors } = makeImageFolderTree({ classNames: [...CIFAR10_CLASS_NAMES], perClass, top: "cifar10-jpeg" });
  const archive = await treeToTarGz(tree);
  checkCifarTree(await readImageFolder(archive, { name: "tiny" }), colors, "cifar10-jpeg/");
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/cifar10-jpeg.tar.gz`, archive);
    const dataset = await readImageFolder(`${dir}/cifar10-jpeg.tar.gz`);
    checkCifarTree(dataset, colors, "cifar10-jpeg/");
    assert.equal(dataset.name, "cifar10-jpeg");
  });
});

Deno.test("image folder reads directory under top folder", async () => {
  const { tree, colors } = makeImageFolderTree({ classNames: [...CIFAR10_CLASS_NAMES], perClass, top: "data" });
  tree.set("LICENSE", new TextEncoder().encode("top-level files are ignored"));
  await withTempDir(async (dir) => {
    await writeTree(dir, tree);
    checkCifarTree(await readImageFolder(dir), colors, "data/");
  });
});

Deno.test("image folder sorts other class names", async () => {
  const { tree } = makeImageFolderTree({ classNames: ["zebra", "ant", "Moth"], perClass: { train: 1, test: 1 } });
  const dataset = await readImageFolder(await treeToTarGz(tree));
  assert.deepEqual(dataset.classNames, ["Moth", "ant", "zebra"]);
  assert.deepEqual([...dataset.train.labels], [0, 1, 2]);
  // Class "ant" had class index 1 in the fixture, so its red value is 1 * 40 + 10.
  assert.equal(dataset.train.images[3072], 50);
});

/** Returns a valid tree: classes a and b, one 32x32 PNG per class and split. */
function smallTree(): FileTree {
  const tree: FileTree = new Map();
  for (const split of ["train", "test"]) {
    for (const [i, className] of ["a", "b"].entries()) {
      tree.set(`${split}/${className}/0.png`, encodePng(solidImage(32, 32, [i * 100, 50, 50]), 32, 32));
    }
  }
  return tree;
}

Deno.test("image folder decodes PNG exactly", async () => {
  const tree = smallTree();
  const rgb = patternImage(32, 32, 3);
  const gray = new Uint8Array(32 * 32 * 3);
  for (let p = 0; p < 1024; p++) gray.fill((p * 13) % 256, p * 3, p * 3 + 3);
  tree.set("train/a/1_rgb.png", encodePng(rgb, 32, 32, 2));
  tree.set("train/a/2_gray.png", encodePng(gray, 32, 32, 0));
  tree.set("train/a/3_rgba.png", encodePng(rgb, 32, 32, 6, 100));
  const dataset = await readImageFolder(await treeToTarGz(tree));
  assert.deepEqual([...dataset.train.labels], [0, 0, 0, 0, 1]);
  assertBytesEqual(dataset.train.images.subarray(1 * 3072, 2 * 3072), rgb, "RGB PNG");
  assertBytesEqual(dataset.train.images.subarray(2 * 3072, 3 * 3072), gray, "grayscale PNG");
  // Alpha is dropped without compositing, as PIL's convert("RGB") does.
  assertBytesEqual(dataset.train.images.subarray(3 * 3072, 4 * 3072), rgb, "RGBA PNG");
});

Deno.test("image folder skips hidden files", async () => {
  const tree = smallTree();
  tree.set("train/a/.DS_Store", new Uint8Array([1, 2, 3]));
  tree.set("train/a/._0.png", new Uint8Array([0, 5, 22, 7]));
  tree.set(".hidden/readme.txt", new Uint8Array([65]));
  const fromArchive = await readImageFolder(await treeToTarGz(tree));
  assert.equal(fromArchive.train.count, 2);
  await withTempDir(async (dir) => {
    await writeTree(dir, tree);
    assert.equal((await readImageFolder(dir)).train.count, 2);
  });
});

Deno.test("image folder resizes bilinearly", async () => {
  // A 2x2 image whose left column is 0 and right column 100, resized to 4x4:
  // half-pixel centers sample x = -0.25 (clamped to 0), 0.25, 0.75 and 1.25 (clamped to 1).
  const small = new Uint8Array([0, 0, 0, 100, 100, 100, 0, 0, 0, 100, 100, 100]);
  const tree: FileTree = new Map();
  for (const split of ["train", "test"]) tree.set(`${split}/a/0.png`, encodePng(small, 2, 2));
  const dataset = await readImageFolder(await treeToTarGz(tree), { height: 4, width: 4, wrongSize: "resize" });
  const reds = [...dataset.train.images].filter((_, i) => i % 3 === 0);
  assert.deepEqual(reds, [0, 25, 75, 100, 0, 25, 75, 100, 0, 25, 75, 100, 0, 25, 75, 100]);
});

Deno.test("image folder resizes to default size", async () => {
  const tree = smallTree();
  tree.set("train/a/1_big.jpg", encodeJpeg(solidImage(40, 48, [200, 100, 50]), 40, 48));
  const dataset = await readImageFolder(await treeToTarGz(tree), { wrongSize: "resize" });
  assert.equal(dataset.train.count, 3);
  const pixel = [...dataset.train.images.subarray(3072 + 600, 3072 + 603)];
  pixel.forEach((value, c) => assert.ok(Math.abs(value - [200, 100, 50][c]) <= 3, `channel ${c}: ${value}`));
});

const brokenCases: { title: string; change: (tree: FileTree) => void; emptyDirs?: string[]; pattern: RegExp }[] = [
  {
    title: "non-image file",
    change: (tree) => tree.set("train/a/notes.txt", new TextEncoder().encode("hello")),
    pattern: /train\/a\/notes\.txt is not an image file \(supported: \.jpg, \.jpeg, \.png\); remove it/,
  },
  {
    title: "file without a signature",
    change: (tree) => tree.set("train/b/1.png", new TextEncoder().encode("not really a png")),
    pattern: /train\/b\/1\.png is not a JPEG or PNG image \(unknown file signature\)/,
  },
  {
    title: "undecodable JPEG",
    change: (tree) => tree.set("test/a/1.jpg", new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 1, 2, 3])),
    pattern: /test\/a\/1\.jpg cannot be decoded as JPEG .*corrupt; replace or remove it/,
  },
  {
    title: "truncated PNG",
    change: (tree) => tree.set("test/b/1.png", tree.get("test/b/0.png")!.subarray(0, 60)),
    pattern: /test\/b\/1\.png cannot be decoded as PNG/,
  },
  {
    title: "wrong size",
    change: (tree) => tree.set("train/b/1.png", encodePng(solidImage(30, 32, [1, 2, 3]), 30, 32)),
    pattern: /train\/b\/1\.png is 30x32 \(height x width\), but images must be 32x32\. .*wrongSize: "resize"/,
  },
  {
    title: "empty class folder",
    change: () => {},
    emptyDirs: ["train/c", "test/c"],
    pattern: /class folder train\/c is empty; add images to it or remove it/,
  },
  {
    title: "differing classes",
    change: (tree) => {
      tree.set("train/c/0.png", tree.get("train/a/0.png")!);
      tree.set("test/d/0.png", tree.get("train/a/0.png")!);
    },
    pattern: /class folders of train\/ and test\/ differ \(only in train: \[c\]; only in test: \[d\]\)/,
  },
  {
    title: "missing train folder",
    change: (tree) => {
      for (const path of [...tree.keys()]) if (path.startsWith("train/")) tree.delete(path);
    },
    pattern: /has no train\/ folder\. An image folder needs train\/<class>\/<image>/,
  },
  {
    title: "missing test folder",
    change: (tree) => {
      for (const path of [...tree.keys()]) if (path.startsWith("test/")) tree.delete(path);
    },
    pattern: /has no test\/ folder/,
  },
  {
    title: "file outside class folder",
    change: (tree) => tree.set("train/0.png", tree.get("train/a/0.png")!),
    pattern: /train\/0\.png is outside a class folder; move it into train\/<class>\//,
  },
  {
    title: "nested folder",
    change: (tree) => tree.set("test/a/sub/0.png", tree.get("train/a/0.png")!),
    pattern: /test\/a\/sub(\/0\.png)? is nested inside a class folder; images must sit directly in test\/<class>\//,
  },
];

for (const { title, change, emptyDirs, pattern } of brokenCases) {
  Deno.test(`image folder rejects ${title}`, async () => {
    const tree = smallTree();
    change(tree);
    await assert.rejects(readImageFolder(await treeToTarGz(tree, emptyDirs)), pattern, "from tar.gz");
    await withTempDir(async (dir) => {
      await writeTree(dir, tree, emptyDirs);
      await assert.rejects(readImageFolder(dir), pattern, "from directory");
    });
  });
}

Deno.test("image folder names archive in errors", async () => {
  const tree = smallTree();
  tree.set("train/a/notes.txt", new Uint8Array([1]));
  await withTempDir(async (dir) => {
    await Deno.writeFile(`${dir}/set.tgz`, await treeToTarGz(tree));
    await assert.rejects(
      readImageFolder(`${dir}/set.tgz`),
      new RegExp(`${dir}/set\\.tgz: train/a/notes\\.txt is not an image`),
    );
  });
});

Deno.test("image folder rejects bad source", async () => {
  await assert.rejects(readImageFolder("/nonexistent/folder"), /\/nonexistent\/folder not found/);
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/list.csv`, "a,b");
    await assert.rejects(readImageFolder(`${dir}/list.csv`), /is neither a directory nor a \.tar\.gz/);
  });
  await assert.rejects(readImageFolder(new Uint8Array(0), { wrongSize: "crop" as "reject" }), /wrongSize must be/);
});

Deno.test("image folder passes caps to tar reader", async () => {
  const archive = await treeToTarGz(smallTree());
  await assert.rejects(readImageFolder(archive, { maxMembers: 5 }), /maxMembers/);
  await assert.rejects(readImageFolder(archive, { maxTotalBytes: 100 }), /maxTotalBytes/);
});
