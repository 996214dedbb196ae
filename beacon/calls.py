"""Phone calls: each webhook of a call is one transaction, answered with TwiML.

Twilio -> ``/webhooks/twilio/voice`` (signed) -> :meth:`Calls.answer`: the keys pressed are stored
like a message (sealed, deduplicated on the call SID and the turn number), the caller's state is
loaded, ``bot.ivr`` decides, the effects (consent, check-in, case, preferred channel) are applied
by the same code as for texts, and the prompts become TwiML. A broadcast's poll is read out when it is the
poll open for the person (as a text answer needs), and a keypad erasure also sends the text DELETE sends to
the person's text channels. Where the call stands travels in the
``<Gather>`` action URL, signed by Twilio on the way back: Beacon keeps no call state. Callers are
never recorded; numbers and digits are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import Counter
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from beacon import effects
from bot import ivr, texts
from bot.i18n import LANGUAGES, gettext_for
from bot.ivr import Call, Node, Prompt, VoicePoll
from bot.polls import localised
from bot.state import BotConfig, Erase, State
from campaigns import outbox
from campaigns.broadcasts import Audience
from campaigns.outbox import Draft
from campaigns.sender import Sender
from channels.base import Inbound
from channels.voice import VOICE_PATH, CallEvent, Spoken, twiml, url
from domain.areas import Gazetteer
from domain.vocabulary import ChannelKind, ProviderName
from registry import audit, schema, store
from registry.db import Database
from registry.keys import KeyHolder, identity_aad

log = structlog.get_logger("beacon.calls")
TURNS = Counter("beacon_call_turns_total", "Call webhooks answered, by the question the call was at and whether "
                "it goes on", ["node", "outcome"])
PROMPT_KEY = re.compile(r"[a-z0-9][a-z0-9_.-]{0,80}")
PROMPT_FORMATS = {".mp3": "audio/mpeg", ".wav": "audio/wav"}
PROMPTS_PATH = "/voice/prompts"
LATEST_LOOKED_AT = 50  # broadcasts searched for the latest one that reaches the caller's area


def prompt_file(directory: Path, language: str, key: str) -> Path | None:
    """The recorded prompt for ``key`` in ``language``, if an operator put one there (MP3 first)."""
    if language not in LANGUAGES or not PROMPT_KEY.fullmatch(key):
        return None
    for suffix in PROMPT_FORMATS:
        path = directory / language / f"{key}{suffix}"
        if path.is_file():
            return path
    return None


def broadcast_text(texts_by_language: Mapping[str, str], language: str, default: str) -> tuple[str, str]:
    """The broadcast in ``language``, else in the default language, as (language, text)."""
    for candidate in (language, default):
        if texts_by_language.get(candidate):
            return candidate, texts_by_language[candidate]
    first = next(iter(texts_by_language))
    return first, texts_by_language[first]


def voice_poll(broadcast_id: int, poll: Mapping[str, Any], language: str, default: str) -> VoicePoll:
    """A broadcast's poll to read out: in ``language`` where the question has it, else the default language."""
    spoken, question = broadcast_text(poll["question"], language, default)
    options = tuple(localised(option, spoken, default) for option in poll["options"])
    twins = (broadcast_text(poll["question"], default, default)[1],
             *(localised(option, default, default) for option in poll["options"]))
    return VoicePoll(broadcast_id, spoken, question, options, twins)


def _call(query: Mapping[str, str]) -> tuple[Call, int]:
    """Where the call stands, from its URL (anything unreadable starts over), and the turn number."""
    def number(name: str) -> int | None:
        value = query.get(name, "")
        return int(value) if value.isdigit() and len(value) < 12 else None

    try:
        node = Node(query.get("at", Node.START))
    except ValueError:
        node = Node.START
    return Call(node, number("p") or 0, number("r") or 0, number("b")), number("n") or 0


