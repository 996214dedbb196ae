"""The data the conversation works on: frozen values in, frozen values out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from domain.areas import Gazetteer
from domain.vocabulary import Answer, Need


class Step(StrEnum):
    """Where a registrant is in the conversation: what their next message answers."""

    NEW = "new"
    LANGUAGE = "language"
    CONSENT = "consent"
    AREA = "area"
    FIRST_NAME = "first_name"
    NATIONALITY = "nationality"
    GENDER = "gender"
    AGE_BAND = "age_band"
    HOUSEHOLD = "household_size"
    CONTACT = "family_contact"
    IDLE = "idle"
    UPDATE_MENU = "update_menu"
    CONFIRM_DELETE = "confirm_delete"
    SHARE_FAMILY = "share_family"
    FAMILY_LANGUAGE = "family_language"
    CHECK_IN_KIND = "check_in_kind"
    CHECK_IN_DETAILS = "check_in_details"
    INVITED = "invited"  # brought in by an import and sent one invitation: nothing else until YES


@dataclass(frozen=True, slots=True)
class Profile:
    """What a registrant told us. Coarse fields stay in clear for aggregates; the rest is encrypted."""

    language: str | None = None
    area_id: str | None = None
    first_name: str | None = None
    nationality: str | None = None  # ISO 3166-1 alpha-2
    gender: str | None = None  # female | male | other
    age_band: str | None = None  # 0-17 | 18-29 | 30-44 | 45-59 | 60+
    household_size: int | None = None
    family_contact: str | None = None  # E.164
    share_family: bool = False  # the contact may learn the check-in status
    family_language: str | None = None  # the language the contact is written to in
    employer: str | None = None  # only where the operator turned the employer fields on (assisted registration)
    recruitment_agency: str | None = None


@dataclass(frozen=True, slots=True)
class OpenPoll:
    """A poll sent to the person that they may answer (again: the latest answer wins), in their language."""

    broadcast_id: int
    question: str
    options: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class State:
    """One registrant's conversation state, as loaded by the registry."""

    step: Step = Step.NEW
    profile: Profile = Profile()
    consented: bool = False
    consent_at: datetime | None = None
    opted_out: bool = False
    menu: tuple[str, ...] = ()  # the language codes or area ids behind the numbers last shown
    editing: str | None = None  # the field being changed through UPDATE
    resume: Step | None = None  # where to go back after LANG or a cancelled DELETE
    addresses: tuple[tuple[str, str], ...] = ()  # (channel, address) we hold, shown by MYDATA
    area_hint: str | None = None  # an area named in a deep link, offered first
    check_in: int | None = None  # the open check-in (broadcast id) not yet answered
    check_in_latest: bool = False  # that check-in came after the person's previous message
    last_check_in: tuple[str, datetime] | None = None  # (safe | need_help, when), for MYDATA
    cases: tuple[tuple[str | None, str], ...] = ()  # (category, status) of their help requests, for MYDATA
    poll: OpenPoll | None = None  # the newest poll sent to them, still open for answers
    source_id: int | None = None  # the outreach source they registered through

    @property
    def registered(self) -> bool:
        return self.consented and self.profile.area_id is not None

    @property
    def language(self) -> str:
        return self.profile.language or "en"


@dataclass(frozen=True, slots=True)
class SourcePreset:
    """The outreach source a JOIN <code> or deep link names, as the registry found it."""

    id: int
    language: str | None = None
    area_id: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One inbound message, as the bot sees it."""

    text: str
    channel: str
    address: str
    at: datetime
    language_hint: str | None = None
    carrier_opt_out: str | None = None  # the carrier already handled STOP/START (Twilio OptOutType)
    payload: str | None = None  # Telegram deep-link payload of /start
    contact_phone: str | None = None  # a phone number the person shared as their own (Telegram)
    nonce: str = ""  # a fresh random share code, offered by the service: step() itself draws no randomness
    source: SourcePreset | None = None  # the outreach source the message names (JOIN <code>, /start <code>)
    by_link: bool = False  # a decision made on the invitation's web page, handed in as the words it stands for


@dataclass(frozen=True, slots=True)
class Reply:
    """One message to send back, already in the person's language."""

    text: str
    buttons: tuple[tuple[str, str], ...] = ()  # (label, data) quick answers where the channel has buttons
    contact_button: str | None = None  # the label of the channel's "share my phone number" button; None: none


@dataclass(frozen=True, slots=True)
class GiveConsent:
    """Record consent to the privacy notice."""

    notice_version: str
    language: str
    method: str = "text"  # text | import-invitation | invitation-link (assisted: recorded by the console)


@dataclass(frozen=True, slots=True)
class Decline:
    """Consent refused: forget everything but an opt-out marker."""


@dataclass(frozen=True, slots=True)
class Erase:
    """DELETE confirmed: erase the registrant and everything linked to them."""


@dataclass(frozen=True, slots=True)
class Confirm:
    """The person confirmed their details are still right."""


@dataclass(frozen=True, slots=True)
class RecordCheckIn:
    """A check-in answer (tied to the open check-in, if any)."""

    broadcast_id: int | None
    answer: Answer


@dataclass(frozen=True, slots=True)
class RecordPollAnswer:
    """A poll answer: the number of the option chosen (never the person's own words)."""

    broadcast_id: int
    option: int


@dataclass(frozen=True, slots=True)
class OpenCase:
    """Open a need-help case at once."""

    broadcast_id: int | None


@dataclass(frozen=True, slots=True)
class DescribeNeed:
    """Add the kind of help, or the person's own words, to their open case."""

    category: Need | None = None
    details: str | None = None


@dataclass(frozen=True, slots=True)
class IssueShareCode:
    """Make ``code`` the registrant's share code (replacing any other)."""

    code: str


@dataclass(frozen=True, slots=True)
class RevokeShareCodes:
    """CODE OFF."""


@dataclass(frozen=True, slots=True)
class LookUpStatus:
    """STATUS CODE: the service looks the code up and answers."""

    code: str


@dataclass(frozen=True, slots=True)
class LinkPhone:
    """Join the phone number the person shared to their registration."""

    phone: str


@dataclass(frozen=True, slots=True)
class PreferCalls:
    """Reach the person by phone call from now on (voice as their preferred channel), or by text again."""

    on: bool = True


Effect = (GiveConsent | Decline | Erase | Confirm | RecordCheckIn | OpenCase | DescribeNeed | IssueShareCode
          | RevokeShareCodes | LookUpStatus | LinkPhone | RecordPollAnswer | PreferCalls)


@dataclass(frozen=True, slots=True)
class Transition:
    """What one message did: the new state, the replies, and effects for the registry."""

    state: State
    replies: tuple[Reply, ...] = ()
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True)
class BotConfig:
    """Deployment facts the conversation needs; all plain data."""

    gazetteer: Gazetteer
    operator: str = "the crisis team"
    retention_months: int = 24
    default_language: str = "en"
    notice_version: str = "2026-11"
    family_sharing: bool = True  # a channel reaches family contacts' phones: offer to share the status with them
    extra: dict[str, str] = field(default_factory=dict)
