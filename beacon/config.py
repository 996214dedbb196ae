"""Configuration from environment variables (see README, "Configuration")."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from channels.settings import TelegramSettings, TwilioSettings
from domain.areas import Gazetteer, GazetteerError
from registry.crypto import KeyringError, MasterKeys
from registry.retention import Policy


class ConfigError(Exception):
    """Configuration that Beacon cannot start with; the message is one line for the operator."""


@dataclass(frozen=True)
class Settings:
    """Everything Beacon reads from its environment, checked once at start-up."""

    env: str = "development"
    host: str = "127.0.0.1"
    port: int = 8080
    database_url: str = "sqlite:///./data/beacon.db"
    keys: str | None = None
    keys_file: Path = Path("./data/keys.json")
    public_url: str = "http://127.0.0.1:8080"
    public_url_set: bool = False  # BEACON_PUBLIC_URL was given: links to this deployment may be sent out
    default_language: str = "en"
    areas_file: Path | None = None
    min_cell: int = 10
    operator_name: str = "the crisis team"
    retention_months: int = 24
    log_format: str = "console"
    log_level: str = "info"
    rate_limits: bool = True
    max_reminders: int = 2
    outbox_lease_seconds: int = 60
    sender_capacity: int = 2000  # outbox rows one process holds at once (sending or waiting on a rate limit)
    confirm_after_days: int = 180
    message_retention_days: int = 90
    case_retention_months: int = 12
    unconsented_days: int = 30  # a sender who never consented is erased after this long without writing
    employer_fields: bool = False  # assisted registration asks for employer and recruitment agency
    invitation_days: int = 30  # an imported person who never said yes is erased this long after the invitation
    trusted_proxies: frozenset[str] = frozenset()  # addresses whose X-Forwarded-For is believed
    simulator: bool = False  # /simulator: development only, never beside real providers
    spool_dir: Path = Path("./data/spool")  # webhook messages wait here, sealed, while the database stalls
    public_stats: bool = False  # /public: the coarsest table, no login
    public_min_cell: int = 20  # the public table's threshold: never below min_cell
    public_refresh_minutes: int = 60  # how often the public table is computed again
    metrics: bool = True  # /metrics is served at all
    metrics_token: str | None = None  # when set, /metrics needs Authorization: Bearer <token>
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None  # when set, /metrics is served there, by serve and worker, not on the main app
    webhook_retry_seconds: float = 30.0  # the first retry of a failed webhook delivery; doubled each time after
    cap_feed_url: str | None = None  # a CAP feed (Atom or a CAP alert list) the worker polls for alerts
    cap_poll_minutes: int = 5
    twilio: TwilioSettings | None = None
    telegram: TelegramSettings | None = None
    voice_max_attempts: int = 3  # calls to one person for one message at most (busy or no answer: called again)
    voice_retry_seconds: int = 300  # wait before the second call; doubled for each further one
    voice_price_per_minute: float = 0.05  # the estimate a broadcast preview shows, per call minute begun
    voice_prompts_dir: Path = Path("./data/voice-prompts")  # recorded prompts: <lang>/<key>.mp3 or .wav
    web_bot: bool = True  # web processes run the bot on what they store; off: workers do (PostgreSQL only)

    @property
    def development(self) -> bool:
        return self.env == "development"

    def retention_policy(self) -> Policy:
        """The retention policy this configuration sets."""
        return Policy(profile_months=self.retention_months, message_days=self.message_retention_days,
                      case_months=self.case_retention_months, unconsented_days=self.unconsented_days,
                      invitation_days=self.invitation_days)

    @property
    def invitation_link_base(self) -> str | None:
        """The base URL of invitations' personal links; None (no link in invitations) without BEACON_PUBLIC_URL."""
        return self.public_url if self.public_url_set else None

    @property
    def data_dir(self) -> Path:
        """Where the development key file and the default database live."""
        return self.keys_file.parent


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    return value


def _on_off(env: Mapping[str, str], name: str) -> bool:
    """A switch that is off unless set to ``on``."""
    value = env.get(name, "off").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"{name} must be on or off, got {value!r}")
    return value == "on"


