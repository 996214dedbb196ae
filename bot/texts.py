"""Every sentence the bot can say, as gettext message ids.

The English text is the message id; `bot/locales/<lang>/LC_MESSAGES/beacon.po`
holds the translations. Placeholders use `str.format` names. Keywords people
type are catalog entries too (context ``keyword``), so each language brings its
own words for YES, DELETE, HELP ...; alternatives are separated by ``|``.
"""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark a message id for extraction without translating it here."""
    return message


# --- registration -----------------------------------------------------------
LANGUAGE_MENU = N_("Choose your language: reply with its number from the list below.")
LANGUAGE_SUGGESTED = N_("Welcome to Beacon. Reply 1 to continue in English, or the number of another language below.")
LANGUAGE_UNKNOWN = N_("Please reply with the number of your language from the list.")
NOTICE = N_(
    "{operator} keeps your contact details only to warn and help you in a crisis, for up to "
    "{months} months. We never ask about immigration status."
)
CONSENT_QUESTION = N_("Text MYDATA to see your data, DELETE to erase it. Do you agree? Reply 1 YES or 2 NO.")
CONSENT_UNCLEAR = N_("Please reply 1 (YES) to agree or 2 (NO) to decline.")
NO_CONSENT = N_("Understood. Nothing about you was kept. Text JOIN if you change your mind.")
AREA_QUESTION = N_("Where are you now? Reply with a number or the name of your area:\n{menu}")
AREA_UNKNOWN = N_("We did not recognise that area. Reply with a number from the list or the area's name.")
REGISTERED = N_("You are registered. We will contact you here in an emergency. Text HELP for commands.")
ASK_FIRST_NAME = N_("Optional: your first name? Reply 0 to skip.")
ASK_NATIONALITY = N_("Optional: your nationality (country)? Reply 0 to skip.")
ASK_GENDER = N_("Optional: gender? 1 Female, 2 Male, 3 Other. Reply 0 to skip.")
ASK_AGE_BAND = N_("Optional: your age? 1 under 18, 2 18-29, 3 30-44, 4 45-59, 5 60 or over. Reply 0 to skip.")
ASK_HOUSEHOLD = N_("Optional: how many people are with you, you included? Reply 0 to skip.")
ASK_CONTACT = N_("Optional: phone number of one family or emergency contact, with country code? Reply 0 to skip.")
ASK_SHARE_FAMILY = N_(
    "May we tell this contact when you check in (safe or need help, and the time, nothing else)? Reply 1 YES or 2 NO."
)
ASK_FAMILY_LANGUAGE = N_("In which language should we write to your contact? Reply with its number from the list.")
CONTACT_BUTTON = N_("📱 Share my phone number")
LINK_OFFER = N_("To get alerts by SMS too, share your phone number with the button below. You may ignore this.")
LINKED = N_("Your phone number is linked: our messages can reach you there too.")
PROFILE_DONE = N_("Thank you, your details are saved. Text UPDATE to change them, MYDATA to see them.")
INVALID_CHOICE = N_("Please reply with one of the numbers shown, or 0 to skip.")
INVALID_NUMBER = N_("Please reply with a number, or 0 to skip.")
INVALID_NATIONALITY = N_("We did not recognise that country. Write its name, or 0 to skip.")
INVALID_PHONE = N_("That is not a phone number we can use. Include the country code (+...), or 0 to skip.")
INVALID_NAME = N_("Please write only your first name, or 0 to skip.")

# --- commands ---------------------------------------------------------------
HELP = N_(
    "Beacon, run by {operator}, sends crisis alerts and safety check-ins. "
    "Commands: UPDATE, MYDATA, DELETE, LANG, STOP, START, HELP."
)
NOT_UNDERSTOOD = N_("We did not understand. Text HELP for the list of commands.")
NOT_REGISTERED = N_("We hold no data about you. Text JOIN to register.")
UPDATE_MENU = N_(
    "What do you want to change? 1 Language, 2 Area, 3 Name, 4 Nationality, 5 Gender, "
    "6 Age, 7 Household, 8 Contact"
)
SAVED = N_("Saved.")
LANGUAGE_SET = N_("Your language is now English.")
MYDATA_HEADER = N_("Data we hold about you:")
MYDATA_NONE = N_("not given")
DELETE_CONFIRM = N_("Erase all your data? This cannot be undone. Reply 1 YES or 2 NO.")
DELETED = N_("Your data has been erased. Text JOIN to register again.")
DELETE_CANCELLED = N_("Nothing was erased.")
STOPPED = N_("You will get no more messages. Text START to resume.")
RESUMED = N_("Messages resumed. Text HELP for commands.")

# --- MYDATA labels ----------------------------------------------------------
LABEL_LANGUAGE = N_("Language")
LABEL_AREA = N_("Area")
LABEL_FIRST_NAME = N_("Name")
LABEL_NATIONALITY = N_("Nationality")
LABEL_GENDER = N_("Gender")
LABEL_AGE_BAND = N_("Age")
LABEL_HOUSEHOLD = N_("Household")
LABEL_CONTACT = N_("Contact")
LABEL_CONSENT = N_("Consent given")
LABEL_MESSAGES = N_("Messages")
LABEL_SHARING = N_("Status shared with contact")
LABEL_LAST_CHECK_IN = N_("Last check-in")
LABEL_REQUESTS = N_("Help requests")
LABEL_EMPLOYER = N_("Employer")
LABEL_AGENCY = N_("Recruitment agency")
VALUE_SAFE = N_("safe")
VALUE_NEED_HELP = N_("needs help")
VALUE_YES = N_("yes")
VALUE_NO = N_("no")
CASE_OPEN = N_("open")
CASE_IN_PROGRESS = N_("in progress")
CASE_CLOSED_STATE = N_("closed")
NEED_MEDICAL = N_("medical")
NEED_SHELTER = N_("shelter")
NEED_FOOD = N_("food")
NEED_WATER = N_("water")
NEED_DOCUMENTS = N_("documents")
NEED_EVACUATION = N_("evacuation")
NEED_OTHER = N_("other")
VALUE_ON = N_("on")
VALUE_OFF = N_("off")
GENDER_FEMALE = N_("Female")
GENDER_MALE = N_("Male")
GENDER_OTHER = N_("Other")
AGE_UNDER_18 = N_("under 18")
AGE_60_PLUS = N_("60 or over")

# --- check-ins and cases ----------------------------------------------------
CHECKIN_QUESTION = N_("Reply 1 if you are safe, 2 if you need help.")
CHECKIN_SAFE = N_("Thank you. We recorded that you are safe.")
CHECKIN_NEED_HELP = N_(
    "We recorded that you need help. What kind? 1 Medical, 2 Shelter, 3 Food, 4 Water, "
    "5 Documents, 6 Evacuation, 7 Other"
)
CHECKIN_DETAILS = N_("Add a short description if you wish, or reply 0 to skip.")
CASE_RECORDED = N_("Thank you. Responders can see your request.")
CASE_PICKED_UP = N_("A responder is now handling your request.")
CASE_CLOSED = N_("Your request has been closed. Reply 2 if you still need help.")
BUTTON_SAFE = N_("I am safe")
BUTTON_NEED_HELP = N_("I need help")
REMINDER = N_("Reminder: please reply 1 if you are safe, 2 if you need help.")

# --- polls ------------------------------------------------------------------
POLL_HINT = N_("Reply with the number of your answer.")
POLL_ANSWERED = N_("Thank you. We recorded your answer: {option}. You may change it by replying again.")
POLL_CHOOSE = N_("Please reply with the number of one of the answers shown.")
# --- voice calls: short sentences for the ear (bot/ivr.py) ------------------
VOICE_OPTION = N_("For {option}, press {number}.")
VOICE_MORE = N_("For more choices, press 9.")
VOICE_NOTICE = N_(
    "{operator} keeps your language and area for {months} months to warn you in emergencies. "
    "You can have them deleted. To agree, press 1. To refuse, press 2."
)
VOICE_AREA = N_("Where are you now?")
VOICE_REGISTERED = N_("You are registered.")
VOICE_MENU = N_(
    "Safe: press 1. Need help: press 2. Latest alert: press 3. Deleting your data: press 4. "
    "Alerts by phone call: press 5."
)
VOICE_CHECK_IN = N_("If you are safe, press 1. If you need help, press 2.")
VOICE_KIND = N_("What help do you need?")
VOICE_INVALID = N_("That key is not in the menu.")
VOICE_GOODBYE = N_("Goodbye.")
VOICE_NO_ALERT = N_("There is no alert for your area now.")
VOICE_ERASE_WHAT = N_(
    "This erases your registration, your answers and your messages for good. "
    "To erase, press 1. To keep them, press any other key."
)
VOICE_POLL_THANKS = N_("Thank you. Your answer is recorded.")
VOICE_CALLS_ON = N_("From now on, we will call you with alerts.")
VOICE_NO_CONSENT = N_("Nothing about you was kept.")
CALLS_ON = N_("From now on, we will call you with alerts. Text TEXTS to get them by text again.")
TEXTS_ON = N_("From now on, we will send you alerts by text message.")

# --- family and share codes -------------------------------------------------
SHARE_CODE = N_(
    "Your share code is {code}. Anyone who texts STATUS {code} sees your last check-in. CODE OFF revokes it."
)
SHARE_CODE_REVOKED = N_("Your share code no longer works.")
STATUS_SAFE = N_("{name} checked in as safe at {time}.")
STATUS_NEED_HELP = N_("{name} asked for help at {time}. Responders have been told.")
STATUS_NO_REPLY = N_("{name} has not yet replied to the check-in sent at {time}.")
STATUS_NONE = N_("{name} has not checked in yet.")
STATUS_UNKNOWN_CODE = N_("That code is not valid.")
STATUS_TOO_MANY = N_("Too many attempts. Please try again later.")
RELATIVE = N_("Your relative")

# --- confirmation and retention ---------------------------------------------
CONFIRM_DETAILS = N_("Are your details still correct? Reply 1 YES to confirm, or text UPDATE to change them.")
CONFIRMED = N_("Thank you, your details are confirmed.")
EXPIRY_WARNING = N_("Your registration will be erased in {days} days. Reply 1 YES to keep it.")

# --- web sign-up (/join) and posters -----------------------------------------
WEB_TITLE = N_("Register for crisis alerts")
WEB_CHOOSE_LANGUAGE = N_("Choose your language")
WEB_CONSENT = N_("Text MYDATA to see your data, DELETE to erase it. Do you agree?")
WEB_AGREE = N_("Yes, I agree")
WEB_DISAGREE = N_("No")
WEB_AREA = N_("Where are you now?")
WEB_CHOOSE_AREA = N_("Please choose your area from the list.")
WEB_OPTIONAL = N_("Optional: leave empty anything you do not want to give.")
WEB_SHARE = N_("Tell this contact when I check in (safe or need help, and the time, nothing else)")
WEB_CONTACT_LANGUAGE = N_("Language for my contact")
WEB_CHECK = N_("Please check this answer.")
WEB_CONTINUE = N_("Continue")
WEB_CHANNEL = N_("How should we reach you?")
WEB_PHONE = N_("Your phone number, with country code (+...)")
WEB_PHONE_INVALID = N_("That is not a phone number we can use. Include the country code (+...).")
WEB_SEND_CODE = N_("Send me a code")
WEB_TELEGRAM = N_("Open Telegram with this link and press Start: our bot sends you the code.")
WEB_OPEN_TELEGRAM = N_("Open Telegram")
WEB_CODE_SENT = N_("We sent you a code. Enter it here to finish:")
WEB_CODE_MESSAGE = N_("Your Beacon code is {code}. It expires in {minutes} minutes. Never share it.")
WEB_CODE_WRONG = N_("That code is not right. Check it and try again.")
WEB_CODE_EXPIRED = N_("That code has expired or was tried too often. Ask for a new one.")
WEB_NEW_CODE = N_("Send a new code")
WEB_FORM_EXPIRED = N_("This page has expired. Please start again.")
WEB_START_AGAIN = N_("Start again")
WEB_ALREADY = N_("This number is already registered. Text UPDATE to change your details.")
WEB_PROTECTED = N_(
    "Your data is encrypted, used only to warn and help you in a crisis, and you can see or erase it at any time."
)
POSTER_SCAN = N_("Scan the code or open the link to register for crisis alerts")
POSTER_TEXT = N_("Or text {keyword} to {number}")
# --- imported lists and assisted registration -----------------------------
INVITATION = N_(
    "{operator} holds this number, from a list it was given, only to warn and help you in a crisis. "
    "Reply YES to agree, STOP to refuse, DELETE to erase it."
)
INVITATION_UNCLEAR = N_("Please reply YES to agree to crisis messages, or STOP to refuse.")
# The invitation's personal link (added after INVITATION when the deployment has a public URL) and its page.
INVITATION_LINK = N_("Or choose on this page: {link}")
INVITATION_PAGE = N_("{operator} holds your number, from a list it was given. You decide what happens to it.")
WEB_NO_THANKS = N_("No thanks")
WEB_ERASE_NUMBER = N_("Erase my number")
WEB_LINK_GONE = N_("This link no longer works: it has expired or has already been used.")
ASSISTED_CONFIRMATION = N_(
    "{operator} registered you in person. Text MYDATA to see what was recorded, UPDATE to change it, "
    "DELETE to erase it."
)

# --- keywords (context "keyword"): the words people type --------------------
KEYWORDS: dict[str, str] = {
    "JOIN": N_("JOIN|REGISTER"),
    "START": N_("START|UNSTOP"),
    "UPDATE": N_("UPDATE|CHANGE"),
    "MYDATA": N_("MYDATA|MY DATA"),
    "DELETE": N_("DELETE|ERASE"),
    "STOP": N_("STOP|STOPALL|UNSUBSCRIBE|CANCEL|END|QUIT"),
    "HELP": N_("HELP|INFO"),
    "LANG": N_("LANG|LANGUAGE"),
    "SKIP": N_("SKIP"),
    "SAFE": N_("SAFE|OK"),
    "NEED": N_("NEED|SOS"),
    "STATUS": N_("STATUS"),
    "CODE": N_("CODE"),
    "YES": N_("YES|Y"),
    "NO": N_("NO|N"),
    "CALLS": N_("CALLS|CALL ME"),
    "TEXTS": N_("TEXTS|TEXT ME"),
}
