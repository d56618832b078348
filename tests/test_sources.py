"""Mail sources against a real Dovecot (plain, STARTTLS, SSL) and a local Maildir."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mailflow.sources import SourceError
from mailflow.sources.imap import ImapSource
from mailflow.sources.maildir import MaildirSource
from tests.servers import free_port
from tests.servers.dovecot import DovecotServer, ImapAccount


def raw_message(n: int, body: bytes = b"hello") -> bytes:
    return (f"From: sender{n}@example.test\r\nTo: help@example.test\r\nSubject: message {n}\r\n"
            f"Message-ID: <m{n}@example.test>\r\nContent-Type: text/plain; charset=windows-1251\r\n"
            f"\r\n").encode() + body + b"\r\n"


def imap_source(server: DovecotServer, account: ImapAccount, security: str = "none", **kwargs) -> ImapSource:
    port = server.ssl_port if security == "ssl" else server.port
    kwargs.setdefault("ssl_verify", False)
    return ImapSource(server.host, port, security, account.address, account.password, **kwargs)


def flags_of(server: DovecotServer, user: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
    return {uid: flags for uid, flags, _raw in server.folder_messages(user, folder)}


# --- IMAP --------------------------------------------------------------------------------------


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_imap_fetch_new(dovecot: DovecotServer, imap_account: ImapAccount, security: str) -> None:
    user = imap_account.address
    raws = [raw_message(i, "Привет, мир".encode("cp1251")) for i in range(3)]
    uids = dovecot.append_many(user, raws)
    source = imap_source(dovecot, imap_account, security)
    source.open()
    try:
        validity = source.uidvalidity()
        assert validity == dovecot.uidvalidity(user)
        mails = source.fetch_new(0, 10)
        assert [m.raw for m in mails] == raws  # byte-identical, 8-bit bodies included
        assert [m.source_ref for m in mails] == [f"{validity}:{uid}" for uid in uids]
        assert [(m.uidvalidity, m.uid) for m in mails] == [(validity, uid) for uid in uids]
        assert [m.uid for m in source.fetch_new(uids[0], 10)] == uids[1:]
        assert [m.uid for m in source.fetch_new(0, 2)] == uids[:2]
        assert source.fetch_new(uids[-1], 10) == []  # "N:*" still matches the last message
        assert source.fetch_new(uids[-1] + 100, 10) == []
    finally:
        source.close()
    assert all(b"\\Seen" not in f for f in flags_of(dovecot, user).values())  # BODY.PEEK[]


def test_imap_fetch_in_batches(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    uids = dovecot.append_many(imap_account.address, [raw_message(i) for i in range(250)])
    source = imap_source(dovecot, imap_account)
    source.open()
    try:
        first = source.fetch_new(0, 200)
        assert [m.uid for m in first] == uids[:200]
        assert [m.uid for m in source.fetch_new(first[-1].uid or 0, 200)] == uids[200:]
    finally:
        source.close()


def test_imap_wrong_password(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    source = ImapSource(dovecot.host, dovecot.port, "none", imap_account.address, "Wrong-Secret-42")
    with pytest.raises(SourceError) as err:
        source.open()
    text = str(err.value)
    assert f"IMAP 127.0.0.1:{dovecot.port}: login failed for {imap_account.address}" in text
    assert "AUTHENTICATIONFAILED" in text and "Wrong-Secret-42" not in text
    assert "Wrong-Secret-42" not in repr(source)


def test_imap_errors_are_source_errors(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    with pytest.raises(SourceError, match="connection refused"):
        ImapSource("127.0.0.1", free_port(), "none", "u", "p", timeout=2).open()
    with pytest.raises(SourceError, match="cannot open folder 'Nope'"):
        imap_source(dovecot, imap_account, folder="Nope").open()
    with pytest.raises(SourceError, match="TLS certificate not trusted"):
        imap_source(dovecot, imap_account, "ssl", ssl_verify=True).open()
    with pytest.raises(SourceError, match="not connected"):
        imap_source(dovecot, imap_account).fetch_new(0, 1)
    with pytest.raises(SourceError, match="login failed"):
        ImapSource(dovecot.host, dovecot.port, "none", "nobody@example.test", "x").check()
    imap_source(dovecot, imap_account, "starttls").check()


def test_imap_server_down_and_back(dovecot_factory) -> None:
    server: DovecotServer = dovecot_factory()
    account = server.new_user()
    server.append(account.address, raw_message(1))
    source = imap_source(server, account, timeout=5)
    source.open()
    server.stop()
    with pytest.raises(SourceError, match=f"IMAP 127.0.0.1:{server.port}: fetch failed"):
        source.fetch_new(0, 10)
    with pytest.raises(SourceError, match="connection refused"):
        source.open()
    server.start()
    source.open()
    assert len(source.fetch_new(0, 10)) == 1
    source.close()


@pytest.mark.parametrize("processed_folder", ["", "Processed"])
def test_imap_mark_processed(
    dovecot: DovecotServer, imap_account: ImapAccount, processed_folder: str
) -> None:
    user = imap_account.address
    uids = dovecot.append_many(user, [raw_message(i) for i in range(3)])
    source = imap_source(dovecot, imap_account, processed_folder=processed_folder)
    source.open()
    try:
        mails = source.fetch_new(0, 10)
        stale = f"{(source.uidvalidity() or 0) - 1}:{uids[2]}"  # a ref from an older UIDVALIDITY
        source.mark_processed([mails[0].source_ref, mails[1].source_ref, stale, "garbage"])
        source.mark_processed([mails[0].source_ref])  # again: already done, no error
    finally:
        source.close()
    inbox = flags_of(dovecot, user)
    if processed_folder:
        assert list(inbox) == [uids[2]]
        moved = dovecot.folder_messages(user, processed_folder)
        assert [raw for _uid, _flags, raw in moved] == [m.raw for m in mails[:2]]
        assert all(b"\\Seen" in flags for _uid, flags, _raw in moved)
    else:
        assert b"\\Seen" in inbox[uids[0]] and b"\\Seen" in inbox[uids[1]]
    assert b"\\Seen" not in inbox[uids[2]]


def test_imap_uidvalidity_change(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    user = imap_account.address
    dovecot.append_many(user, [raw_message(i) for i in range(2)])
    source = imap_source(dovecot, imap_account)
    source.open()
    old_validity = source.uidvalidity()
    old_refs = [m.source_ref for m in source.fetch_new(0, 10)]
    new_validity = dovecot.recreate_folder(user)
    with pytest.raises(SourceError):  # the server dropped our session
        source.fetch_new(0, 10)
    source.open()
    try:
        assert source.uidvalidity() == new_validity != old_validity
        mails = source.fetch_new(0, 10)
        assert [m.source_ref for m in mails] == [f"{new_validity}:1", f"{new_validity}:2"]
        source.mark_processed(old_refs)  # refs of the old UIDVALIDITY change nothing
    finally:
        source.close()
    assert all(b"\\Seen" not in f for f in flags_of(dovecot, user).values())


def test_imap_idle_wakes_on_new_mail(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    source = imap_source(dovecot, imap_account)
    source.open()
    try:
        started = time.monotonic()
        assert source.wait_for_mail(1.2) is False
        assert 1.1 < time.monotonic() - started < 2.5

        appended_at: list[float] = []

        def deliver() -> None:
            time.sleep(0.3)
            dovecot.append(imap_account.address, raw_message(1))
            appended_at.append(time.monotonic())

        thread = threading.Thread(target=deliver)
        thread.start()
        assert source.wait_for_mail(10) is True
        woke = time.monotonic()
        thread.join()
        assert woke - appended_at[0] < 2.0
        assert len(source.fetch_new(0, 10)) == 1
        # Mail that arrives outside IDLE is seen by the next fetch (and/or wakes the next wait).
        dovecot.append(imap_account.address, raw_message(2))
        assert [m.uid for m in source.fetch_new(1, 10)] == [2]
        assert source.wait_for_mail(1.2) is False
        # Mail announced in a command's responses still wakes the next wait at once.
        dovecot.append(imap_account.address, raw_message(3))
        source.mark_processed(["1:1"])  # a stale ref: no command, so send one that syncs
        source._connected().noop()
        started = time.monotonic()
        assert source.wait_for_mail(5) is True
        assert time.monotonic() - started < 0.1
    finally:
        source.close()


def test_imap_idle_reconnects_when_dropped(dovecot: DovecotServer, imap_account: ImapAccount) -> None:
    dovecot.append(imap_account.address, raw_message(1))
    source = imap_source(dovecot, imap_account)
    source.open()
    try:
        timer = threading.Timer(0.3, dovecot.kick, args=(imap_account.address,))
        timer.start()
        started = time.monotonic()
        assert source.wait_for_mail(10) is True
        assert time.monotonic() - started < 5
        timer.join()
        assert len(source.fetch_new(0, 10)) == 1  # on the new connection
    finally:
        source.close()


# --- Maildir -----------------------------------------------------------------------------------


def put(maildir: Path, sub: str, name: str, raw: bytes, mtime: float) -> None:
    path = maildir / sub / name
    path.write_bytes(raw)
    os.utime(path, (mtime, mtime))


def test_maildir_fetch_new(tmp_path: Path) -> None:
    maildir = tmp_path / "box"
    source = MaildirSource(maildir)
    source.open()
    assert all((maildir / sub).is_dir() for sub in ("new", "cur", "tmp"))
    assert source.uidvalidity() is None and source.fetch_new(0, 10) == []
    now = time.time()
    put(maildir, "new", "300.b.host", raw_message(3), now - 10)
    put(maildir, "new", "100.a.host", raw_message(1), now - 30)
    put(maildir, "cur", "200.c.host:2,F", raw_message(2), now - 20)  # read by nobody: still new
    put(maildir, "cur", "050.d.host:2,S", raw_message(0), now - 40)  # seen: not ours to take
    put(maildir, "new", "400.a.host", raw_message(4), now - 10)  # same mtime: by name
    mails = source.fetch_new(999, 10)
    assert [m.source_ref for m in mails] == ["100.a.host", "200.c.host", "300.b.host", "400.a.host"]
    assert mails[0].raw == raw_message(1) and mails[0].uid is None
    assert source.fetch_new(0, 10) == []  # issue 18: nothing is handed out twice in one pass
    source.close()
    source.open()
    assert [m.source_ref for m in source.fetch_new(0, 2)] == ["100.a.host", "200.c.host"]


@pytest.mark.parametrize("processed_folder", ["", "Processed"])
def test_maildir_mark_processed(tmp_path: Path, processed_folder: str) -> None:
    maildir = tmp_path / "box"
    source = MaildirSource(maildir, processed_folder=processed_folder)
    source.open()
    now = time.time()
    put(maildir, "new", "1.a.host", raw_message(1), now - 3)
    put(maildir, "cur", "2.b.host:2,F", raw_message(2), now - 2)
    put(maildir, "new", "3.c.host", raw_message(3), now - 1)
    refs = [m.source_ref for m in source.fetch_new(0, 10)]
    source.mark_processed([*refs[:2], "gone.key", "../escape"])
    source.mark_processed(refs[:1])  # already moved: ignored
    source.close()
    source.open()
    assert [m.source_ref for m in source.fetch_new(0, 10)] == ["3.c.host"]
    target = maildir / f".{processed_folder}" if processed_folder else maildir
    assert sorted(os.listdir(target / "cur")) == ["1.a.host:2,S", "2.b.host:2,FS"]
    assert (target / "cur" / "1.a.host:2,S").read_bytes() == raw_message(1)
    # A fresh source (after a restart) finds keys without a previous fetch.
    other = MaildirSource(maildir, processed_folder=processed_folder)
    other.mark_processed(["3.c.host"])
    assert other.fetch_new(0, 10) == []


def test_maildir_wait_for_mail(tmp_path: Path) -> None:
    maildir = tmp_path / "box"
    stop = threading.Event()
    source = MaildirSource(maildir, stop_event=stop)
    source.open()
    started = time.monotonic()
    assert source.wait_for_mail(0.5) is False
    assert time.monotonic() - started >= 0.5
    threading.Timer(0.2, put, args=(maildir, "new", "9.x.host", raw_message(9), time.time())).start()
    assert source.wait_for_mail(5) is True
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert source.wait_for_mail(5) is False
    assert time.monotonic() - started < 1


def test_maildir_errors(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(SourceError, match="Maildir"):
        MaildirSource(not_a_dir).open()
    with pytest.raises(SourceError, match="Maildir"):
        MaildirSource(tmp_path / "missing").fetch_new(0, 1)
    with pytest.raises(ValueError):
        MaildirSource(tmp_path, processed_folder="a/b")


def test_imap_server_without_move_and_idle(dovecot_factory) -> None:
    server: DovecotServer = dovecot_factory(extra_config="imap_capability = IMAP4rev1 UIDPLUS LITERAL+")
    account = server.new_user()
    uids = server.append_many(account.address, [raw_message(1), raw_message(2)])
    stop = threading.Event()
    source = imap_source(server, account, processed_folder="Done", stop_event=stop)
    source.open()
    try:
        mails = source.fetch_new(0, 10)
        source.mark_processed([m.source_ref for m in mails[:1]])
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        assert source.wait_for_mail(5) is False  # no IDLE: sleeps, interrupted by stop_event
        assert time.monotonic() - started < 2
    finally:
        source.close()
    inbox = flags_of(server, account.address)
    assert list(inbox) == uids and b"\\Seen" in inbox[uids[0]]  # COPY only: nothing deleted here
    assert [raw for _uid, _flags, raw in server.folder_messages(account.address, "Done")] == [mails[0].raw]
