/**
 * A smoke run of the DAG with a FixMatch-only iteration count, checking the
 * last-20 training summaries that tabulate writes against the train logs.
 */
import assert from "node:assert/strict";
import { parse } from "csv-parse/sync";

const ROOT = new URL("../", import.meta.url).pathname;

function mean(values: number[]): number {
  return values.reduce((total, value) => total + value, 0) / values.length;
}

Deno.test("smoke DAG writes last-20 summaries per cell", async () => {
  const artifacts = await Deno.makeTempDir({ prefix: "semisup-summaries-" });
  const flags = ["--profile", "smoke", "--artifacts", artifacts, "--labels", "10", "--set", "fixmatch.iterations=2"];
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "pipeline/cli.ts", "all", ...flags],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  const output = decoder.decode(result.stdout) + decoder.decode(result.stderr);
  assert.equal(result.code, 0, output);

  // Train logs by cell, from each train artifact's summary.json.
  const logs = new Map<string, Record<string, string>[]>();
  for (const entry of Deno.readDirSync(`${artifacts}/train`)) {
    if (!entry.isDirectory || entry.name.startsWith(".")) continue;
    const dir = `${artifacts}/train/${entry.name}`;
    const { cell } = JSON.parse(await Deno.readTextFile(`${dir}/summary.json`));
    logs.set(cell, parse(await Deno.readTextFile(`${dir}/train_log.csv`), { columns: true }));
  }
  assert.equal(logs.get("fixmatch-10-s0")!.length, 2);
  assert.equal(logs.get("mixmatch-10-s0")!.length, 3);

  const summary = JSON.parse(await Deno.readTextFile(`${artifacts}/summary.json`));
  const cells = new Map(summary.cells.map((cell: { cell: string }) => [cell.cell, cell]));
  const fixmatch = cells.get("fixmatch-10-s0") as Record<string, unknown>;
  const mixmatch = cells.get("mixmatch-10-s0") as Record<string, unknown>;
  assert.equal(fixmatch.iterations, 2);
  assert.equal(mixmatch.iterations, 3);
  for (const [cell, entry] of [["fixmatch-10-s0", fixmatch], ["mixmatch-10-s0", mixmatch]] as const) {
    const rows = logs.get(cell)!;
    const expectedSup = mean(rows.map((row) => Number(row.sup_loss)));
    const expectedUnsup = mean(rows.map((row) => Number(row.unsup_loss)));
    assert.ok(Math.abs((entry.sup_loss_last20 as number) - expectedSup) < 1e-12, `${cell} sup_loss_last20`);
    assert.ok(Math.abs((entry.unsup_loss_last20 as number) - expectedUnsup) < 1e-12, `${cell} unsup_loss_last20`);
    const accuracy = entry.accuracy as Record<string, number | null>;
    assert.equal(typeof accuracy.final, "number", `${cell} EMA accuracy`);
    assert.equal(typeof accuracy.raw_final, "number", `${cell} raw accuracy`);
  }
  const expectedMask = mean(logs.get("fixmatch-10-s0")!.map((row) => Number(row.mask_rate)));
  assert.ok(Math.abs((fixmatch.mask_rate_last20 as number) - expectedMask) < 1e-12);
  assert.equal(mixmatch.mask_rate_last20, null);

  const records = parse(await Deno.readTextFile(`${artifacts}/results.csv`), { columns: true }) as Record<
    string,
    string
  >[];
  const measured = records.filter((record) => record.kind === "measured" && record.metric === "final");
  const fixmatchRow = measured.find((record) => record.row.includes("FixMatch"))!;
  const mixmatchRow = measured.find((record) => record.row.includes("MixMatch"))!;
  assert.match(fixmatchRow.row, /profile smoke, 2 iterations/);
  assert.match(mixmatchRow.row, /profile smoke, 3 iterations/);
  assert.equal(Number(fixmatchRow.sup_loss_last20).toFixed(6), (fixmatch.sup_loss_last20 as number).toFixed(6));
  assert.notEqual(fixmatchRow.mask_rate_last20, "");
  assert.equal(mixmatchRow.mask_rate_last20, "");
  assert.ok(records.some((record) => record.kind === "measured" && record.metric === "raw_final"));

  const markdown = await Deno.readTextFile(`${artifacts}/results.md`);
  assert.match(markdown, /\| mixmatch-10-s0 \| 3 \| [0-9.]+ \| [0-9.]+ \| — \|/);
});
