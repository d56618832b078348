"""How many messages per second `parse_message` turns into `ParsedMessage` on one core.

Uses the same deterministic corpus as `ingest.py` (DESIGN 6: Russian requests of ~24 KiB on
average, a fifth with attachments, utf-8/windows-1251/KOI8-R bodies in quoted-printable/base64/8bit),
so the parse figure and the end-to-end figure describe the same mail.

    .venv/bin/python benchmarks/parse_speed.py [--count 2000] [--profile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import generate_corpus as _ingest_corpus

from mailflow.parsing import parse_message


def generate_corpus(count: int = 2000) -> list[bytes]:
    """`count` messages, the same on every run."""
    return _ingest_corpus(count)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    corpus = generate_corpus(args.count)
    size = sum(map(len, corpus))
    print(f"{len(corpus)} messages, {size / len(corpus) / 1024:.1f} KiB average, "
          f"{sum(b'Content-Disposition: attachment' in m for m in corpus)} with attachments")
    parse_message(corpus[0])  # imports and lazy set-up outside the timing
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        for raw in corpus:
            parse_message(raw)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    best = 0.0
    for _ in range(args.rounds):
        started = time.perf_counter()
        for raw in corpus:
            parse_message(raw)
        best = max(best, len(corpus) / (time.perf_counter() - started))
    print(f"parse_message: {best:.0f} msg/s (best of {args.rounds} rounds, one core)")


if __name__ == "__main__":
    main()
