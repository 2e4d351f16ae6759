"""Board entry point (rp2 or esp32): load the board file, start the app on USB CDC.

Ctrl-C is disabled while the app owns the port (0x03 is a valid link byte). The EXIT
command ends the app; the board then reboots once straight into its REPL (a flag file tells
the next boot to skip the app), because a watchdog that a session started cannot be
stopped and would reset the board under mpremote a second later.
"""
import gc
import sys

import machine
import micropython

SKIP_FLAG = "skip_app"    # relative: a board boots in /, a test in its own folder
BOARD_FILE = "board.json"
USB_CHUNK = 64            # bytes written after each writable poll of the USB CDC


def take_skip_flag():
    import os
    try:
        os.remove(SKIP_FLAG)
        return True
    except OSError:
        return False


def make_hal(board):
    if board["mcu"] == "esp32":
        from hal.esp32 import Esp32Hal
        return Esp32Hal(board)
    if board.get("current_sources", 1) > 1:      # one DAC channel per source (hal.rp2_multi)
        from hal.rp2_multi import Rp2MultiHal
        return Rp2MultiHal(board)
    from hal.rp2 import Rp2Hal
    return Rp2Hal(board)


def main():
    if take_skip_flag():
        print("tesctl: app skipped once after EXIT; at the REPL")
        return
    from tes.board import load_checked
    from tes.port import StreamPort

    board = load_checked(BOARD_FILE)
    # tes.board (~8 KiB of an RP2040's RAM) checks the board file once, here: drop it, so the
    # app's modules and a session's buffers have that room (main's HEAD ran out at boot).
    load_checked = None
    sys.modules.pop("tes.board", None)
    try:
        import tes
        del tes.board  # pyright: ignore[reportAttributeAccessIssue]  (the package's reference to it)
    except (AttributeError, TypeError):
        pass
    gc.collect()
    # The big buffers first (the HAL's rings, 16 + 8 KiB on rp2; the port's queue), then the
    # app's modules: allocated after the app's bytecode they found no block that large in
    # an RP2040's fragmented heap (a MemoryError at boot, measured on the virtual RP2040).
    hal = make_hal(board)
    hal.zero()
    # A host that stops reading for a while must not stall the control loop: the USB CDC
    # write blocks while its 256-byte FIFO is full (a 20 kS/s session ran dry on the virtual
    # RP2040 while the host was slow). Send only when writable, 64 bytes at a time (one USB
    # packet: a reading host frees that within a frame), queue the rest, drop when full.
    port = StreamPort(sys.stdin.buffer, sys.stdout.buffer, drop=True, chunk=USB_CHUNK)
    from tes.app import App
    from tes.fwhash import tree_sha256
    micropython.kbd_intr(-1)
    try:
        App(hal, board, port, tree_sha256("")).run()
    finally:
        hal.zero()
        micropython.kbd_intr(3)
    with open(SKIP_FLAG, "w") as f:     # the app returned on EXIT
        f.write("1")
    machine.reset()


main()
