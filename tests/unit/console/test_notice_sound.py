"""The pause notice's sound: the committed `notice.wav` is what console/notice_sound.py makes (no outside asset), a
short valid WAV the console serves with its audio type."""

from __future__ import annotations

import io
import wave

from console.notice_sound import ASSET, RATE, notice_wav
from tests.unit.console.conftest import ConsoleApp


def test_the_committed_sound_is_the_generated_one_and_short() -> None:
    made = notice_wav()
    assert ASSET.read_bytes() == made, "run `python -m console.notice_sound` and commit the file"
    with wave.open(io.BytesIO(made)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        assert 0.1 < wav.getnframes() / RATE < 0.5


def test_the_console_serves_it(console_env: ConsoleApp) -> None:
    answer = console_env.anonymous().get("/console/assets/notice.wav")
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
    assert answer.content[:4] == b"RIFF"
