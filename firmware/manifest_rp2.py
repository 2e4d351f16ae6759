# RP2040 boards (pico-mcp4922, pico2-mcp4922): the rp2 port's own frozen modules, the common
# firmware, and the PIO/DMA drivers (one source; two: rp2_multi, its kernels and the
# supervisors' Thumb kernel). See manifest.py.
include("$(PORT_DIR)/boards/manifest.py")
include("manifest.py")
package("hal", files=["rp2.py", "pio_dac.py", "rp2_pacing.py", "rp2_multi.py", "blocks_multi.py",
                     "blocks_multi_fast.py", "check_thumb.py", "split_thumb.py",
                     "put_thumb.py", "sine_thumb.py"], base_path=".")
