/**
 * fp32 peak estimate of the benchmark: /proc/cpuinfo parsing (cores,
 * clock, SMT, restricted CPU sets) and cores x GHz x FLOP/cycle.
 */

import assert from "node:assert/strict";
import { DEFAULT_FLOPS_PER_CYCLE, estimatePeak, parseCpuInfo, readCpuInfo } from "../bench/_cpu_peak.ts";

/** Builds one /proc/cpuinfo entry in the kernel's layout, with only the fields the parser reads. */
function processor(index: number, mhz: number, topology: { physical: number; core: number } | null): string {
  const lines = [
    `processor\t: ${index}`,
    "vendor_id\t: GenuineIntel",
    "model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz",
    `cpu MHz\t\t: ${mhz.toFixed(3)}`,
  ];
  if (topology) lines.push(`physical id\t: ${topology.physical}`, `core id\t\t: ${topology.core}`);
  lines.push("flags\t\t: fpu vme de pse avx2 fma");
  return lines.join("\n");
}

/** 2 sockets x 2 cores x 2 hyper-threads = 8 logical CPUs, 4 cores. */
const SMT_CPUINFO = [
  processor(0, 2200, { physical: 0, core: 0 }),
  processor(1, 2200, { physical: 0, core: 1 }),
  processor(2, 2200, { physical: 1, core: 0 }),
  processor(3, 2200, { physical: 1, core: 1 }),
  processor(4, 2200, { physical: 0, core: 0 }),
  processor(5, 3100.5, { physical: 0, core: 1 }),
  processor(6, 2200, { physical: 1, core: 0 }),
  processor(7, 2200, { physical: 1, core: 1 }),
].join("\n\n") + "\n\n";

Deno.test("cpuinfo counts physical cores under SMT", () => {
  const cpu = parseCpuInfo(SMT_CPUINFO, null, 8);
  assert.equal(cpu.modelName, "Intel(R) Xeon(R) CPU @ 2.20GHz");
  assert.equal(cpu.logicalCpus, 8);
  assert.equal(cpu.cores, 4);
  // The highest "cpu MHz" line.
  assert.equal(cpu.ghz, 3.1005);
  assert.equal(cpu.ghzSource, "cpu MHz in /proc/cpuinfo");
});

Deno.test("cpuinfo scales cores to the usable CPUs", () => {
  assert.equal(parseCpuInfo(SMT_CPUINFO, null, 4).cores, 2);
  assert.equal(parseCpuInfo(SMT_CPUINFO, null, 1).cores, 1);
  // More available CPUs than listed (a stale count) cannot add cores.
  assert.equal(parseCpuInfo(SMT_CPUINFO, null, 64).cores, 4);
});

Deno.test("cpuinfo prefers cpuinfo_max_freq", () => {
  const cpu = parseCpuInfo(SMT_CPUINFO, "3500000\n", 8);
  assert.equal(cpu.ghz, 3.5);
  assert.equal(cpu.ghzSource, "cpuinfo_max_freq");
});

Deno.test("cpuinfo without topology counts processors", () => {
  const text = [processor(0, 2596.148, null), processor(1, 2596.148, null)].join("\n\n");
  const cpu = parseCpuInfo(text, null, 2);
  assert.equal(cpu.cores, 2);
  assert.equal(cpu.logicalCpus, 2);
  assert.ok(Math.abs(cpu.ghz - 2.596148) < 1e-12, `clock ${cpu.ghz} GHz`);
});

Deno.test("cpuinfo rejects text without processors or clock", () => {
  assert.throws(() => parseCpuInfo("", null, 2), /no 'processor' entries.*--peak-gflops/);
  assert.throws(() => parseCpuInfo("processor\t: 0\nmodel name\t: ARM\n", null, 1), /no clock found.*--peak-gflops/);
});

Deno.test("peak is cores x GHz x FLOP per cycle", () => {
  const cpu = { modelName: "AMD EPYC", logicalCpus: 2, cores: 2, ghz: 2.5, ghzSource: "cpuinfo_max_freq" };
  assert.equal(DEFAULT_FLOPS_PER_CYCLE, 32);
  const peak = estimatePeak(cpu);
  assert.equal(peak.gflops, 160);
  assert.equal(
    peak.explanation,
    "2 core(s) x 2.50 GHz (cpuinfo_max_freq) x 32 FLOP/cycle (two 256-bit FMA pipes) = 160.0 GFLOP/s",
  );
  const avx512 = estimatePeak(cpu, 64);
  assert.equal(avx512.gflops, 320);
  assert.equal(avx512.explanation, "2 core(s) x 2.50 GHz (cpuinfo_max_freq) x 64 FLOP/cycle = 320.0 GFLOP/s");
});

Deno.test({
  name: "cpuinfo of this machine parses",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const cpu = await readCpuInfo();
    assert.ok(cpu !== null);
    assert.ok(cpu.cores >= 1, `cores ${cpu.cores}`);
    assert.ok(cpu.cores <= cpu.logicalCpus, `cores ${cpu.cores} of ${cpu.logicalCpus} logical CPUs`);
    assert.ok(cpu.ghz > 0.1, `clock ${cpu.ghz} GHz`);
    assert.ok(cpu.ghz < 10, `clock ${cpu.ghz} GHz`);
  },
});
