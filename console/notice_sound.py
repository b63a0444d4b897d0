"""The console's notice sound (`assets/notice.wav`): a short two-note chime, made here rather than downloaded, so
the console needs no outside asset. `python -m console.notice_sound` writes the file; a unit test checks the
committed file is what this makes."""

from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path

RATE = 16_000  # samples per second: plenty for a chime, keeps the file small
NOTES = ((880.0, 0.12), (1318.5, 0.18))  # A5 then E6, seconds each
VOLUME = 0.35
ASSET = Path(__file__).parent / "templates" / "console" / "assets" / "notice.wav"


def notice_wav() -> bytes:
    """16-bit mono PCM; each note fades out so it does not click."""
    samples: list[int] = []
    for frequency, seconds in NOTES:
        count = int(RATE * seconds)
        for index in range(count):
            envelope = (1 - index / count) ** 2
            samples.append(round(32767 * VOLUME * envelope * math.sin(2 * math.pi * frequency * index / RATE)))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


if __name__ == "__main__":
    ASSET.write_bytes(notice_wav())
    print(f"wrote {ASSET} ({ASSET.stat().st_size} bytes)")
