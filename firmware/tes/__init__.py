"""tes: the device package of tesctl. Its pure modules (limits, validate, engine, noise,
tables) also import under CPython, so host and device share one engine and one validator."""

VERSION = "0.1.0"
