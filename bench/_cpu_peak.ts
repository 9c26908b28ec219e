/**
 * The machine's fp32 peak, estimated as cores x clock x FLOP per cycle, from
 * Linux's /proc/cpuinfo and cpufreq files.
 *
 * The default 32 FLOP per cycle per core is two 256-bit FMA pipes: 2 pipes
 * x 8 float32 lanes x 2 operations (multiply and add). That is the fp32 peak
 * of AVX2 cores such as Intel Haswell to Alder Lake and AMD Zen 2 to Zen 4
 * (Zen 4 splits a 512-bit operation into two 256-bit halves). Cores with two
 * 512-bit FMA units (Intel server parts with AVX-512) reach 64, so pass
 * `--peak-gflops` there.
 *
 * @example
 * ```ts
 * import { estimatePeak, parseCpuInfo } from "./_cpu_peak.ts";
 *
 * const cpu = parseCpuInfo(Deno.readTextFileSync("/proc/cpuinfo"), null, navigator.hardwareConcurrency);
 * console.log(estimatePeak(cpu).explanation);
 * ```
 * @module
 */

/** fp32 FLOP per cycle per core with two 256-bit FMA pipes. */
export const DEFAULT_FLOPS_PER_CYCLE = 32;

/** CPU properties that the peak estimate uses. */
export interface CpuInfo {
  /** `model name` of the first processor, or "unknown CPU". */
  modelName: string;
  /** Logical CPUs listed in /proc/cpuinfo. */
  logicalCpus: number;
  /** Physical cores that this process may use (see {@link parseCpuInfo}). */
  cores: number;
  /** Clock in GHz used for the peak. */
  ghz: number;
  /** Source of `ghz`, for the printed explanation. */
  ghzSource: string;
}

/** An estimated fp32 peak and how it was computed. */
export interface PeakEstimate {
  gflops: number;
  /** One line, for example "2 cores x 2.60 GHz (cpu MHz in /proc/cpuinfo) x 32 FLOP/cycle = 166.1 GFLOP/s". */
  explanation: string;
}

/**
 * Parses /proc/cpuinfo text.
 *
 * Physical cores are the distinct (`physical id`, `core id`) pairs, or the
 * processor count where those fields are missing (as in some virtual
 * machines). When the process may use fewer logical CPUs than the machine
 * lists (`availableCpus`, from CPU affinity or a container quota), the core
 * count is scaled down by the same share. The clock is `maxFrequencyKhz`
 * (cpufreq's `cpuinfo_max_freq`) when given, else the highest `cpu MHz`.
 *
 * @example
 * ```ts
 * const text = "processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2596.148\n";
 * parseCpuInfo(text, null, 1); // { modelName: "AMD EPYC", logicalCpus: 1, cores: 1, ghz: 2.596148, ... }
 * ```
 */
export function parseCpuInfo(cpuinfo: string, maxFrequencyKhz: string | null, availableCpus: number): CpuInfo {
  const processors = cpuinfo.split(/\n\s*\n/).map(parseFields).filter((fields) => fields.has("processor"));
  if (processors.length === 0) {
    throw new Error("parseCpuInfo: no 'processor' entries in the cpuinfo text; pass --peak-gflops instead");
  }
  const coreIds = new Set<string>();
  let hasTopology = true;
  for (const fields of processors) {
    const physicalId = fields.get("physical id");
    const coreId = fields.get("core id");
    if (physicalId === undefined || coreId === undefined) hasTopology = false;
    coreIds.add(`${physicalId}/${coreId}`);
  }
  const logicalCpus = processors.length;
  const machineCores = hasTopology ? coreIds.size : logicalCpus;
  const usable = Math.min(logicalCpus, Math.max(1, Math.floor(availableCpus)));
  const cores = Math.max(1, Math.round((machineCores * usable) / logicalCpus));

  let ghz: number;
  let ghzSource: string;
  const maxKhz = maxFrequencyKhz === null ? NaN : Number(maxFrequencyKhz.trim());
  if (maxKhz > 0) {
    ghz = maxKhz / 1e6;
    ghzSource = "cpuinfo_max_freq";
  } else {
    const mhz = processors.map((fields) => Number(fields.get("cpu MHz"))).filter((value) => value > 0);
    if (mhz.length === 0) {
      throw new Error("parseCpuInfo: no clock found (neither cpuinfo_max_freq nor 'cpu MHz'); pass --peak-gflops");
    }
    ghz = Math.max(...mhz) / 1000;
    ghzSource = "cpu MHz in /proc/cpuinfo";
  }
  return { modelName: processors[0].get("model name") ?? "unknown CPU", logicalCpus, cores, ghz, ghzSource };
}

function parseFields(block: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return fields;
}

/**
 * Computes the fp32 peak as cores x GHz x `flopsPerCycle`.
 *
 * @example
 * ```ts
 * const cpu = { modelName: "AMD EPYC", logicalCpus: 2, cores: 2, ghz: 2.6, ghzSource: "cpu MHz in /proc/cpuinfo" };
 * estimatePeak(cpu).gflops; // 166.4
 * ```
 */
export function estimatePeak(cpu: CpuInfo, flopsPerCycle: number = DEFAULT_FLOPS_PER_CYCLE): PeakEstimate {
  const gflops = cpu.cores * cpu.ghz * flopsPerCycle;
  const pipes = flopsPerCycle === DEFAULT_FLOPS_PER_CYCLE ? " (two 256-bit FMA pipes)" : "";
  return {
    gflops,
    explanation: `${cpu.cores} core(s) x ${cpu.ghz.toFixed(2)} GHz (${cpu.ghzSource}) x ${flopsPerCycle} ` +
      `FLOP/cycle${pipes} = ${gflops.toFixed(1)} GFLOP/s`,
  };
}

/**
 * Reads /proc/cpuinfo and cpu0's `cpuinfo_max_freq`; returns null where
 * /proc/cpuinfo is missing (not Linux).
 *
 * @example
 * ```ts
 * const cpu = await readCpuInfo();
 * if (cpu) console.log(cpu.modelName, cpu.cores);
 * ```
 */
export async function readCpuInfo(): Promise<CpuInfo | null> {
  let text: string;
  try {
    text = await Deno.readTextFile("/proc/cpuinfo");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  let maxFrequency: string | null = null;
  try {
    maxFrequency = await Deno.readTextFile("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return parseCpuInfo(text, maxFrequency, navigator.hardwareConcurrency);
}
