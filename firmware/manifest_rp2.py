# RP2040 boards (pico-mcp4922): the rp2 port's own frozen modules, the common firmware,
# and the PIO/DMA driver. See manifest.py.
include("$(PORT_DIR)/boards/manifest.py")
include("manifest.py")
package("hal", files=["rp2.py", "pio_dac.py", "rp2_pacing.py"], base_path=".")
