#!/usr/bin/env python3
"""Static resource check of the CUDA kernels (issue 13, item 4).

Reads ptxas's report of every kernel (`nvcc -Xptxas -v`, kept by kernels/cuda/cuda.mk
as $(BUILD)/obj/kernels/cuda/<op>.ptxas.txt, for sm_89 and sm_90) and the launch sizes
the host code really uses (threads per block and dynamic shared memory of every
distinct launch, logged by the CPU emulator: CUDAEMU_LAUNCH_LOG). For each kernel and
architecture it fails on:
  - register spills (spill stores or loads > 0 bytes);
  - registers x threads over the 64K registers of a block (registers are given per
    warp in units of 256: ceil(regs * 32 / 256) * 256 per warp);
  - static + dynamic shared memory over the limit (48 KB static; 99 KB per block on
    sm_89 and 227 KB on sm_90 with the cudaFuncSetAttribute opt-in, which the
    emulator's launch check requires above 48 KB of dynamic memory);
  - a kernel no test launches (its launch size is unknown, so it is unchecked).
Prints "ok [ptxas:<arch>] <kernel> ..." / "FAIL [ptxas:<arch>] <kernel>: ..." and,
with --table FILE, writes the per-kernel table (docs/gpu.md keeps a copy).

usage: ptxas_check.py --launches FILE [--table FILE] PTXAS_TXT...
"""
import argparse
import re
import subprocess
import sys

REGS_PER_BLOCK = 65536
SMEM_STATIC_MAX = 48 * 1024
SMEM_BLOCK_MAX = {"sm_89": 99 * 1024, "sm_90": 227 * 1024}


def parse_ptxas(paths):
    """{(mangled, arch): {regs, spill_st, spill_ld, stack, smem}}"""
    out = {}
    for path in paths:
        cur = None
        for line in open(path, encoding="utf-8", errors="replace"):
            m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+)'", line)
            if m:
                cur = (m.group(1), m.group(2))
                out[cur] = {"regs": None, "spill_st": 0, "spill_ld": 0, "stack": 0, "smem": 0}
                continue
            if cur is None:
                continue
            m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
            if m:
                out[cur]["stack"], out[cur]["spill_st"], out[cur]["spill_ld"] = map(int, m.groups())
                continue
            m = re.search(r"Used (\d+) registers", line)
            if m:
                out[cur]["regs"] = int(m.group(1))
                s = re.search(r"(\d+) bytes smem", line)
                out[cur]["smem"] = int(s.group(1)) if s else 0
                cur = None
    return out


def parse_launches(path):
    """{mangled: (max threads, max dynamic smem)}"""
    out = {}
    for line in open(path, encoding="utf-8"):
        parts = line.split()
        if len(parts) < 3 or parts[0] == "?":
            continue
        name, threads, smem = parts[0], int(parts[1]), int(parts[2])
        t, s = out.get(name, (0, 0))
        out[name] = (max(t, threads), max(s, smem))
    return out


def demangle(names):
    try:
        r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
        full = r.stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        full = list(names)
    short = {}
    for n, f in zip(names, full):
        f = re.sub(r"^void ", "", f)
        depth, cut = 0, len(f)
        for i, ch in enumerate(f):  # drop the parameter list (the first '(' outside <>)
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
            elif ch == "(" and depth == 0:
                cut = i
                break
        short[n] = f[:cut]
    return short


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--launches", required=True)
    ap.add_argument("--table")
    ap.add_argument("ptxas", nargs="+")
    a = ap.parse_args()
    kernels = parse_ptxas(a.ptxas)
    launches = parse_launches(a.launches)
    if not kernels:
        print("FAIL [ptxas] report: no kernel in the ptxas reports (%s)" % " ".join(a.ptxas))
        return 1
    names = sorted({k for k, _ in kernels})
    short = demangle(names)
    failures = 0
    rows = []
    for name in sorted(names, key=lambda n: short[n]):
        for arch in ("sm_89", "sm_90"):
            r = kernels.get((name, arch))
            label = "[ptxas:%s] %s" % (arch, short[name])
            if r is None or r["regs"] is None:
                print("FAIL %s: no ptxas report for %s" % (label, arch))
                failures += 1
                continue
            if name not in launches:
                print("FAIL %s: no test launches it, so its launch size is unknown and unchecked" % label)
                failures += 1
                rows.append((short[name], arch, r, None, None, None, "FAIL (never launched)"))
                continue
            threads, dyn = launches[name]
            warps = (threads + 31) // 32
            regs_block = warps * ((r["regs"] * 32 + 255) // 256 * 256)
            smem = r["smem"] + dyn
            why = []
            if r["spill_st"] or r["spill_ld"]:
                why.append("spills (%d bytes stored, %d loaded)" % (r["spill_st"], r["spill_ld"]))
            if regs_block > REGS_PER_BLOCK:
                why.append("%d registers x %d threads = %d > %d per block" % (r["regs"], threads, regs_block,
                                                                              REGS_PER_BLOCK))
            if r["smem"] > SMEM_STATIC_MAX:
                why.append("%d bytes of static shared memory > %d" % (r["smem"], SMEM_STATIC_MAX))
            if smem > SMEM_BLOCK_MAX[arch]:
                why.append("%d static + %d dynamic bytes of shared memory > %d" % (r["smem"], dyn, SMEM_BLOCK_MAX[arch]))
            detail = "regs=%d threads=%d regs_per_block=%d smem=%d+%d spills=%d/%d" % (
                r["regs"], threads, regs_block, r["smem"], dyn, r["spill_st"], r["spill_ld"])
            if why:
                print("FAIL %s: %s (%s)" % (label, "; ".join(why), detail))
                failures += 1
            else:
                print("ok %s %s" % (label, detail))
            rows.append((short[name], arch, r, threads, regs_block, dyn, "FAIL" if why else "ok"))
    if a.table:
        with open(a.table, "w", encoding="utf-8") as f:
            f.write("| kernel | arch | regs | threads (largest launch) | regs per block (of 65536) | "
                    "static smem | dynamic smem | spills st/ld | check |\n")
            f.write("|---|---|---|---|---|---|---|---|---|\n")
            for n, arch, r, threads, rb, dyn, verdict in rows:
                f.write("| `%s` | %s | %d | %s | %s | %d | %s | %d/%d | %s |\n" % (
                    n, arch, r["regs"], threads if threads is not None else "-", rb if rb is not None else "-",
                    r["smem"], dyn if dyn is not None else "-", r["spill_st"], r["spill_ld"], verdict))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
