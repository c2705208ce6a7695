"""The file line reader on its own: chunk boundaries anywhere, bounded lines, bad bytes kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

from attain_worker.rows import MAX_LINE, ReadLine, line_blocks


async def _read(data: bytes, size: int) -> list[ReadLine]:
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i : i + size]

    return [line async for block in line_blocks(chunks()) for line in block]


async def test_lines_are_the_same_whatever_the_chunk_size() -> None:
    data = (
        "\ufeffh\r\ncafé,ü\r\n\r\nx".encode()
        + b"\xe9y\n"  # a byte that is not UTF-8 spoils its line only
        + b"z" * (MAX_LINE + 10)  # a line past the limit, then one more
        + b"\r\nlast"
    )
    expected = [
        (1, "h", False),
        (2, "café,ü", False),
        (3, "", False),
        (4, "x\udce9y", False),
        (5, "z" * MAX_LINE, True),
        (6, "last", False),
    ]
    for size in (1, 2, 3, 7, 1024, 256 * 1024):
        assert await _read(data, size) == expected, size


async def test_a_line_without_end_is_cut_and_never_held_whole() -> None:
    """Ten times the limit in small chunks: what the reader keeps stays at the limit."""
    data = b"h\n" + b"a," * (5 * MAX_LINE)
    assert await _read(data, 4096) == [(1, "h", False), (2, "a," * (MAX_LINE // 2), True)]
