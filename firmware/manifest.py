# Freeze the tesctl firmware into a MicroPython build (docs/hardware.md, "Freezing"). This
# file holds what every board freezes: the device package and the board-neutral hal
# modules. A board's build uses its own manifest (manifest_rp2.py, manifest_esp32.py),
# which includes the port's default manifest, this one and the board's driver:
#   make -C ports/rp2 BOARD=RPI_PICO FROZEN_MANIFEST=/path/to/tesctl/firmware/manifest_rp2.py
# main.py and board.json stay on the board's filesystem (tesctl deploy copies them).
package("tes", base_path=".")
package("hal", files=["__init__.py", "base.py", "blocks.py", "blocks_fast.py", "calib.py", "mcp4922.py"],
        base_path=".")
