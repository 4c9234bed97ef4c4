"""Object-store sinks: batches are encoded into a local temp file and uploaded whole at commit.

Nothing reaches the store before `commit()`: the upload is one PUT, or a multipart upload that
becomes visible only when it completes (and is aborted on failure), so a reader sees the old
object or the new one, never part of one. `abort()` deletes the temp file; the store is untouched.

Targets and modes:
- one object (`out/result.parquet`):
  - replace: the object becomes exactly the rows written;
  - append, upsert (`key` columns) and `run_key` writes rewrite the object at commit: the old
    object is downloaded, its rows whose key (upsert) or `_atom_run` value (run key) matches the
    new rows are dropped, the new rows follow, and the whole file is uploaded. That costs
    O(object size) per write (object stores have no append; csv, jsonl and parquet are copied
    without parsing when no row is dropped), and a write by someone else between that download
    and the upload is overwritten (last writer wins);
- a prefix ending in "/" (`out/parts/`): each commit stores one part object
  `part-<run_key or uuid>.<ext>` (format from `data_format`, default parquet). append adds the
  part (with a run key, a retried run overwrites its own part: idempotent and O(part));
  replace also deletes every other object under the prefix after the upload (readers may briefly
  see both); upsert is refused.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from connectors._formats import (
    EXTENSIONS,
    FORMATS,
    FrameWriter,
    detect_format,
    load_frame,
    translate_errors,
)
from connectors._object_io import fetch_local, local_name, upload_file
from connectors._objects import GLOB_CHARS, is_prefix_target
from connectors.base import RUN_COLUMN, Sink, WriteOptions
from connectors.errors import ConnectorConfigError, RequestRejected, TargetNotFound

if TYPE_CHECKING:
    from connectors._objects import ObjectStoreConnector


class ObjectSink(Sink):
    """A streaming write to one object (or one new part object under a prefix); see the module doc.

    Attributes:
        key: the object the commit stores.
        uri: its secret-free name.
    """

    def __init__(self, connector: ObjectStoreConnector, target: str, options: WriteOptions) -> None:
        super().__init__(target, options)
        self.conn = connector
        self.prefix = is_prefix_target(target)
        if self.prefix:
            if any(c in target for c in GLOB_CHARS):
                raise ConnectorConfigError(
                    f"cannot write to the glob {connector.uri(target)}: "
                    "name an object or a prefix ending in '/'"
                )
            if options.mode == "upsert":
                raise ConnectorConfigError(
                    f"upsert into the prefix {connector.uri(target)} is not supported: "
                    "upsert into one object (a key)"
                )
            fmt = FORMATS.get((options.data_format or "parquet").lower())
            if fmt is None:
                raise ConnectorConfigError(
                    f"unknown dataFormat {options.data_format!r} for {connector.uri(target)}: "
                    f"valid values are {', '.join(sorted(FORMATS))}"
                )
            self.fmt = fmt
            self.key = f"{target}part-{options.run_key or uuid.uuid4().hex}.{EXTENSIONS[fmt]}"
        else:
            self.fmt = detect_format(target, options.data_format)
            self.key = target
        self.uri = connector.uri(self.key)
        self._tmp: Path | None = None
        self._writer: FrameWriter | None = None

    def _workdir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="atom-sink-"))
        return self._tmp

    async def write(self, batch: pd.DataFrame) -> None:
        """Encode rows into the local file; nothing is visible in the store before `commit()`."""
        if self._finished:
            raise RequestRejected(f"the sink to {self.uri} is already committed or aborted: open a new one")
        if self._writer is None:
            tmp = await asyncio.to_thread(self._workdir)
            self._writer = FrameWriter(tmp / f"new-{local_name(self.key)}", self.fmt, name=self.uri)
        if self.options.run_key is not None and not self.prefix:
            batch = batch.assign(**{RUN_COLUMN: self.options.run_key})
        with translate_errors(self.uri, "writing"):
            await asyncio.to_thread(self._writer.write, batch)
        self.rows += len(batch)

    async def commit(self) -> int:
        """Upload the file (multipart when large); the object changes here, whole. Returns rows written."""
        self._finished = True
        try:
            tmp = await asyncio.to_thread(self._workdir)
            new = self._writer or FrameWriter(tmp / f"new-{local_name(self.key)}", self.fmt, name=self.uri)
            with translate_errors(self.uri, "writing"):
                await asyncio.to_thread(new.close)
            final = new.path
            if not self.prefix and self.options.mode != "replace":
                final = await self._with_old_rows(new)
            await self.conn.call("writing", self.key, upload_file, self.conn, final, self.key)
            if self.prefix and self.options.mode == "replace":
                async for info in self.conn.list_objects(self.target):
                    if info.path != self.key:
                        await self.conn.delete_object(info.path)
        finally:
            self._cleanup()
        return self.rows

    async def abort(self) -> None:
        """Drop the local file; the store is untouched."""
        self._finished = True
        self._cleanup()

    def _cleanup(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.discard()
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    async def _with_old_rows(self, new: FrameWriter) -> Path:
        """append / upsert / run key: a file with the old object's kept rows, then the new rows.

        Streams (csv, jsonl and parquet copy without parsing when no row is dropped); the old
        object is fetched now, so a write to it by someone else since is overwritten.
        """
        keys = list(self.options.key) if self.options.mode == "upsert" else []
        try:
            async with fetch_local(self.conn, self.key) as old:
                taken = (
                    await asyncio.to_thread(self._new_keys, new.path, keys) if keys and self.rows else None
                )
                out = FrameWriter(self._workdir() / f"final-{local_name(self.key)}", self.fmt, name=self.uri)
                with translate_errors(self.uri, "writing"):
                    await asyncio.to_thread(self._merge, out, old, new, keys, taken)
                return out.path
        except TargetNotFound:
            return new.path

    def _new_keys(self, path: Path, keys: list[str]) -> pd.MultiIndex:
        frame = pd.read_parquet(path, columns=keys) if self.fmt == "parquet" else load_frame(path, self.fmt)
        absent = [k for k in keys if k not in frame.columns]
        if absent:
            raise RequestRejected(
                f"cannot upsert into {self.uri}: key column(s) {absent} are not in the rows; "
                "pass key= columns they have"
            )
        return pd.MultiIndex.from_frame(frame[keys])

    def _merge(
        self, out: FrameWriter, old: Path, new: FrameWriter, keys: list[str], taken: pd.MultiIndex | None
    ) -> None:
        """Blocking: old rows (minus replaced ones) then new rows into `out`."""
        run_key = self.options.run_key
        new_columns = new.columns or []

        def keep_old(page: pd.DataFrame) -> pd.DataFrame:
            if run_key is not None:
                if RUN_COLUMN in page.columns:
                    page = page[~(page[RUN_COLUMN].astype("string") == run_key).fillna(False)]
                else:
                    page = page.assign(**{RUN_COLUMN: None})
            if keys and taken is not None and len(page):
                absent = [k for k in keys if k not in page.columns]
                if absent:
                    raise RequestRejected(
                        f"cannot upsert into {self.uri}: key column(s) {absent} are not in the object; "
                        "pass key= columns it has"
                    )
                page = page[~pd.MultiIndex.from_frame(page[keys]).isin(taken)]
            return page

        transform = keep_old if run_key is not None or taken is not None else None
        try:
            out.append_file(old, transform=transform)
            if self.rows:
                add_run = (
                    bool(out.columns) and RUN_COLUMN in (out.columns or []) and RUN_COLUMN not in new_columns
                )
                out.append_file(
                    new.path, transform=(lambda p: p.assign(**{RUN_COLUMN: None})) if add_run else None
                )
            out.close()
        except BaseException:
            out.discard()
            raise
