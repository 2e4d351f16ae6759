"""Stand-ins for MicroPython's compile-time decorators when the firmware modules run under
CPython (host preview, tests). MicroPython handles @micropython.native itself and never
imports this module."""


def native(f):
    return f


def viper(f):
    return f


def const(x):
    return x
