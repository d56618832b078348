"""A small Bot API server on a loopback port: python-telegram-bot is pointed at it via `base_url`.

It speaks the methods inboxdesk uses, keeps every chat's messages in their current state (edits
applied), records every call, and checks what real Telegram checks: HTML that does not parse and
texts over 4096 characters are refused with 400. A test feeds updates (messages, documents, button
presses) into the long poll and can make any method answer 429, 500 or hang.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

from tests.botapi_text import EntityError, utf16_len, visible_text
from tests.servers import free_port

TOKEN = "123456:TEST-token-for-inboxdesk"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Inboxdesk", "username": "inboxdesk_bot"}
TEXT_LIMIT, CAPTION_LIMIT = 4096, 1024
@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, tuple[str, bytes]]
    at: float


@dataclass
class ChatMessage:
    """One message in a chat, in its current state."""

    chat_id: int
    message_id: int
    from_bot: bool
    text: str = ""
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    reply_to: int | None = None
    document: tuple[str, bytes] | None = None
    edits: int = 0

    @property
    def visible(self) -> str:
        return visible_text(self.text, self.parse_mode)

    @property
    def buttons(self) -> list[tuple[str, str]]:
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [(b["text"], b.get("callback_data", "")) for row in rows for b in row]

    def button(self, label_part: str) -> str:
        """callback_data of the first button whose label contains `label_part`."""
        for text, data in self.buttons:
            if label_part in text:
                return data
        raise AssertionError(f"no button {label_part!r} in {self.buttons}")


@dataclass
class _Failure:
    mode: str  # "429" | "500" | "hang"
    times: int
    retry_after: int = 1


@dataclass
class BotApiServer:
    """Start with `with BotApiServer() as api:`; PTB gets `api.base_url` and `api.base_file_url`."""

    token: str = TOKEN
    hang_seconds: float = 30.0
    unknown_chats: frozenset[int] = frozenset()  # sendMessage there answers 400 "chat not found"
    bot_status: str = "administrator"  # the bot's getChatMember status in every group
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.lock = threading.Condition()
        self.updates: list[dict[str, Any]] = []
        self.update_ids = itertools.count(1)
        self.message_ids: dict[int, itertools.count[int]] = {}
        self.chats: dict[int, dict[int, ChatMessage]] = {}
        self.files: dict[str, tuple[str, bytes]] = {}
        self.failures: dict[str, list[_Failure]] = {}
        self.closing = threading.Event()
        self.httpd: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    def start(self) -> None:
        self.closing.clear()
        server = self

        class Handler(_Handler):
            api = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.closing.set()
        with self.lock:
            self.lock.notify_all()  # wake pending long polls
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def __enter__(self) -> BotApiServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the test does ----------------------------------------------------------------------

    def fail(self, method: str, mode: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `method` answer 429 (with retry_after), 500, or hang."""
        with self.lock:
            self.failures.setdefault(method, []).append(_Failure(mode, times, retry_after))

    def send(self, user: dict[str, Any], chat_id: int, text: str = "", *, reply_to: int | None = None,
             document: tuple[str, str, bytes] | None = None, photo: bytes | None = None) -> int:
        """A user writes in a chat (a `/command` gets its bot_command entity); returns the message_id."""
        with self.lock:
            message_id = self._next_message_id(chat_id)
            msg: dict[str, Any] = {"message_id": message_id, "from": user, "chat": _chat(chat_id, user),
                                   "date": int(time.time())}
            key = "caption" if document or photo else "text"
            if text:
                msg[key] = text
            if text.startswith("/"):
                msg["entities" if key == "text" else "caption_entities"] = [
                    {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
            if reply_to is not None:
                msg["reply_to_message"] = self._message_json(self.chats[chat_id][reply_to])
            if document is not None:
                name, mime, content = document
                file_id = self._store_file(name, content)
                msg["document"] = {"file_id": file_id, "file_unique_id": file_id, "file_name": name,
                                   "mime_type": mime, "file_size": len(content)}
            if photo is not None:
                file_id = self._store_file("photo.jpg", photo)
                msg["photo"] = [{"file_id": file_id, "file_unique_id": file_id, "width": 800,
                                 "height": 600, "file_size": len(photo)}]
            self.chats.setdefault(chat_id, {})[message_id] = ChatMessage(
                chat_id, message_id, False, text, None, None, reply_to)
            self._push({"message": msg})
            return message_id

    def press(self, user: dict[str, Any], chat_id: int, message_id: int, data: str) -> str:
        """A user presses an inline button with `data` under a bot message; returns the query id."""
        with self.lock:
            query_id = f"q{next(self.update_ids)}"
            self._push({"callback_query": {
                "id": query_id, "from": user, "chat_instance": str(chat_id), "data": data,
                "message": self._message_json(self.chats[chat_id][message_id])}})
            return query_id

    def messages(self, chat_id: int) -> list[ChatMessage]:
        """The bot's messages in a chat, oldest first, as they look now."""
        with self.lock:
            return [m for m in self.chats.get(chat_id, {}).values() if m.from_bot]

    def calls_of(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def answers(self, query_id: str) -> list[Call]:
        return [c for c in self.calls_of("answerCallbackQuery")
                if c.params.get("callback_query_id") == query_id]

    # -- the API ---------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any], files: dict[str, tuple[str, bytes]]
             ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append(Call(method, params, files, time.monotonic()))
            failure = self._take_failure(method)
        if failure is not None:
            if failure.mode == "hang":
                self.closing.wait(self.hang_seconds)
                return 504, {"ok": False, "error_code": 504, "description": "Gateway Timeout"}
            if failure.mode == "429":
                return 429, {"ok": False, "error_code": 429,
                             "description": f"Too Many Requests: retry after {failure.retry_after}",
                             "parameters": {"retry_after": failure.retry_after}}
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
        try:
            return 200, {"ok": True, "result": handler(params, files)}
        except _ApiError as exc:
            return exc.code, {"ok": False, "error_code": exc.code, "description": exc.description}

    def _m_getMe(self, p: dict[str, Any], f: Any) -> Any:
        return BOT_USER

    def _m_getChat(self, p: dict[str, Any], f: Any) -> Any:
        chat_id = int(p["chat_id"])
        if chat_id in self.unknown_chats:
            raise _ApiError(400, "Bad Request: chat not found")
        return {**_chat(chat_id, None), "accent_color_id": 0, "max_reaction_count": 11}  # ChatFullInfo

    def _m_getChatMember(self, p: dict[str, Any], f: Any) -> Any:
        chat_id, user_id = int(p["chat_id"]), int(p["user_id"])
        if chat_id in self.unknown_chats:
            raise _ApiError(400, "Bad Request: chat not found")
        status = self.bot_status if user_id == BOT_USER["id"] else "member"
        return {"status": status, "user": BOT_USER if user_id == BOT_USER["id"] else
                {"id": user_id, "is_bot": False, "first_name": "user"},
                **({"can_be_edited": False, "can_manage_chat": True, "can_change_info": True,
                    "can_delete_messages": True, "can_invite_users": True, "can_restrict_members": True,
                    "can_pin_messages": True, "can_promote_members": False, "can_manage_video_chats": True,
                    "is_anonymous": False, "can_post_stories": False, "can_edit_stories": False,
                    "can_delete_stories": False, "can_manage_topics": True}
                   if status == "administrator" else {})}

    def _m_deleteWebhook(self, p: dict[str, Any], f: Any) -> Any:
        return True

    def _m_setMyCommands(self, p: dict[str, Any], f: Any) -> Any:
        return True

    def _m_answerCallbackQuery(self, p: dict[str, Any], f: Any) -> Any:
        return True

    def _m_getUpdates(self, p: dict[str, Any], f: Any) -> Any:
        offset = int(p.get("offset") or 0)
        deadline = time.monotonic() + min(float(p.get("timeout") or 0), 30.0)
        with self.lock:
            while True:
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
                if self.updates or self.closing.is_set() or time.monotonic() >= deadline:
                    return list(self.updates[: int(p.get("limit") or 100)])
                self.lock.wait(max(0.0, deadline - time.monotonic()))

    def _m_sendMessage(self, p: dict[str, Any], f: Any) -> Any:
        chat_id = int(p["chat_id"])
        text = p.get("text", "")
        self._check_text(text, p.get("parse_mode"), TEXT_LIMIT)
        return self._new_bot_message(chat_id, p, text=text, parse_mode=p.get("parse_mode"))

    def _m_sendDocument(self, p: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> Any:
        chat_id = int(p["chat_id"])
        caption = p.get("caption", "")
        self._check_text(caption, p.get("parse_mode"), CAPTION_LIMIT, empty_ok=True)
        if "document" not in files:
            raise _ApiError(400, "Bad Request: there is no document in the request")
        return self._new_bot_message(chat_id, p, text=caption, parse_mode=p.get("parse_mode"),
                                     document=files["document"])

    def _m_editMessageText(self, p: dict[str, Any], f: Any) -> Any:
        msg = self._bot_message(p)
        self._check_text(p.get("text", ""), p.get("parse_mode"), TEXT_LIMIT)
        markup = _inline(p.get("reply_markup"))
        if msg.text == p.get("text", "") and msg.reply_markup == markup:
            raise _ApiError(400, "Bad Request: message is not modified: specified new message content "
                                 "and reply markup are exactly the same as a current content and reply "
                                 "markup of the message")
        with self.lock:
            msg.text, msg.parse_mode, msg.reply_markup = p.get("text", ""), p.get("parse_mode"), markup
            msg.edits += 1
            return self._message_json(msg)

    def _m_editMessageReplyMarkup(self, p: dict[str, Any], f: Any) -> Any:
        msg = self._bot_message(p)
        markup = _inline(p.get("reply_markup"))
        if msg.reply_markup == markup:
            raise _ApiError(400, "Bad Request: message is not modified")
        with self.lock:
            msg.reply_markup = markup
            msg.edits += 1
            return self._message_json(msg)

    def _m_getFile(self, p: dict[str, Any], f: Any) -> Any:
        file_id = p.get("file_id", "")
        if file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        return {"file_id": file_id, "file_unique_id": file_id, "file_size": len(self.files[file_id][1]),
                "file_path": f"documents/{file_id}"}

    def download(self, path: str) -> bytes | None:
        file_id = path.rpartition("/")[2]
        return self.files[file_id][1] if file_id in self.files else None

    # -- helpers ---------------------------------------------------------------------------------

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self.failures.get(method) or []
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    def _check_text(self, text: str, parse_mode: str | None, limit: int, empty_ok: bool = False) -> None:
        try:
            shown = visible_text(text, parse_mode)
        except EntityError as exc:
            raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        if not shown.strip() and not empty_ok:
            raise _ApiError(400, "Bad Request: message text is empty")
        if utf16_len(shown) > limit:
            raise _ApiError(400, "Bad Request: message is too long")

    def _bot_message(self, p: dict[str, Any]) -> ChatMessage:
        with self.lock:
            msg = self.chats.get(int(p.get("chat_id", 0)), {}).get(int(p.get("message_id", 0)))
        if msg is None or not msg.from_bot:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return msg

    def _new_bot_message(self, chat_id: int, p: dict[str, Any], **fields: Any) -> dict[str, Any]:
        if chat_id == 0 or chat_id in self.unknown_chats:
            raise _ApiError(400, "Bad Request: chat not found")
        with self.lock:
            reply = _json(p.get("reply_parameters"))
            msg = ChatMessage(chat_id, self._next_message_id(chat_id), True,
                              reply_markup=_inline(p.get("reply_markup")),
                              reply_to=int(reply["message_id"]) if reply else None, **fields)
            self.chats.setdefault(chat_id, {})[msg.message_id] = msg
            if msg.document is not None:
                self.files[f"bot{chat_id}_{msg.message_id}"] = msg.document
            return self._message_json(msg)

    def _message_json(self, msg: ChatMessage) -> dict[str, Any]:
        out: dict[str, Any] = {"message_id": msg.message_id, "date": int(time.time()),
                               "chat": _chat(msg.chat_id, BOT_USER if msg.from_bot else None)}
        if msg.from_bot:
            out["from"] = BOT_USER
        if msg.text:
            out["caption" if msg.document else "text"] = msg.text
        if msg.reply_markup:
            out["reply_markup"] = msg.reply_markup
        if msg.document:
            out["document"] = {"file_id": f"bot{msg.chat_id}_{msg.message_id}",
                               "file_unique_id": f"bot{msg.chat_id}_{msg.message_id}",
                               "file_name": msg.document[0], "file_size": len(msg.document[1])}
        return out

    def _next_message_id(self, chat_id: int) -> int:
        return next(self.message_ids.setdefault(chat_id, itertools.count(1)))

    def _store_file(self, name: str, content: bytes) -> str:
        file_id = f"f{len(self.files) + 1}"
        self.files[file_id] = (name, content)
        return file_id

    def _push(self, update: dict[str, Any]) -> None:
        update["update_id"] = next(self.update_ids)
        self.updates.append(update)
        self.lock.notify_all()


class _ApiError(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code, self.description = code, description


def _json(value: Any) -> Any:
    if value is None or isinstance(value, dict | list):
        return value
    return json.loads(value)


def _inline(value: Any) -> dict[str, Any] | None:
    """Only inline keyboards stay with a message (a ForceReply or a keyboard does not)."""
    markup = _json(value)
    return markup if markup and "inline_keyboard" in markup else None


def _chat(chat_id: int, user: dict[str, Any] | None) -> dict[str, Any]:
    if chat_id < 0:
        return {"id": chat_id, "type": "supergroup", "title": "Поддержка"}
    return {"id": chat_id, "type": "private", "first_name": (user or {}).get("first_name", "user")}


class _Handler(BaseHTTPRequestHandler):
    api: BotApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        prefix, path = f"/file/bot{self.api.token}/", unquote(self.path)
        content = self.api.download(path[len(prefix):]) if path.startswith(prefix) else None
        if content is None:
            self._reply(404, b'{"ok":false,"error_code":404,"description":"Not Found"}')
        else:
            self._reply(200, content, "application/octet-stream")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        prefix = f"/bot{self.api.token}/"
        if not self.path.startswith(prefix):
            self._reply(401, b'{"ok":false,"error_code":401,"description":"Unauthorized"}')
            return
        params, files = _parse_body(self.headers.get("Content-Type", ""), body)
        code, answer = self.api.call(self.path[len(prefix):], params, files)
        self._reply(code, json.dumps(answer, ensure_ascii=False).encode())

    def _reply(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout we caused on purpose)


def _parse_body(ctype: str, body: bytes) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    if not body:
        return {}, {}
    if ctype.startswith("application/json"):
        return json.loads(body), {}
    if ctype.startswith("multipart/form-data"):
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        params: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename():
                files[name] = (part.get_filename(), payload)
            else:
                params[name] = payload.decode()
        return params, files
    return {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}, {}

