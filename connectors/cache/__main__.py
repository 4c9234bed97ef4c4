"""Command line for the download cache: `python -m connectors.cache fetch URL | ls | prune`.

`fetch` downloads an HTTP(S) object into the cache ahead of the operator that reads it (a reader
in another process waits for this download or finds it done) and shows a progress bar.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from connectors.errors import AtomError


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m connectors.cache", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=None, help="cache directory (default ~/.cache/atom/files)"
    )
    parser.add_argument("--max-bytes", type=float, default=20, help="cache size limit in GiB (default 20)")
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download an http(s) URL into the cache")
    fetch.add_argument("url")
    fetch.add_argument("--parallel", type=int, default=4, help="connections (default 4)")
    fetch.add_argument("--part-size", type=float, default=16, help="MiB per range request (default 16)")
    fetch.add_argument("--header", action="append", default=[], help="extra request header 'Name: value'")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser("ls", help="list cached objects")
    prune = sub.add_parser("prune", help="evict unpinned entries down to a size")
    prune.add_argument("--to", type=float, default=None, help="GiB to keep (default: the limit; 0 empties)")
    return parser


def _fetch(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from connectors.cache import FileCache
    from connectors.http import HttpRangeSource

    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    cache = FileCache(
        args.root,
        max_bytes=int(args.max_bytes * 2**30),
        part_size=int(args.part_size * 2**20),
        parallel=args.parallel,
    )
    source = HttpRangeSource(args.url, headers=headers)
    bar = Progress(
        "[bold]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), disable=args.quiet
    )
    task = bar.add_task(source.uri.rsplit("/", 1)[-1] or source.uri, total=None)
    started = time.monotonic()
    try:
        with bar:
            cached = cache.fetch_sync(
                source, progress=lambda done, total: bar.update(task, completed=done, total=total)
            )
            bar.update(task, completed=cached.size, total=cached.size)
    except KeyboardInterrupt:
        cache.close()
        _err("interrupted: the partial download resumes on the next fetch")
        return 130
    finally:
        source.close()
    cached.release()
    cache.close()
    seconds = time.monotonic() - started
    _out(f"{cached.path}\t{cached.size}\tsha256:{cached.digest}\t{seconds:.2f}s")
    return 0


def _ls(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from connectors.cache import FileCache

    cache = FileCache(args.root)
    table = Table("sha256", "bytes", "last used", "pinned", "uri")
    entries = sorted(cache.entries(), key=lambda e: e.used, reverse=True)
    for e in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.used))
        table.add_row(e.digest[:12], f"{e.size:,}", used, "yes" if e.pinned else "", "\n".join(e.uris))
    Console().print(table)
    _out(f"{len(entries)} entries, {sum(e.size for e in entries):,} bytes in {cache.root}")
    return 0


def _prune(args: argparse.Namespace) -> int:
    from connectors.cache import FileCache

    cache = FileCache(args.root, max_bytes=int(args.max_bytes * 2**30))
    freed = cache.prune(None if args.to is None else int(args.to * 2**30))
    _out(f"freed {freed:,} bytes in {cache.root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return {"fetch": _fetch, "ls": _ls, "prune": _prune}[args.command](args)
    except AtomError as exc:
        _err(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