class Calls:
    """Answers call webhooks."""

    def __init__(self, db: Database, keys: KeyHolder, bot: BotConfig, sender: Sender, gazetteer: Gazetteer, *,
                 public_url: str, prompts_dir: Path, family_channel: str | None) -> None:
        self.db = db
        self.keys = keys
        self.bot = bot
        self.sender = sender
        self.gazetteer = gazetteer
        self.public_url = public_url
        self.prompts_dir = prompts_dir
        self.family_channel = family_channel

    async def answer(self, event: CallEvent) -> str:
        """The TwiML for one webhook of a call."""
        await self.keys.check(self.db)
        call, turn_number = _call(event.query)
        now = datetime.now(UTC)
        keys = self.keys.ring
        default = self.bot.default_language
        async with self.db.write() as conn:
            message = Inbound(channel=ChannelKind.VOICE, address=event.address, text=event.digits or "",
                              provider_id=f"{event.call_sid}:{turn_number}", received_at=now)
            [stored] = await store.store_inbound(conn, keys, [(ProviderName.TWILIO, message)])
            identity = await store.find_identity(conn, keys, ChannelKind.VOICE, event.address)
            state = await store.load_state(conn, keys, identity.registrant_id) if identity is not None else None
            if identity is None or state is None:
                return self._twiml([], None)
            i = schema.inbound.c
            if stored is not None:  # the keys are answered here and now: never by the text conversation
                await conn.execute(update(schema.inbound).where(i.id == stored.inbound_id).values(processed_at=now))
            alert: tuple[str, str] | None = None
            broadcast: Any = None  # the broadcast the call reads out or answers: (id, texts, poll, check_in)
            if call.node is Node.ALERT:
                found = await self._placed_call(conn, event, query_outbox=event.query.get("o", ""))
                if found is None:
                    return self._twiml([], None)
                call = replace(call, broadcast_id=found or None)
                broadcast = await self._broadcast(conn, found) if found else None
            elif call.broadcast_id and call.node in (Node.CHECK_IN, Node.POLL):
                broadcast = await self._broadcast(conn, call.broadcast_id)
            elif call.node is Node.MENU and state.profile.area_id:
                broadcast = await self._latest(conn, state.profile.area_id, state.language)
            alerts: dict[str, str] = dict(broadcast.texts) if broadcast is not None else {}
            if alerts and call.node is not Node.POLL:
                alert = broadcast_text(alerts, state.language, default)
            poll = None
            if broadcast is not None and broadcast.poll and state.poll is not None \
                    and state.poll.broadcast_id == broadcast.id:  # the poll open for them, as for a text answer
                poll = voice_poll(broadcast.id, broadcast.poll, state.language, default)
            if call.node is Node.ALERT and event.machine and alert is not None:
                turn = ivr.voicemail(state, alert)
            else:
                check_in = broadcast is None or bool(broadcast.check_in) or not broadcast.poll
                turn = ivr.answer(self.bot, state, call, event.digits, now, alert, poll, check_in)
            if stored is not None:
                await self._apply(conn, stored.inbound_id, identity, state, turn, now)
        TURNS.labels(call.node.value, "gather" if turn.next else "hangup").inc()
        fallback = broadcast_text(alerts, default, default)[1] if alerts else ""
        return self._twiml([self._spoken(p, fallback) for p in turn.prompts],
                           self._next_url(turn.next, turn_number + 1))

    async def _apply(self, conn: AsyncConnection, inbound_id: int, identity: Any, state: State, turn: ivr.Turn,
                     now: datetime) -> None:
        """The turn's effects and state, exactly as a text's would be applied."""
        row = (await conn.execute(select(schema.inbound).where(schema.inbound.c.id == inbound_id))).one()
        told: list[Draft] = []
        if any(isinstance(effect, Erase) for effect in turn.effects):
            told = await self._erased_texts(conn, row.registrant_id, state.language)
        applied = await effects.apply(conn, self.keys.ring, turn.effects, row=row, identity=identity, state=state,
                                      now=now, default_language=self.bot.default_language,
                                      family_channel=self.family_channel)
        if applied.saved:
            await store.save_state(conn, self.keys.ring, row.registrant_id, state, turn.state, now)
            changed = [f for f in store.COARSE_FIELDS if getattr(state.profile, f) != getattr(turn.state.profile, f)]
            if changed and turn.state.consented:
                await audit.append(conn, "system", "profile.updated", str(row.registrant_id),
                                   {"fields": sorted(changed), "channel": ChannelKind.VOICE})
        drafts: list[Draft] = [*applied.drafts, *told]
        if drafts:
            await outbox.enqueue(conn, self.keys.ring, drafts)
            self.sender.wake()

    async def _erased_texts(self, conn: AsyncConnection, registrant_id: int, language: str) -> list[Draft]:
        """The text DELETE sends, for each of the person's addresses they have written from by text (read before
        the erasure; linked to no one, so the sender empties it once it has left)."""
        i, n = schema.identities.c, schema.inbound.c
        drafts = []
        for identity in (await conn.execute(select(i.id, i.bidx, i.address_ct)
                                            .where(i.registrant_id == registrant_id))).all():
            channel = (await conn.execute(select(n.channel).where(
                n.identity_id == identity.id, n.channel != ChannelKind.VOICE).order_by(n.id.desc()).limit(1))).scalar()
            if channel is None or not identity.address_ct:
                continue
            address = self.keys.ring.decrypt(identity.address_ct, identity_aad({"bidx": identity.bidx}))
            drafts.append(Draft(None, None, channel, address, gettext_for(language, texts.DELETED)))
        return drafts

    async def _placed_call(self, conn: AsyncConnection, event: CallEvent, query_outbox: str) -> int | None:
        """The broadcast a call we placed carries (0: none); None when the call is not that outbox row's."""
        if not event.outbound or not query_outbox.isdigit():
            return None
        o = schema.outbox.c
        row = (await conn.execute(select(o.provider_id, o.broadcast_id).where(o.id == int(query_outbox)))).first()
        if row is None or row.provider_id != event.call_sid:
            log.info("call.unknown", call_sid=event.call_sid)
            return None
        return int(row.broadcast_id or 0)

    async def _broadcast(self, conn: AsyncConnection, broadcast_id: int) -> Any:
        b = schema.broadcasts.c
        return (await conn.execute(select(b.id, b.texts, b.poll, b.check_in).where(b.id == broadcast_id))).first()

    async def _latest(self, conn: AsyncConnection, area_id: str, language: str) -> Any:
        """The latest broadcast sent that reaches ``area_id`` (and this language); None if none."""
        b = schema.broadcasts.c
        rows = (await conn.execute(select(b.id, b.texts, b.poll, b.check_in, b.audience)
                                   .where(b.status.in_(("sending", "sent"))).order_by(b.id.desc())
                                   .limit(LATEST_LOOKED_AT))).all()
        for row in rows:
            audience = Audience.from_json(row.audience or {})
            if audience.areas and area_id not in self.gazetteer.descendants(list(audience.areas)):
                continue
            if audience.languages and language not in audience.languages:
                continue
            return row
        return None

    def _spoken(self, prompt: Prompt, fallback: str) -> Spoken:
        """A prompt with its default-language twin (a broadcast's text in the default language)."""
        twin = fallback if prompt.key == "alert" and fallback else prompt.again_in(self.bot.default_language)
        return Spoken(prompt.language, prompt.text, prompt.key, twin)

    def _next_url(self, call: Call | None, turn_number: int) -> str | None:
        if call is None:
            return None
        return url(self.public_url, VOICE_PATH, {"at": call.node.value, "p": call.page or None,
                                                 "r": call.repeats or None, "b": call.broadcast_id,
                                                 "n": turn_number})

    def recording(self, language: str, key: str) -> str | None:
        """The public URL of a recorded prompt, when there is one."""
        path = prompt_file(self.prompts_dir, language, key)
        if path is None:
            return None
        return f"{self.public_url.rstrip('/')}{PROMPTS_PATH}/{language}/{path.name}"

    def _twiml(self, spoken: list[Spoken], gather: str | None) -> str:
        return twiml(spoken, gather=gather, default_language=self.bot.default_language, recording=self.recording)
