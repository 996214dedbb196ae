"""Recorded voice prompts: admins upload them per language, Twilio fetches them to <Play> during calls.

A language Twilio has no voice for (see ``channels.voice.VOICES``) is spoken from recordings: one
file per prompt key, e.g. ``am/menu.mp3``, kept under BEACON_VOICE_PROMPTS_DIR. Twilio fetches them
without credentials, so they hold nothing but the catalog's sentences.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from aiohttp import web

from beacon.calls import PROMPT_FORMATS, PROMPT_KEY, PROMPTS_PATH, prompt_file
from beacon.context import BEACON
from beacon.http import CALLER, api_error, requires
from bot.i18n import LANGUAGES
from domain.vocabulary import Role
from registry import audit

MAX_PROMPT_BYTES = 5 * 1024 * 1024
CONTENT_TYPES = {"audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/wav": ".wav", "audio/x-wav": ".wav",
                 "audio/wave": ".wav"}


async def get_prompt(request: web.Request) -> web.StreamResponse:
    """A recorded prompt, for Twilio's <Play>."""
    language, name = request.match_info["lang"], request.match_info["file"]
    key, suffix = os.path.splitext(name)
    path = prompt_file(request.app[BEACON].settings.voice_prompts_dir, language, key)
    if path is None or path.suffix != suffix:
        raise web.HTTPNotFound(text="no such prompt")
    return web.FileResponse(path, headers={"Content-Type": PROMPT_FORMATS[suffix], "Cache-Control": "max-age=300"})


@requires(Role.ADMIN)
async def put_prompt(request: web.Request) -> web.Response:
    """Store the recording of one prompt in one language (MP3 or WAV), replacing any other."""
    language, key = request.match_info["lang"], request.match_info["key"]
    if language not in LANGUAGES or not PROMPT_KEY.fullmatch(key):
        raise api_error(404, "not_found", "no such language or prompt key")
    suffix = CONTENT_TYPES.get(request.content_type)
    if suffix is None:
        raise api_error(415, "unsupported_media_type", "send audio/mpeg or audio/wav")
    body = await request.content.read(MAX_PROMPT_BYTES + 1)
    if not body or len(body) > MAX_PROMPT_BYTES:
        raise api_error(413 if body else 422, "invalid_recording", "the recording must be 1 byte to 5 MB")
    beacon = request.app[BEACON]
    directory: Path = beacon.settings.voice_prompts_dir / language
    directory.mkdir(parents=True, exist_ok=True)
    for other in PROMPT_FORMATS:  # one recording per key: an MP3 would shadow a newer WAV
        (directory / f"{key}{other}").unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, delete=False) as temporary:
        temporary.write(body)
    os.replace(temporary.name, directory / f"{key}{suffix}")
    async with beacon.db.write() as conn:
        await audit.append(conn, request[CALLER].name, "voice_prompt.stored", f"{language}/{key}",
                           {"bytes": len(body)})
    return web.json_response({"language": language, "key": key, "format": suffix.lstrip(".")}, status=201)


def setup(app: web.Application) -> None:
    """Mount the prompt routes."""
    app.router.add_get(PROMPTS_PATH + "/{lang}/{file}", get_prompt)
    app.router.add_put("/api/v1/voice/prompts/{lang}/{key}", put_prompt)
