"""Viper twin of tes.port.copy_into: k bytes from src[frm:] to dst[at:], forward, one byte
a step. MicroPython's slice assignment (dst[a:b] = src) memmoves everything after the slice
in dst as well (mp_seq_replace_slice_no_grow), so a frame queued into the port's 8 KB
buffer moved ~8 KB; on the virtual RP2040 that memmove was 8 % of a two-source session's
busy CPU. Imported only where the viper emitter exists."""
import micropython


@micropython.viper
def copy_into(dst, at: int, src, frm: int, k: int):
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < k:
        d[at + i] = s[frm + i]
        i += 1
