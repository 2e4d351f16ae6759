"""tesctl.ports with a faked serial.tools.list_ports.comports."""
from serial.tools import list_ports as lp
from serial.tools.list_ports_common import ListPortInfo

from tesctl import ports


def fake(device, vid=None, pid=None, description="n/a"):
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.description = vid, pid, description
    if vid is not None:
        p.hwid = "USB VID:PID=%04X:%04X" % (vid, pid)
    return p


FAKES = [
    fake("/dev/ttyS0"),
    fake("/dev/ttyACM0", 0x2E8A, 0x0005, "Board in FS mode"),
    fake("/dev/ttyUSB1", 0x1A86, 0x7523, "USB Serial"),
    fake("/dev/ttyUSB0", 0x10C4, 0xEA60, "CP2102 USB to UART"),
    fake("/dev/ttyACM1", 0x303A, 0x1001, "USB JTAG/serial debug unit"),
    fake("/dev/ttyUSB2", 0x0403, 0x6001, "FT232R USB UART"),
    fake("/dev/ttyUSB3", 0x0403, 0x6015, "FT231X"),     # FTDI, but not the listed PID
    fake("/dev/ttyACM2", 0x2341, 0x0043, "Arduino Uno"),
]


def test_list_ports_marks_boards(monkeypatch):
    monkeypatch.setattr(lp, "comports", lambda *a, **k: list(FAKES))
    rows = ports.list_ports()
    assert len(rows) == len(FAKES)
    assert set(rows[0]) >= {"device", "description", "hwid", "vid", "pid", "likely"}
    likely = {r["device"] for r in rows if r["likely"]}
    assert likely == {"/dev/ttyACM0", "/dev/ttyUSB1", "/dev/ttyUSB0", "/dev/ttyACM1", "/dev/ttyUSB2"}
    # Likely boards first, then the rest; each group by device name.
    assert [r["likely"] for r in rows] == [True] * 5 + [False] * 3
    assert rows[0]["device"] == "/dev/ttyACM0" and rows[0]["vid"] == 0x2E8A
    text = ports.format_ports(rows)
    assert "* /dev/ttyACM0" in text and "2E8A:0005" in text and "RP2040" in text
    assert "  /dev/ttyS0" in text and "Arduino Uno" in text


def test_no_ports(monkeypatch):
    monkeypatch.setattr(lp, "comports", lambda *a, **k: [])
    assert ports.list_ports() == []
    assert ports.format_ports([]) == "no serial ports found"


def test_no_board_among_ports(monkeypatch):
    monkeypatch.setattr(lp, "comports", lambda *a, **k: [fake("/dev/ttyS0")])
    text = ports.format_ports(ports.list_ports())
    assert "no port looks like a supported board" in text