def _price(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _phone(name: str, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"\+[1-9]\d{6,14}", value):
        raise ConfigError(f"{name} must be a phone number in E.164 form, like +15005550006")
    return value


def _url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _check_areas(areas: str) -> None:
    """Every command refuses an areas file it could not serve with, not only ``serve``."""
    path = Path(areas)
    if not path.is_file():
        raise ConfigError(f"BEACON_AREAS_FILE is not a readable file: {areas}")
    try:
        Gazetteer.load(path)
    except GazetteerError as exc:
        raise ConfigError(f"BEACON_AREAS_FILE: {exc}") from None


def _check_keys(keys: str) -> None:
    """A malformed BEACON_KEYS fails every command at start, not the first one that opens the data."""
    try:
        MasterKeys.parse(keys)
    except KeyringError as exc:
        raise ConfigError(str(exc)) from None


def loopback(host: str) -> bool:
    """Whether a listen address is reachable from this machine only."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _simulator(env: Mapping[str, str], mode: str, host: str, providers: bool) -> bool:
    """Whether /simulator is on: only when asked for, in development, alone and on a loopback address.

    The simulator answers as any number it is told: beside real providers or reachable from
    another machine it would let anyone read or erase people's data.
    """
    value = env.get("BEACON_SIMULATOR", "off").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"BEACON_SIMULATOR must be on or off, got {value!r}")
    if value == "off":
        return False
    if mode != "development":
        raise ConfigError("BEACON_SIMULATOR=on is for development only: unset it in production")
    if providers:
        raise ConfigError("BEACON_SIMULATOR=on cannot run beside Twilio or Telegram credentials: unset either")
    if not loopback(host):
        raise ConfigError(f"BEACON_SIMULATOR=on needs a loopback BEACON_HOST (127.0.0.1), got {host!r}")
    return True


def _metrics(env: Mapping[str, str], mode: str, host: str, port: int) -> tuple[bool, str | None, str, int | None]:
    """Whether metrics are on, their token, host and port.

    Production needs a token or a listen address of their own (or metrics off): /metrics tells message
    volumes, failures and look-up attacks, which are nobody else's business.
    """
    value = env.get("BEACON_METRICS", "on").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"BEACON_METRICS must be on or off, got {value!r}")
    token = env.get("BEACON_METRICS_TOKEN") or None
    metrics_host = env.get("BEACON_METRICS_HOST") or None
    metrics_port = _int(env, "BEACON_METRICS_PORT", 0, minimum=1) if env.get("BEACON_METRICS_PORT") else None
    if value == "off":
        if token or metrics_host or metrics_port:
            raise ConfigError("BEACON_METRICS=off serves no metrics: unset BEACON_METRICS_TOKEN, _HOST and _PORT")
        return False, None, "127.0.0.1", None
    if token is not None and len(token) < 16:
        raise ConfigError("BEACON_METRICS_TOKEN must be at least 16 characters")
    if metrics_host and metrics_port is None:
        raise ConfigError("BEACON_METRICS_HOST needs BEACON_METRICS_PORT")
    metrics_host = metrics_host or "127.0.0.1"
    if metrics_port == port and metrics_host == host:
        raise ConfigError("BEACON_METRICS_PORT must differ from BEACON_PORT on the same host")
    if mode == "production" and token is None and metrics_port is None:
        raise ConfigError("production needs BEACON_METRICS_TOKEN or BEACON_METRICS_PORT (or BEACON_METRICS=off): "
                          "/metrics would be public")
    return True, token, metrics_host, metrics_port


def _public(env: Mapping[str, str], min_cell: int) -> tuple[bool, int, int]:
    """Whether /public is on, its minimum cell (twice the service's by default, never below it) and refresh."""
    value = env.get("BEACON_PUBLIC_STATS", "off").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"BEACON_PUBLIC_STATS must be on or off, got {value!r}")
    public_min_cell = _int(env, "BEACON_PUBLIC_MIN_CELL", 2 * min_cell)
    if public_min_cell < min_cell:
        raise ConfigError(f"BEACON_PUBLIC_MIN_CELL must be at least BEACON_MIN_CELL ({min_cell})")
    return value == "on", public_min_cell, _int(env, "BEACON_PUBLIC_REFRESH_MINUTES", 60, minimum=1)


def _web_bot(env: Mapping[str, str], database_url: str) -> bool:
    """Whether web processes run the bot (``BEACON_WEB_BOT``, on by default); off needs PostgreSQL."""
    value = env.get("BEACON_WEB_BOT", "on").strip().lower()
    if value not in ("on", "off"):
        raise ConfigError(f"BEACON_WEB_BOT must be on or off, got {value!r}")
    if value == "off" and database_url.startswith("sqlite:///"):
        raise ConfigError("BEACON_WEB_BOT=off needs PostgreSQL: on SQLite one process runs everything, "
                          "and no worker would answer the messages")
    return value == "on"


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check the configuration; raise ConfigError with a one-line reason."""
    env = os.environ if env is None else env
    mode = env.get("BEACON_ENV", "development")
    if mode not in ("development", "production"):
        raise ConfigError(f"BEACON_ENV must be development or production, got {mode!r}")
    database_url = env.get("BEACON_DATABASE_URL") or "sqlite:///./data/beacon.db"
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://", "postgresql+asyncpg://")):
        raise ConfigError("BEACON_DATABASE_URL must be sqlite:///path or postgresql://user@host:port/db")
    public_url = _url("BEACON_PUBLIC_URL", env.get("BEACON_PUBLIC_URL") or "http://127.0.0.1:8080")
    areas = env.get("BEACON_AREAS_FILE")
    if areas:
        _check_areas(areas)
    min_cell = _int(env, "BEACON_MIN_CELL", 10)
    if min_cell < 3:
        raise ConfigError("BEACON_MIN_CELL must be at least 3")
    trusted_proxies = frozenset(p.strip() for p in env.get("BEACON_TRUSTED_PROXIES", "").split(",") if p.strip())
    for proxy in trusted_proxies:
        try:
            ipaddress.ip_address(proxy)
        except ValueError:
            raise ConfigError(f"BEACON_TRUSTED_PROXIES must list IP addresses, got {proxy!r}") from None
    log_format = env.get("BEACON_LOG_FORMAT", "json" if mode == "production" else "console")
    if log_format not in ("json", "console"):
        raise ConfigError("BEACON_LOG_FORMAT must be json or console")

    twilio = None
    if env.get("TWILIO_ACCOUNT_SID") or env.get("TWILIO_AUTH_TOKEN"):
        if not (env.get("TWILIO_ACCOUNT_SID") and env.get("TWILIO_AUTH_TOKEN")):
            raise ConfigError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set together")
        sms_from = env.get("TWILIO_SMS_FROM") or None
        mss = env.get("TWILIO_MESSAGING_SERVICE_SID") or None
        whatsapp_from = env.get("TWILIO_WHATSAPP_FROM") or None
        if whatsapp_from and not whatsapp_from.startswith("whatsapp:"):
            raise ConfigError("TWILIO_WHATSAPP_FROM must look like whatsapp:+14155238886")
        if not (sms_from or mss or whatsapp_from):
            raise ConfigError("set TWILIO_SMS_FROM, TWILIO_MESSAGING_SERVICE_SID or TWILIO_WHATSAPP_FROM")
        twilio = TwilioSettings(
            account_sid=env["TWILIO_ACCOUNT_SID"],
            auth_token=env["TWILIO_AUTH_TOKEN"],
            sms_from=sms_from,
            messaging_service_sid=mss,
            whatsapp_from=whatsapp_from,
            api_base_url=_url("TWILIO_API_BASE_URL", env.get("TWILIO_API_BASE_URL") or "https://api.twilio.com"),
            rate_per_second=_float(env, "TWILIO_RATE_PER_SECOND"),
            whatsapp_template_sid=env.get("TWILIO_WHATSAPP_TEMPLATE_SID") or None,
            voice_from=_phone("TWILIO_VOICE_FROM", env.get("TWILIO_VOICE_FROM") or None),
            voice_calls_per_second=_float(env, "BEACON_VOICE_CALLS_PER_SECOND") or 1.0,
        )

    telegram = None
    if env.get("TELEGRAM_BOT_TOKEN") and env.get("TELEGRAM_WEBHOOK_SECRET"):
        telegram = TelegramSettings(
            bot_token=env["TELEGRAM_BOT_TOKEN"],
            webhook_secret=env["TELEGRAM_WEBHOOK_SECRET"],
            api_base_url=_url(
                "TELEGRAM_API_BASE_URL", env.get("TELEGRAM_API_BASE_URL") or "https://api.telegram.org/bot"
            ),
            rate_per_second=_float(env, "TELEGRAM_RATE_PER_SECOND") or 30.0,
        )

    keys = env.get("BEACON_KEYS") or None
    if keys:
        _check_keys(keys)
    host = env.get("BEACON_HOST") or "127.0.0.1"
    simulator = _simulator(env, mode, host, twilio is not None or telegram is not None)
    if mode == "production":
        if env.get("BEACON_PUBLIC_URL") and not public_url.startswith("https://"):
            raise ConfigError("production needs an https BEACON_PUBLIC_URL: webhooks and console cookies travel on it")
        missing = [n for n in ("BEACON_KEYS", "BEACON_PUBLIC_URL") if not env.get(n)]
        if env.get("TELEGRAM_BOT_TOKEN") and not env.get("TELEGRAM_WEBHOOK_SECRET"):
            missing.append("TELEGRAM_WEBHOOK_SECRET")
        if missing:
            raise ConfigError(f"production needs {', '.join(missing)}")
    port = _int(env, "BEACON_PORT", 8080, minimum=1)
    public_stats, public_min_cell, public_refresh_minutes = _public(env, min_cell)
    metrics, metrics_token, metrics_host, metrics_port = _metrics(env, mode, host, port)

    cap_feed_url = _url("BEACON_CAP_FEED_URL", env["BEACON_CAP_FEED_URL"]) if env.get("BEACON_CAP_FEED_URL") else None
    database_dir = Path("./data")
    if database_url.startswith("sqlite:///"):
        database_dir = Path(database_url[len("sqlite:///"):]).parent
    return Settings(
        env=mode,
        host=host,
        port=port,
        database_url=database_url,
        keys=keys,
        keys_file=Path(env.get("BEACON_KEYS_FILE") or database_dir / "keys.json"),
        public_url=public_url,
        public_url_set=bool(env.get("BEACON_PUBLIC_URL")),
        default_language=env.get("BEACON_DEFAULT_LANGUAGE") or "en",
        areas_file=Path(areas) if areas else None,
        min_cell=min_cell,
        operator_name=env.get("BEACON_OPERATOR_NAME") or "the crisis team",
        retention_months=_int(env, "BEACON_RETENTION_MONTHS", 24, minimum=1),
        log_format=log_format,
        log_level=env.get("BEACON_LOG_LEVEL", "info").lower(),
        max_reminders=_int(env, "BEACON_MAX_REMINDERS", 2),
        outbox_lease_seconds=_int(env, "BEACON_OUTBOX_LEASE_SECONDS", 60, minimum=1),
        sender_capacity=_int(env, "BEACON_SENDER_CAPACITY", 2000, minimum=1),
        confirm_after_days=_int(env, "BEACON_CONFIRM_AFTER_DAYS", 180, minimum=1),
        message_retention_days=_int(env, "BEACON_MESSAGE_RETENTION_DAYS", 90, minimum=1),
        case_retention_months=_int(env, "BEACON_CASE_RETENTION_MONTHS", 12, minimum=1),
        unconsented_days=_int(env, "BEACON_UNCONSENTED_DAYS", 30, minimum=1),
        invitation_days=_int(env, "BEACON_INVITATION_DAYS", 30, minimum=1),
        employer_fields=_on_off(env, "BEACON_EMPLOYER_FIELDS"),
        trusted_proxies=trusted_proxies,
        simulator=simulator,
        spool_dir=Path(env.get("BEACON_SPOOL_DIR") or database_dir / "spool"),
        rate_limits=env.get("BEACON_RATE_LIMITS", "on").lower() not in ("off", "0", "false", "no"),
        twilio=twilio,
        telegram=telegram,
        public_stats=public_stats,
        public_min_cell=public_min_cell,
        public_refresh_minutes=public_refresh_minutes,
        metrics=metrics,
        metrics_token=metrics_token,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        webhook_retry_seconds=_float(env, "BEACON_WEBHOOK_RETRY_SECONDS") or 30.0,
        cap_feed_url=cap_feed_url,
        cap_poll_minutes=_int(env, "BEACON_CAP_POLL_MINUTES", 5, minimum=1),
        voice_max_attempts=_int(env, "BEACON_VOICE_MAX_ATTEMPTS", 3, minimum=1),
        voice_retry_seconds=_int(env, "BEACON_VOICE_RETRY_SECONDS", 300),
        voice_price_per_minute=_price(env, "BEACON_VOICE_PRICE_PER_MINUTE", 0.05),
        voice_prompts_dir=Path(env.get("BEACON_VOICE_PROMPTS_DIR") or database_dir / "voice-prompts"),
        web_bot=_web_bot(env, database_url),
    )
