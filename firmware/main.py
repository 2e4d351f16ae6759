"""Board entry point (rp2 or esp32): load the board file, start the app on USB CDC.

Ctrl-C is disabled while the app owns the port (0x03 is a valid link byte); the EXIT
command re-enables it and returns to the REPL, which mpremote then uses for deploys.
"""
import sys

import micropython

from tes.app import App
from tes.board import load_checked
from tes.fwhash import tree_sha256
from tes.port import StreamPort

BOARD_FILE = "board.json"


def make_hal(board):
    if board["mcu"] == "rp2":
        from hal.rp2 import Rp2Hal as Hal
    else:
        from hal.esp32 import Esp32Hal as Hal
    return Hal(board)


def main():
    board = load_checked(BOARD_FILE)
    hal = make_hal(board)
    hal.zero()
    port = StreamPort(sys.stdin.buffer, sys.stdout.buffer)
    micropython.kbd_intr(-1)
    try:
        App(hal, board, port, tree_sha256("")).run()
    finally:
        hal.zero()
        micropython.kbd_intr(3)


main()
