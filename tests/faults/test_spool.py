"""The request log's spool file: records read back as written, a cut record ignored, segments
deleted once written, and only the spools of dead processes offered for replay."""

from __future__ import annotations

from pathlib import Path

from songrec.store import spool


def test_records_come_back_and_a_record_cut_by_a_kill_is_ignored(tmp_path: Path) -> None:
    writer = spool.Spool(tmp_path)
    records = [(1, [b"a", b"bb"]), (2, [b"c" * 1000]), (3, [])]
    writer.append(records[:2])
    writer.append(records[2:])
    writer.sync(force=True)
    (segment,) = tmp_path.glob("*.spool")
    assert list(spool.read_records(segment)) == records
    segment.write_bytes(segment.read_bytes()[:-3])  # the last record half written
    assert list(spool.read_records(segment)) == records[:2]
    writer.close()


def test_segments_go_once_written_and_live_spools_are_not_orphans(tmp_path: Path) -> None:
    live = spool.Spool(tmp_path)
    live.append([(1, [b"x"]), (2, [b"y"])])
    live.forget_through(1)
    assert len(list(tmp_path.glob("*.spool"))) == 1  # record 2 is not written yet
    assert list(spool.orphans(tmp_path)) == []  # its lock is held: a live process's spool
    dead = spool.Spool(tmp_path)
    dead.append([(1, [b"z"])])
    dead.close()  # as a killed process leaves it: the lock free, the file kept
    (orphan_id, records), *others = list(spool.orphan_records(tmp_path))
    assert not others and orphan_id == dead.id and records == [(1, [b"z"])]
    spool.remove_spool(tmp_path, dead.id)
    live.forget_through(2)
    assert list(tmp_path.glob("*.spool")) == []
    live.close()
    assert list(tmp_path.iterdir()) == []
