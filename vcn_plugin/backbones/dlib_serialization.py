"""A reader for dlib's binary serialization format (``dlib/serialize.h``, ``dlib/dnn``).

Only what a trained ``dlib::dnn`` network file needs is implemented:

* integers: one control byte (low 4 bits = number N of payload bytes, bit 0x80 =
  negative) followed by N little-endian magnitude bytes; zero is ``01 00``;
* bool: one ASCII byte ``'1'`` / ``'0'``;
* float / double: a signed dlib integer mantissa, then an int16 exponent in the
  same integer encoding; value = mantissa * 2**exponent (exponents 32000, 32001
  and 32002 encode +inf, -inf and NaN);
* string: unsigned length, then the bytes;
* tensor: version 2, num_samples, k, nr, nc, then the raw little-endian float32
  values in NCHW order; alias_tensor: version 1 and four ints, no data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_INF_EXPONENT, _NEG_INF_EXPONENT, _NAN_EXPONENT = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The bytes do not follow dlib's serialization format (or the expected architecture)."""


@dataclass(frozen=True)
class AliasTensorShape:
    """A serialized ``alias_tensor``: only its shape is stored."""

    num_samples: int
    k: int
    nr: int
    nc: int

    @property
    def size(self) -> int:
        return self.num_samples * self.k * self.nr * self.nc


class DlibReader:
    """Sequential reader over the bytes of a dlib-serialized object."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path) -> "DlibReader":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"dlib model file not found: {path}")
        return cls(path.read_bytes(), source=str(path))

    @property
    def position(self) -> int:
        return self._pos

    @property
    def at_end(self) -> bool:
        return self._pos == len(self._data)

    def error(self, message: str) -> DlibFormatError:
        return DlibFormatError(f"{self.source}: byte {self._pos}: {message}")

    def _take(self, n: int) -> memoryview:
        if self._pos + n > len(self._data):
            raise self.error(f"unexpected end of data (wanted {n} more bytes)")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def read_int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise self.error(f"integer control byte {control:#04x} announces {size} bytes (max 8)")
        value = int.from_bytes(bytes(self._take(size)), "little")
        return -value if control & 0x80 else value

    def read_bool(self) -> bool:
        byte = bytes(self._take(1))
        if byte not in (b"0", b"1"):
            raise self.error(f"expected a bool ('0' or '1'), got {byte!r}")
        return byte == b"1"

    def read_float(self) -> float:
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == _INF_EXPONENT:
            return math.inf
        if exponent == _NEG_INF_EXPONENT:
            return -math.inf
        if exponent == _NAN_EXPONENT:
            return math.nan
        return math.ldexp(mantissa, exponent)

    def read_string(self) -> str:
        length = self.read_int()
        if length < 0:
            raise self.error(f"negative string length {length}")
        return bytes(self._take(length)).decode("latin-1")

    def expect_int(self, expected: int, what: str) -> None:
        value = self.read_int()
        if value != expected:
            raise self.error(f"{what}: expected {expected}, found {value}")

    def expect_string(self, expected: str) -> None:
        value = self.read_string()
        if value != expected:
            raise self.error(f"expected layer/version string {expected!r}, found {value!r}")

    def read_tensor(self) -> np.ndarray:
        """A ``tensor`` as a float32 array of shape (num_samples, k, nr, nc)."""
        self.expect_int(2, "tensor serialization version")
        shape = tuple(self.read_int() for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.error(f"negative tensor dimension in {shape}")
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def read_alias_tensor(self) -> AliasTensorShape:
        self.expect_int(1, "alias_tensor serialization version")
        return AliasTensorShape(*(self.read_int() for _ in range(4)))
