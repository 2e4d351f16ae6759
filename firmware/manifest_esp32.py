# ESP32 boards (esp32-mcp4922): the esp32 port's own frozen modules, the common firmware,
# and the timer-paced driver. See manifest.py.
include("$(PORT_DIR)/boards/manifest.py")
include("manifest.py")
package("hal", files=["esp32.py"], base_path=".")
