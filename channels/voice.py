"""Twilio Programmable Voice: a call's webhook parsed, TwiML built, calls placed and their statuses mapped.

The webhook of a call (``/webhooks/twilio/voice``) is answered with TwiML at once: ``<Say>`` (or
``<Play>`` of a recorded prompt) and a ``<Gather input="dtmf">`` whose action URL carries where the
call stands. When the caller presses nothing, Twilio goes on to the verb after ``<Gather>``: a
``<Redirect>`` back to the same question, so a timeout is a webhook like any other. Calls are
placed with the SDK's Calls resource; their status callbacks arrive at ``/webhooks/twilio/voice/status``.

Nothing here logs phone numbers or the digits pressed: only call SIDs and outbox ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from twilio.twiml.voice_response import VoiceResponse

VOICE_PATH = "/webhooks/twilio/voice"
VOICE_STATUS_PATH = "/webhooks/twilio/voice/status"
GATHER_TIMEOUT = 6  # seconds of silence after the prompts before the question is asked again
AMD = "DetectMessageEnd"  # machine detection that waits for the greeting's beep, so a message is left whole
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]

# <Say> voices per language (Twilio's Amazon Polly and Google voices). A language not here has no voice:
# its prompts are played from recordings, else spoken in the default language.
VOICES: dict[str, tuple[str, str]] = {
    "en": ("en-US", "Polly.Joanna"),
    "fr": ("fr-FR", "Polly.Lea"),
    "es": ("es-ES", "Polly.Lucia"),
    "pt": ("pt-BR", "Polly.Camila"),
    "ar": ("arb", "Polly.Zeina"),
    "ru": ("ru-RU", "Polly.Tatyana"),
    "tr": ("tr-TR", "Polly.Filiz"),
    "hi": ("hi-IN", "Polly.Aditi"),
    "uk": ("uk-UA", "Google.uk-UA-Standard-A"),
    "bn": ("bn-IN", "Google.bn-IN-Standard-A"),
    "ur": ("ur-IN", "Google.ur-IN-Standard-A"),
    "tl": ("fil-PH", "Google.fil-PH-Standard-A"),
}
# Twilio's CallStatus as a delivery state: a ringing call has left (sent), an answered one arrived (delivered).
# busy and no-answer pass through: the service calls again later.
CALL_STATUS = {
    "queued": "sent", "initiated": "sent", "ringing": "sent", "in-progress": "delivered", "completed": "delivered",
    "busy": "busy", "no-answer": "no-answer", "failed": "failed", "canceled": "failed",
}
RETRIED = frozenset({"busy", "no-answer"})


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One webhook of a call, as far as Beacon needs it."""

    call_sid: str
    address: str  # the person's number: From on an inbound call, To on one we placed
    outbound: bool
    digits: str | None  # the keys pressed; None when the Gather timed out or nothing was asked yet
    answered_by: str | None  # AnsweredBy from machine detection: human, machine_end_beep, fax, unknown ...
    query: Mapping[str, str]  # the URL's own parameters: where the call stands (see bot.ivr.Call)

    @property
    def machine(self) -> bool:
        """Whether an answering machine (or a fax) took the call."""
        return bool(self.answered_by) and (self.answered_by or "").startswith(("machine", "fax"))


@dataclass(frozen=True, slots=True)
class Spoken:
    """One sentence to speak: its language, its text, the name of its recording, and the same sentence in the
    default language for when its own language has neither a voice nor a recording."""

    language: str
    text: str
    key: str
    fallback: str


def call_event(params: Mapping[str, str], query: Mapping[str, str]) -> CallEvent | None:
    """The call a webhook's form describes; None without a CallSid."""
    sid = params.get("CallSid")
    if not sid:
        return None
    outbound = params.get("Direction", "inbound").startswith("outbound")
    address = params.get("To" if outbound else "From") or ""
    digits = params.get("Digits")
    return CallEvent(sid, address, outbound, digits if digits else None, params.get("AnsweredBy") or None,
                     dict(query))


def twiml(spoken: list[Spoken], *, gather: str | None, default_language: str,
          recording: Callable[[str, str], str | None]) -> str:
    """The TwiML that speaks ``spoken`` and, with a ``gather`` URL, waits for one key (asking again after a
    silence); without one, hangs up. ``recording(language, key)`` is the URL of a recorded prompt, if any."""
    response = VoiceResponse()
    target: Any = response
    if gather is not None:
        target = response.gather(input="dtmf", num_digits=1, timeout=GATHER_TIMEOUT, action=gather, method="POST",
                                 action_on_empty_result=False)
    for sentence in spoken:
        _speak(target, sentence, default_language, recording)
    if gather is not None:
        response.redirect(gather, method="POST")
    else:
        response.hangup()
    return str(response)


def _speak(target: Any, sentence: Spoken, default_language: str, recording: Callable[[str, str], str | None]) -> None:
    """<Say> in the sentence's language; where Twilio has no voice for it, <Play> its recording, else <Say> the
    sentence in the default language."""
    voice = VOICES.get(sentence.language)
    if voice is not None:
        target.say(sentence.text, language=voice[0], voice=voice[1])
        return
    recorded = recording(sentence.language, sentence.key)
    if recorded is not None:
        target.play(recorded)
        return
    fallback = VOICES.get(default_language, VOICES["en"])
    target.say(sentence.fallback, language=fallback[0], voice=fallback[1])


def url(base: str, path: str, query: Mapping[str, object]) -> str:
    """An absolute webhook URL with its query (what Twilio signs on the way back)."""
    clean = {k: str(v) for k, v in query.items() if v is not None}
    return f"{base.rstrip('/')}{path}" + (f"?{urlencode(clean)}" if clean else "")


def call_params(public_url: str, caller_id: str, to: str, outbox_id: int) -> dict[str, Any]:
    """The Calls create arguments for one broadcast call: our TwiML URL, status callbacks and machine detection."""
    return {
        "to": to,
        "from_": caller_id,
        "url": url(public_url, VOICE_PATH, {"at": "alert", "o": outbox_id}),
        "method": "POST",
        "status_callback": url(public_url, VOICE_STATUS_PATH, {}),
        "status_callback_method": "POST",
        "status_callback_event": STATUS_EVENTS,
        "machine_detection": AMD,
    }


def call_status(status: str, answered_by: str | None) -> tuple[str, str | None]:
    """A call's status callback as (delivery state, error code): a machine's answer is kept as its code."""
    mapped = CALL_STATUS.get(status, status)
    if answered_by and answered_by.startswith(("machine", "fax")):
        return mapped, "machine"
    return mapped, status if mapped in RETRIED or mapped == "failed" else None
