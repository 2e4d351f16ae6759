"""`tesctl ports`: serial ports, with the ones that look like a tesctl board first."""
from serial.tools import list_ports as serial_ports

# (VID, PID or None for any) -> what it is. Native USB of the supported MCUs, and the
# USB-UART bridges that ESP32 dev boards carry.
BOARD_IDS = {
    (0x2E8A, None): "Raspberry Pi RP2040 (MicroPython)",
    (0x303A, None): "Espressif native USB (ESP32-S2/S3/C3)",
    (0x10C4, 0xEA60): "CP210x USB-UART (ESP32 dev board)",
    (0x1A86, 0x7523): "CH340 USB-UART (ESP32 dev board)",
    (0x0403, 0x6001): "FTDI FT232 USB-UART",
}


def match(vid, pid):
    """Label for a VID/PID pair that looks like a board, or '' if it does not."""
    if vid is None:
        return ""
    return BOARD_IDS.get((vid, pid)) or BOARD_IDS.get((vid, None)) or ""


def list_ports():
    rows = []
    for p in serial_ports.comports():
        vid, pid = getattr(p, "vid", None), getattr(p, "pid", None)
        label = match(vid, pid)
        rows.append({"device": p.device, "description": p.description or "", "hwid": p.hwid or "",
                     "vid": vid, "pid": pid, "likely": bool(label), "match": label})
    rows.sort(key=lambda r: (not r["likely"], r["device"]))
    return rows


def format_ports(rows):
    if not rows:
        return "no serial ports found"
    lines = []
    for r in rows:
        ids = "%04X:%04X" % (r["vid"], r["pid"] or 0) if r["vid"] is not None else "-"
        mark = "*" if r["likely"] else " "
        desc = r["match"] or r["description"]
        lines.append("%s %-22s %-10s %s" % (mark, r["device"], ids, desc))
    if any(r["likely"] for r in rows):
        lines.append("(* looks like a board)")
    else:
        lines.append("no port looks like a supported board (RP2040, ESP32)")
    return "\n".join(lines)
